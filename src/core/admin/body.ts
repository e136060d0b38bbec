/**
 * The admin API's request body limit (docs/behaviour.md §7: over 8 KiB → `413`), on Hono's own
 * `bodyLimit` middleware. Hono refuses a declared `Content-Length` over the limit before reading
 * and counts the bytes of a body without one (chunked). This module adds the two checks Hono
 * leaves to the server in front of it, so the app answers the same when it is called directly
 * (`app.request()`, a host's own `fetch` handler):
 *
 * - a `Content-Length` that is not digits is `400`, naming it (Hono would read it as a number
 *   prefix), and one over the limit is `413` even when no body came with it (Hono only looks at
 *   the header of a request that has a body);
 * - {@link readBoundedBody} counts while it reads and stops at the first byte past the limit, for
 *   a request whose `Content-Length` understated its body. An HTTP server never hands the app
 *   more bytes than the declared length, so this only matters when the app is called directly.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { readBounded } from "../net/bytes.ts";

/** Largest admin request body accepted, in bytes (8 KiB). */
export const MAX_ADMIN_BODY_BYTES = 8192;

/** Digits only: a `Content-Length` with anything else (sign, spaces inside, list) is refused. */
const CONTENT_LENGTH_SYNTAX = /^[0-9]+$/;

/** How {@link adminBodyLimit} answers a refused body. */
export interface BodyRefusals {
  /** The body is over the limit (declared or counted). */
  tooLarge(c: Context): Response;
  /** `Content-Length` is not a number; `value` is the header as sent. */
  badLength(c: Context, value: string): Response;
}

/** Middleware that refuses a body over `limit` bytes or with a malformed `Content-Length`. */
export function adminBodyLimit(refuse: BodyRefusals, limit: number = MAX_ADMIN_BODY_BYTES): MiddlewareHandler {
  const honoLimit = bodyLimit({ maxSize: limit, onError: (c) => refuse.tooLarge(c) });
  return async (c, next) => {
    const declared = c.req.header("content-length");
    if (declared !== undefined) {
      const digits = declared.trim();
      if (!CONTENT_LENGTH_SYNTAX.test(digits)) return refuse.badLength(c, declared);
      if (Number(digits) > limit) return refuse.tooLarge(c);
    }
    return honoLimit(c, next);
  };
}

/**
 * The whole body of a request that went through {@link adminBodyLimit}, or `undefined` when it
 * is longer than `limit` (a `Content-Length` that understated it). Reading stops, and the body
 * stream is cancelled, at the first chunk past the limit: at most one chunk more is held.
 */
export async function readBoundedBody(c: Context, limit: number = MAX_ADMIN_BODY_BYTES): Promise<Uint8Array | undefined> {
  return readBounded(c.req.raw.body, limit);
}
