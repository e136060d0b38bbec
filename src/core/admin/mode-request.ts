/**
 * Parsing the body of `POST /mode` (`{"mode":"limited"|"full"}`, docs/behaviour.md §7). Every
 * refusal message names the offending value so the caller can see what was wrong.
 *
 * @module
 */
import { NETWORK_MODES } from "../config/schema.ts";
import type { NetworkMode } from "../config/types.ts";

/** Longest excerpt of a bad value quoted back in an error message. */
export const MAX_QUOTED_VALUE_CHARS = 64;

/** A parsed mode, or why the body was refused. */
export type ModeRequest = { readonly ok: true; readonly mode: NetworkMode } | { readonly ok: false; readonly error: string };

const EXPECTED = `expected ${NETWORK_MODES.map((m) => JSON.stringify(m)).join(" or ")}`;

/** A JSON rendering of `value`, cut to {@link MAX_QUOTED_VALUE_CHARS}. */
function quote(value: unknown): string {
  const s = value === undefined ? "undefined" : JSON.stringify(value);
  return s.length > MAX_QUOTED_VALUE_CHARS ? `${s.slice(0, MAX_QUOTED_VALUE_CHARS)}…` : s;
}

function isMode(value: unknown): value is NetworkMode {
  return typeof value === "string" && (NETWORK_MODES as readonly string[]).includes(value);
}

/** Decode and validate the raw body bytes of `POST /mode`. */
export function parseModeRequest(bytes: Uint8Array): ModeRequest {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, error: "invalid JSON body: not valid UTF-8" };
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    const detail = text.trim() === "" ? "empty body" : (e as Error).message;
    return { ok: false, error: `invalid JSON body: ${detail}` };
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { ok: false, error: `invalid body ${quote(body)}: expected a JSON object {"mode": ...}` };
  }
  if (!Object.hasOwn(body, "mode")) return { ok: false, error: `missing "mode": ${EXPECTED}` };
  const mode = (body as Record<string, unknown>)["mode"];
  if (!isMode(mode)) return { ok: false, error: `invalid mode ${quote(mode)}: ${EXPECTED}` };
  return { ok: true, mode };
}
