/**
 * Bearer-token authentication for the admin API (docs/behaviour.md §7.3, **ours**), on Hono's own
 * `bearerAuth` middleware: it takes the token after a case-insensitive `Bearer` and one or more
 * spaces, checks its syntax (RFC 6750 §2.1 `b64token`) and compares it with the expected token
 * by hashing both with SHA-256 and comparing the digests in full, so the time taken does not
 * depend on where they differ (Hono also compares the strings, over the longer one's length).
 *
 * What this project adds: every refusal is `401` with the same JSON body, including a malformed
 * header (Hono's default there is `400`), so a stranger learns nothing from the status; the
 * `WWW-Authenticate` challenge names the RFC 6750 §3.1 error code where there is one.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { bearerTokenFault } from "../config/bearer-token.ts";

/** The authentication scheme required in `Authorization` and named in `WWW-Authenticate`. */
export const BEARER_SCHEME = "Bearer";

/** Why a request was refused: no `Authorization`, one that is not `Bearer TOKEN`, a wrong token. */
export type BearerRefusal = "missing" | "malformed" | "wrong";

/**
 * The `WWW-Authenticate` challenge of each refusal (RFC 6750 §3: no error code when nothing was
 * presented, `invalid_request` for a malformed header, `invalid_token` for a wrong token).
 */
export const BEARER_CHALLENGES: Readonly<Record<BearerRefusal, string>> = {
  missing: BEARER_SCHEME,
  malformed: `${BEARER_SCHEME} error="invalid_request"`,
  wrong: `${BEARER_SCHEME} error="invalid_token"`,
};

/** What each refusal is logged as. */
export const BEARER_REFUSAL_TEXT: Readonly<Record<BearerRefusal, string>> = {
  missing: "no Authorization header",
  malformed: "Authorization is not `Bearer TOKEN`",
  wrong: "wrong bearer token",
};

/**
 * Middleware that lets a request through only with `Authorization: Bearer <token>`; otherwise it
 * answers with `refuse(c, why)`, to which the matching `WWW-Authenticate` challenge is added.
 *
 * @throws TypeError when `token` is not a bearer token (RFC 6750 §2.1): no request could ever
 *   present it. The message does not quote the token.
 */
export function bearerTokenAuth(
  token: string,
  refuse: (c: Context, why: BearerRefusal) => Response,
): MiddlewareHandler {
  const fault = bearerTokenFault(token);
  if (fault !== undefined) throw new TypeError(`the admin token ${fault}`);
  const on = (why: BearerRefusal) => ({
    message: (c: Context) => refuse(c, why),
    wwwAuthenticateHeader: BEARER_CHALLENGES[why],
  });
  return bearerAuth({
    token,
    prefix: BEARER_SCHEME,
    noAuthenticationHeader: on("missing"),
    invalidAuthenticationHeader: on("malformed"),
    invalidToken: on("wrong"),
  });
}
