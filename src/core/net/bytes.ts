/**
 * Byte helpers shared by the protocol parsers. HTTP heads are handled as latin1 strings so
 * every byte round-trips unchanged (RFC 9110 §5.5 obs-text).
 *
 * @module
 */

const utf8Encoder = new TextEncoder();

/**
 * Faster byte primitives a runtime adapter may install (Node: its pooled `Buffer` allocator and
 * native latin1 encoder, several times cheaper for the small arrays made on every request than
 * `new Uint8Array`, which allocates and zero-fills a backing store each time).
 */
export interface FastBytes {
  /** A new array of `n` bytes; its contents may be anything: every caller writes all of them. */
  allocate(n: number): Uint8Array;
  /** `text` (chars up to 0xFF) as latin1 bytes. */
  latin1(text: string): Uint8Array;
}

let fast: FastBytes | undefined;

/**
 * Use `impl` for {@link latin1Bytes} and {@link concatBytes} from now on (process-wide);
 * `undefined` goes back to the portable code.
 */
export function installFastBytes(impl: FastBytes | undefined): void {
  fast = impl;
}

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
  if (fast) return fast.latin1(text);
  // ASCII (every head the proxy writes, in practice) is the same in UTF-8: encode it natively.
  // Any other char takes two or more UTF-8 bytes, so an equal length means ASCII only.
  const utf8 = utf8Encoder.encode(text);
  if (utf8.length === text.length) return utf8;
  const out = new Uint8Array(text.length);
  writeLatin1(out, 0, text);
  return out;
}

/** Write `text` into `out` at `at` as latin1 (chars above 0xFF keep their low byte); where the next byte goes. */
export function writeLatin1(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i) & 0xff;
  return at;
}

/** UTF-8 encode. */
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** A new array of `n` bytes whose contents may be anything: the caller writes all of them. */
export function allocBytes(n: number): Uint8Array {
  return fast ? fast.allocate(n) : new Uint8Array(n);
}

/** Concatenate chunks into one new array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!; // not a copy: the caller gets its own chunk back
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = allocBytes(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * All of `stream` (none: empty), or `undefined` when it holds more than `limit` bytes: reading
 * stops, and the stream is cancelled, at the first chunk past the limit (at most one chunk more
 * is held).
 */
export async function readBounded(stream: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array | undefined> {
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    parts.push(value);
  }
  return concatBytes(parts);
}

/** Whether `bytes` from `at` hold the chars of `text` (each below 0x100), exactly. */
export function spellsAt(bytes: Uint8Array, at: number, text: string): boolean {
  for (let j = 0; j < text.length; j++) if (bytes[at + j] !== text.charCodeAt(j)) return false;
  return true;
}

/** Whether `bytes` from `at` hold `lower` (ASCII, lower case) with ASCII letters in any case. */
export function spellsLowerAt(bytes: Uint8Array, at: number, lower: string): boolean {
  for (let j = 0; j < lower.length; j++) {
    let c = bytes[at + j]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== lower.charCodeAt(j)) return false;
  }
  return true;
}

/** Index of `\r\n` at or after `from`, or -1. */
export function indexOfCrlf(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 1 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10) return i;
  }
  return -1;
}
