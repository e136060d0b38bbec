/**
 * The core's byte primitives on `node:buffer` (see `FastBytes` in core/net/bytes.ts): small
 * arrays come from Node's pooled allocator (slices of a shared 8 KiB slab, not zero-filled, which
 * is safe because every caller writes all of them) and latin1 encoding is native.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { FastBytes } from "../../core/net/bytes.ts";

/** `FastBytes` on `Buffer.allocUnsafe` and `Buffer.from(text, "latin1")`. */
export const bufferBytes: FastBytes = {
  allocate: (n) => Buffer.allocUnsafe(n),
  latin1: (text) => Buffer.from(text, "latin1"),
};
