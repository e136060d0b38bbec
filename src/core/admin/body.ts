/**
 * Reading an admin request body with a hard size limit (docs/behaviour.md §7: over 8 KiB → `413`).
 * The declared `Content-Length` is checked first, then the bytes actually read from the body
 * stream are counted, so a chunked or lying body cannot get past the limit.
 *
 * @module
 */

/** Largest admin request body accepted, in bytes (8 KiB). */
export const MAX_ADMIN_BODY_BYTES = 8192;

/** The result of {@link readLimitedBody}. */
export type BodyResult =
  | { readonly kind: "ok"; readonly bytes: Uint8Array }
  | { readonly kind: "too_large" }
  | { readonly kind: "bad_length"; readonly value: string };

/** Digits only: a `Content-Length` with anything else (sign, spaces inside, list) is refused. */
const CONTENT_LENGTH_SYNTAX = /^[0-9]+$/;

/**
 * Read the whole body of `request`, refusing it as soon as it is known to exceed `limit` bytes
 * (declared length, or counted bytes). The stream is cancelled when refused.
 */
export async function readLimitedBody(request: Request, limit: number = MAX_ADMIN_BODY_BYTES): Promise<BodyResult> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const trimmed = declared.trim();
    if (!CONTENT_LENGTH_SYNTAX.test(trimmed)) return { kind: "bad_length", value: declared };
    if (Number(trimmed) > limit) {
      await cancelQuietly(request.body);
      return { kind: "too_large" };
    }
  }
  const stream = request.body;
  if (stream === null) return { kind: "ok", bytes: new Uint8Array(0) };

  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return { kind: "too_large" };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { kind: "ok", bytes };
}

async function cancelQuietly(stream: ReadableStream<Uint8Array> | null): Promise<void> {
  if (stream === null) return;
  try {
    await stream.cancel();
  } catch {
    // Already locked or errored: nothing more to release.
  }
}
