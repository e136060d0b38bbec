/**
 * Parsing and validating the text of `config.toml` into a {@link NetworkConfig}
 * (docs/behaviour.md §1).
 *
 * Message format, used for every {@link ConfigError} and warning about a key:
 *
 *     PATH:LINE: network.KEY: detail      (when the key's line can be found)
 *     PATH: network.KEY: detail           (otherwise)
 *
 * `ConfigError.key` is then the dotted key (`network.mode`) and `ConfigError.line` the 1-based
 * line. A TOML syntax error is `failed to parse PATH: <smol-toml message>`; smol-toml's message
 * quotes the offending line with its number and a caret under the column, and
 * `ConfigError.line` holds the line.
 *
 * @module
 */

import { parse, TomlError } from "smol-toml";
import { HookConfigError, parseMitmHooks } from "../mitm/hook-config.ts";
import { compilePatterns, PatternError } from "../policy/patterns.ts";
import { bearerTokenFault } from "./bearer-token.ts";
import { findArrayTableLine, findKeyLine } from "./key-line.ts";
import { parseListenUrl } from "./listen-url.ts";
import {
  isNetworkKey,
  LISTEN_URL_KEYS,
  NETWORK_KEY_KINDS,
  NETWORK_KEYS,
  NETWORK_MODES,
} from "./schema.ts";
import { closestMatch } from "./suggest.ts";
import { isTomlTable, tomlTypeName } from "./toml-value.ts";
import {
  ConfigError,
  defaultNetworkConfig,
  MAX_TIMEOUT_SECS,
  type LoadedConfig,
  type NetworkConfig,
  type NetworkMode,
} from "./types.ts";

/** Deepest nesting of inline arrays and tables accepted in the config file. */
export const MAX_TOML_DEPTH = 64;

/** The top-level table this module reads. */
const NETWORK_TABLE = "network";

/** Where messages point: the file's path and its text (to find key lines). */
interface Source {
  readonly path: string;
  readonly text: string;
}

/**
 * Parses `text`, the contents of the config file at `path`, and returns the `[network]`
 * settings over the defaults plus warnings (unknown keys). Other top-level tables are ignored.
 * Listener URLs are checked for syntax here; loopback clamping is `planListeners`' job.
 *
 * @throws ConfigError on a TOML syntax error, a wrong type, a bad `mode`, a relative unix
 *   socket path, an empty `admin_token` or one that is not a bearer token (RFC 6750 §2.1), or an
 *   unparsable listener URL.
 */
export function parseConfigText(text: string, path: string): LoadedConfig {
  const src: Source = { path, text };
  const root = parseToml(src);
  const network = defaultNetworkConfig();
  const warnings: string[] = [];

  if (!Object.hasOwn(root, NETWORK_TABLE)) return { network, warnings };
  const table = root[NETWORK_TABLE];
  if (!isTomlTable(table)) {
    const line = findKeyLine(text, "", NETWORK_TABLE);
    throw new ConfigError(
      `${prefix(src, line)}${NETWORK_TABLE}: expected table, got ${tomlTypeName(table)}`,
      NETWORK_TABLE,
      line,
    );
  }

  for (const key of Object.keys(table)) {
    if (isNetworkKey(key)) continue;
    const line = findKeyLine(text, NETWORK_TABLE, key);
    const suggestion = closestMatch(key, NETWORK_KEYS);
    const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
    warnings.push(`${prefix(src, line)}${NETWORK_TABLE}.${key}: unknown key, ignored${hint}`);
  }

  for (const key of NETWORK_KEYS) {
    if (Object.hasOwn(table, key)) applyKey(src, network, key, table[key]);
  }
  for (const key of LISTEN_URL_KEYS) {
    if (Object.hasOwn(table, key)) checkListenUrl(src, key, network[key]);
  }
  if (network.mitm_hooks.length > 0 && !network.mitm) {
    throw keyError(src, "mitm_hooks", "hooks act on intercepted requests: they need network.mitm = true");
  }
  return { network, warnings };
}

/** Runs smol-toml, turning its syntax errors into {@link ConfigError}. */
function parseToml(src: Source): Record<string, unknown> {
  try {
    return parse(src.text, { integersAsBigInt: true, maxDepth: MAX_TOML_DEPTH });
  } catch (e) {
    if (e instanceof TomlError) {
      const message = redactSecretLines(e.message);
      const firstLine = message.split("\n", 1)[0]!.trim();
      const excerpt = message.slice(message.indexOf("\n") + 1).trimEnd();
      throw new ConfigError(
        `failed to parse ${src.path}: line ${e.line}, column ${e.column}: ${firstLine}${excerpt && excerpt !== firstLine ? `\n${excerpt}` : ""}`,
        undefined,
        e.line,
      );
    }
    const message = e instanceof Error ? e.message : String(e);
    throw new ConfigError(`failed to parse ${src.path}: ${message}`);
  }
}

/** A line of TOML that assigns the admin token (its value must never be echoed). */
const SECRET_ASSIGNMENT = /^(\s*(?:\d+:\s*)?(?:network\.)?admin_token\s*=).*$/gm;

/**
 * smol-toml quotes the offending line in its errors; a line that sets `admin_token` is shown
 * with its value replaced, so a broken file never prints the secret (stderr, /reload answers).
 */
