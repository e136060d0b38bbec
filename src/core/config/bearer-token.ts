/**
 * The syntax an admin token must have to be sent as `Authorization: Bearer TOKEN`: RFC 6750 §2.1's
 * `b64token` (letters, digits, `-._~+/`, then optional `=` padding). The admin API refuses any
 * other presented token without comparing it, so a configured token outside this syntax could
 * never be presented; it is refused when the config or the environment is read instead.
 *
 * @module
 */

/** RFC 6750 §2.1 `b64token`. */
export const BEARER_TOKEN_SYNTAX = /^[A-Za-z0-9\-._~+/]+=*$/;

/** One character {@link BEARER_TOKEN_SYNTAX} allows somewhere. */
const TOKEN_CHAR = /^[A-Za-z0-9\-._~+/=]$/;

/** What {@link BEARER_TOKEN_SYNTAX} allows, for error messages. */
const ALLOWED = "letters, digits and - . _ ~ + /, optionally ending in = (RFC 6750 §2.1)";

/**
 * Why `token` cannot be a bearer token, or `undefined` when it can. The reason names the position
 * and code point of the first bad character but never quotes the token: it is a secret.
 */
export function bearerTokenFault(token: string): string | undefined {
  if (BEARER_TOKEN_SYNTAX.test(token)) return undefined;
  if (token === "") return "must not be empty";
  const chars = [...token];
  const bad = chars.findIndex((c) => !TOKEN_CHAR.test(c));
  if (bad === -1) return `is not a bearer token: = may only end it, as padding; use ${ALLOWED}`;
  const cp = chars[bad]!.codePointAt(0)!;
  return `is not a bearer token: character ${bad + 1} (U+${cp.toString(16).toUpperCase().padStart(4, "0")}) is not allowed; use ${ALLOWED}`;
}
