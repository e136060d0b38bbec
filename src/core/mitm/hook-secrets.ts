/**
 * Reading the secrets that `[[network.mitm_hooks]]` inject (docs/behaviour.md §5.19): from an
 * environment variable or a file, once per load or reload. A secret is held only here and in the
 * compiled hooks; it is never part of the configuration (`/config`), a message or a record.
 *
 * @module
 */
import { ConfigError } from "../config/error.ts";
import type { MitmHeaderInjection, MitmHookConfig } from "./hook-config.ts";

/** Secrets by {@link secretKey}. */
export type HookSecrets = ReadonlyMap<string, string>;

/** Where secrets are read from (the runtime's environment and files). */
export interface SecretReader {
  env(name: string): string | undefined;
  /** File contents; `null` when the file does not exist. */
  readTextFile?(path: string): Promise<string | null>;
}

/** Longest secret accepted, in characters: far above any token, far below a request head. */
export const MAX_SECRET_LENGTH = 8 * 1024;

/** What a header value may hold after the prefix: visible ASCII, space and tab (RFC 9110 §5.5). */
const FIELD_TEXT = /^[\t\x20-\x7e]*$/;

/** The key a secret is kept under: its source. */
export function secretKey(injection: Pick<MitmHeaderInjection, "secret_env_var" | "secret_file">): string {
  return injection.secret_env_var !== undefined ? `env:${injection.secret_env_var}` : `file:${injection.secret_file}`;
}

/**
 * Read every secret `hooks` name. A variable that is unset or empty, a file that is missing,
 * unreadable or empty, and a value a header cannot carry (a line break, a control character) are
 * {@link ConfigError}s naming the hook and key, never the value. A file's trailing line breaks
 * are dropped.
 */
export async function readHookSecrets(hooks: readonly MitmHookConfig[], reader: SecretReader): Promise<HookSecrets> {
  const secrets = new Map<string, string>();
  for (const [i, hook] of hooks.entries()) {
    for (const [j, injection] of hook.actions.inject_request_headers.entries()) {
      const key = secretKey(injection);
      if (secrets.has(key)) continue;
      const where = `network.mitm_hooks[${i}].actions.inject_request_headers[${j}]`;
      const value = await readOne(injection, reader, where);
      if (value.length > MAX_SECRET_LENGTH) throw new ConfigError(`${where}: the secret is ${value.length} characters long, more than ${MAX_SECRET_LENGTH}`, "network.mitm_hooks");
      if (!FIELD_TEXT.test(value)) throw new ConfigError(`${where}: the secret holds a line break or control character a header cannot carry`, "network.mitm_hooks");
      secrets.set(key, value);
    }
  }
  return secrets;
}

async function readOne(injection: MitmHeaderInjection, reader: SecretReader, where: string): Promise<string> {
  if (injection.secret_env_var !== undefined) {
    const name = injection.secret_env_var;
    const value = reader.env(name);
    if (value === undefined || value === "") throw new ConfigError(`${where}.secret_env_var: environment variable ${name} is not set or empty`, "network.mitm_hooks");
    return value;
  }
  const path = injection.secret_file!;
  if (!reader.readTextFile) throw new ConfigError(`${where}.secret_file: this runtime cannot read files (${path})`, "network.mitm_hooks");
  let text: string | null;
  try {
    text = await reader.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`${where}.secret_file: cannot read ${path}: ${(e as Error).message}`, "network.mitm_hooks", undefined, { cause: e });
  }
  if (text === null) throw new ConfigError(`${where}.secret_file: ${path} does not exist`, "network.mitm_hooks");
  const value = text.replace(/[\r\n]+$/, "");
  if (value === "") throw new ConfigError(`${where}.secret_file: ${path} is empty`, "network.mitm_hooks");
  return value;
}
