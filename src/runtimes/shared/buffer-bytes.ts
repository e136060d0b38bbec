/**
 * The core's byte primitives on `node:buffer` (see `FastBytes` in core/net/bytes.ts): small
 * arrays come from Node's pooled allocator (slices of a shared 8 KiB slab, not zero-filled, which
 * is safe because every caller writes all of them) and latin1 encoding is native.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { FastBytes } from "../../core/net/bytes.ts";

/** `FastBytes` on `Buffer.allocUnsafe` and `Buffer.from(text, "latin1")` (Node, Bun). */
export const bufferBytes: FastBytes = {
  allocate: (n) => Buffer.allocUnsafe(n),
  latin1: (text) => Buffer.from(text, "latin1"),
};

const encoder = new TextEncoder();

/**
 * `text` as latin1 bytes in a pooled `Buffer`, encoded by `TextEncoder.encodeInto`. An ASCII
 * string (every head the proxy writes, in practice) is the same in UTF-8, and any other char takes
 * two or more UTF-8 bytes, so the whole string fitting into `text.length` bytes means ASCII only;
 * anything else is encoded a char at a time (low byte, as `Buffer.from(text, "latin1")` does).
 */
function latin1ViaEncodeInto(text: string): Uint8Array {
  const out = Buffer.allocUnsafe(text.length);
  const done = encoder.encodeInto(text, out);
  if (done.read === text.length && done.written === text.length) return out;
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/**
 * `FastBytes` for Deno: its `Buffer.from(text, "latin1")` encodes in JavaScript, a char at a
 * time (about 1.6 µs for a 250-byte response head), where `encodeInto` is native (about 0.16 µs).
 */
export const encodeIntoBytes: FastBytes = {
  allocate: (n) => Buffer.allocUnsafe(n),
  latin1: latin1ViaEncodeInto,
};
