/**
 * Bearer-token check for the admin API (docs/behaviour.md §1 `admin_token`, **ours**). Both the
 * expected and the presented token are hashed with SHA-256 and the digests compared in full, so
 * the time taken depends neither on where they differ nor on the token's length.
 *
 * @module
 */

/** The authentication scheme required in `Authorization` and named in `WWW-Authenticate`. */
export const BEARER_SCHEME = "Bearer";

/** `Bearer <token>`: scheme case-insensitive (RFC 7235), surrounding blanks ignored. */
const BEARER_HEADER = /^[ \t]*bearer[ \t]+([^ \t].*?)[ \t]*$/i;

const encoder = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Compare two digests of equal length touching every byte (XOR-accumulate, no early exit). */
function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** The token of an `Authorization: Bearer …` header, or `undefined` when absent or malformed. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const m = BEARER_HEADER.exec(header);
  return m ? m[1] : undefined;
}

/**
 * A checker for `Authorization` header values against `token`. The expected digest is
 * computed once; the token itself is not kept in the returned closure's reach beyond that.
 */
export function createTokenCheck(token: string): (authorization: string | null | undefined) => Promise<boolean> {
  const expected = sha256(token);
  return async (authorization) => {
    const presented = bearerToken(authorization);
    // Hash something even when nothing usable was sent, so both paths do the same work.
    const got = await sha256(presented ?? "");
    const ok = digestsEqual(await expected, got);
    return ok && presented !== undefined;
  };
}
