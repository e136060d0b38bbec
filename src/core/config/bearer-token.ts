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
 * Why `token` cannot be a bearer token, or `undefined` when it can. The reason names the kind of
 * the first bad character (whitespace, a control character, a non-ASCII character, other
 * punctuation) but never the token, nor the character or where it is: the token is a secret.
 */
export function bearerTokenFault(token: string): string | undefined {
  if (BEARER_TOKEN_SYNTAX.test(token)) return undefined;
  if (token === "") return "must not be empty";
  const bad = [...token].find((c) => !TOKEN_CHAR.test(c));
  if (bad === undefined) return `is not a bearer token: = may only end it, as padding; use ${ALLOWED}`;
  return `is not a bearer token: it holds ${characterKind(bad)}; use ${ALLOWED}`;
}

/** The kind of a character outside the token syntax, as error messages name it. */
function characterKind(c: string): string {
  if (/^\s$/u.test(c)) return "whitespace (a space, tab or line break)";
  const cp = c.codePointAt(0)!;
  if (cp < 0x20 || cp === 0x7f) return "a control character";
  if (cp > 0x7f) return "a non-ASCII character";
  return "punctuation other than - . _ ~ + /";
}