export function redactSecretLines(message: string): string {
  return message.replace(SECRET_ASSIGNMENT, "$1 <redacted>");
}

/** Validates one known key and stores it into `network`. */
function applyKey(src: Source, network: NetworkConfig, key: keyof NetworkConfig, value: unknown): void {
  const got = tomlTypeName(value);
  switch (NETWORK_KEY_KINDS[key]) {
    case "boolean":
      if (typeof value !== "boolean") throw keyError(src, key, `expected boolean, got ${got}`);
      Object.assign(network, { [key]: value });
      return;
    case "string":
      if (typeof value !== "string") throw keyError(src, key, `expected string, got ${got}`);
      if (key === "admin_token") {
        const fault = value.trim() === "" ? "must not be empty" : bearerTokenFault(value);
        if (fault !== undefined) throw keyError(src, key, fault);
      }
      Object.assign(network, { [key]: value });
      return;
    case "mode":
      if (typeof value !== "string") throw keyError(src, key, `expected string, got ${got}`);
      if (!isNetworkMode(value)) {
        const allowed = NETWORK_MODES.map((m) => `"${m}"`).join(" or ");
        throw keyError(src, key, `${JSON.stringify(value)} is not a valid mode (expected ${allowed})`);
      }
      network.mode = value;
      return;
    case "seconds": {
      const n = typeof value === "bigint" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n)) throw keyError(src, key, `expected a whole number of seconds, got ${got}`);
      if (n < 0 || n > MAX_TIMEOUT_SECS) throw keyError(src, key, `${n} is out of range (0 to ${MAX_TIMEOUT_SECS} seconds; 0 means no limit)`);
      Object.assign(network, { [key]: n });
      return;
    }
    case "hooks":
      network.mitm_hooks = hooksOf(src, value);
      return;
    case "string[]": {
      if (!Array.isArray(value)) throw keyError(src, key, `expected array of strings, got ${got}`);
      const list: string[] = [];
      for (const [i, item] of value.entries()) {
        if (typeof item !== "string") {
          const detail = `expected array of strings, got array containing ${tomlTypeName(item)} at index ${i}`;
          throw keyError(src, key, detail);
        }
        if (key === "allow_unix_sockets" && !item.startsWith("/")) {
          throw keyError(src, key, `${JSON.stringify(item)} is not an absolute path`, i);
        }
        if (key === "allowed_domains" || key === "denied_domains") checkPattern(src, key, item, i);
        list.push(item);
      }
      Object.assign(network, { [key]: list });
      return;
    }
  }
}

/** Checks `network.mitm_hooks`, re-raising a {@link HookConfigError} with the hook's line. */
function hooksOf(src: Source, value: unknown): NetworkConfig["mitm_hooks"] {
  try {
    return parseMitmHooks(value);
  } catch (e) {
    if (!(e instanceof HookConfigError)) throw e;
    const line =
      (e.index === undefined ? undefined : findArrayTableLine(src.text, `${NETWORK_TABLE}.mitm_hooks`, e.index)) ??
      findKeyLine(src.text, NETWORK_TABLE, "mitm_hooks");
    return keyErrorAt(src, line, `${NETWORK_TABLE}.${e.message}`, `${NETWORK_TABLE}.mitm_hooks`, { cause: e });
  }
}

/** Compiles one domain pattern, re-raising a {@link PatternError} with the file location. */
function checkPattern(src: Source, key: string, pattern: string, index: number): void {
  try {
    compilePatterns([pattern]);
  } catch (e) {
    if (!(e instanceof PatternError)) throw e;
    throw keyError(src, key, e.message, index);
  }
}

/** True when `value` is one of {@link NETWORK_MODES}. */
function isNetworkMode(value: string): value is NetworkMode {
  return (NETWORK_MODES as readonly string[]).includes(value);
}

/** Checks a listener URL parses, re-raising its error with the file location. */
function checkListenUrl(src: Source, key: (typeof LISTEN_URL_KEYS)[number], value: string): void {
  try {
    parseListenUrl(value, `${NETWORK_TABLE}.${key}`);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const line = findKeyLine(src.text, NETWORK_TABLE, key);
    throw new ConfigError(`${prefix(src, line)}${e.message}`, `${NETWORK_TABLE}.${key}`, line, { cause: e });
  }
}

/** A {@link ConfigError} about `network.KEY` (or `network.KEY[INDEX]`) in the file's format. */
function keyError(src: Source, key: string, detail: string, index?: number): ConfigError {
  const line = findKeyLine(src.text, NETWORK_TABLE, key);
  const where = index === undefined ? "" : `[${index}]`;
  return new ConfigError(
    `${prefix(src, line)}${NETWORK_TABLE}.${key}${where}: ${detail}`,
    `${NETWORK_TABLE}.${key}`,
    line,
  );
}

function keyErrorAt(src: Source, line: number | undefined, text: string, key: string, options: { cause: unknown }): never {
  throw new ConfigError(`${prefix(src, line)}${text}`, key, line, options);
}

/** `PATH:LINE: ` when the line is known, else `PATH: `. */
function prefix(src: Source, line: number | undefined): string {
  return line === undefined ? `${src.path}: ` : `${src.path}:${line}: `;
}
