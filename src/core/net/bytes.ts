/**
 * Byte helpers shared by the protocol parsers. HTTP heads are handled as latin1 strings so
 * every byte round-trips unchanged (RFC 9110 §5.5 obs-text).
 *
 * @module
 */

const utf8Encoder = new TextEncoder();

/** Decode bytes as latin1: one char per byte, nothing lost. */
export function latin1(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let out = "";
  // Chunked so `String.fromCharCode.apply` never exceeds the engine's argument limit.
  for (let i = start; i < end; i += 8192) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + 8192)) as unknown as number[]);
  }
  return out;
}

/** Encode a latin1 string (chars above 0xFF are truncated to their low byte). */
export function latin1Bytes(text: string): Uint8Array {
  // ASCII (every head the proxy writes, in practice) is the same in UTF-8: encode it natively.
  // Any other char takes two or more UTF-8 bytes, so an equal length means ASCII only.
  const fast = utf8Encoder.encode(text);
  if (fast.length === text.length) return fast;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** UTF-8 encode. */
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Concatenate chunks into one new array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!; // not a copy: the caller gets its own chunk back
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Index of `\r\n` at or after `from`, or -1. */
export function indexOfCrlf(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 1 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  }
  return -1;
}
