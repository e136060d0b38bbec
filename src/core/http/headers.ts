/**
 * Hop-by-hop header handling (RFC 9110 §7.6.1) and connection persistence (RFC 9112 §9.3).
 *
 * @module
 */
import { FieldNames, type HeaderFields } from "./fields.ts";
import { headerTokens, headerValues, type HttpHeader } from "./parser.ts";

/** Headers that describe one hop and are never forwarded. Framing headers are re-made. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

/** The end-to-end headers of a message: hop-by-hop ones and those `Connection` names removed. */
export function endToEndHeaders(headers: readonly HttpHeader[]): HttpHeader[] {
  const named = new Set(headerTokens(headers, "connection"));
  return headers.filter((h) => {
    const n = h.lower ?? h.name.toLowerCase();
    return !HOP_BY_HOP.has(n) && !named.has(n);
  });
}

/** {@link HOP_BY_HOP}, to match fields read in place. */
const HOP_BY_HOP_FIELDS = new FieldNames(HOP_BY_HOP);

/**
 * Whether field `i` of `fields` is end-to-end: not hop-by-hop, and not named by the message's
 * `Connection` field, whose items are `connection` (lower case, as {@link headerTokens} gives them).
 */
export function isEndToEndField(fields: HeaderFields, i: number, connection: readonly string[]): boolean {
  if (HOP_BY_HOP_FIELDS.matches(fields, i)) return false;
  for (const name of connection) if (fields.nameIs(i, name)) return false;
  return true;
}

/**
 * The protocol a request asks to switch to (`Upgrade` named in `Connection`, RFC 9110 §7.8),
 * or `undefined` for an ordinary request.
 */
export function requestedUpgrade(headers: readonly HttpHeader[]): string | undefined {
  if (!headerTokens(headers, "connection").includes("upgrade")) return undefined;
  const value = headerValues(headers, "upgrade").join(", ").trim();
  return value === "" ? undefined : value;
}

/** Whether the sender of this head wants the connection kept open afterwards. */
export function wantsKeepAlive(version: string, headers: readonly HttpHeader[]): boolean {
  return keepsAlive(version, headerTokens(headers, "connection").concat(headerTokens(headers, "proxy-connection")));
}

/**
 * Whether a message of this version whose `Connection` and `Proxy-Connection` fields list
 * `tokens` (lower case) keeps its connection open afterwards (RFC 9112 §9.3).
 */
export function keepsAlive(version: string, tokens: readonly string[]): boolean {
  if (tokens.includes("close")) return false;
  return version === "1.1" || tokens.includes("keep-alive");
}
