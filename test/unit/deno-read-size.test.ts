/**
 * The Deno adapter's read-buffer sizing (src/runtimes/deno/read-size.ts): grow while reads fill
 * the buffer, back to the minimum after a short read; small chunks are copied out of large
 * buffers. (How DenoConn applies it is in deno-adapter.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { fittedReadSize, nextReadSize, READ_BUFFER_FIT_LIMIT_BYTES, READ_BUFFER_MAX_BYTES, READ_BUFFER_MIN_BYTES, readChunk } from "../../src/runtimes/deno/read-size.ts";

describe("nextReadSize", () => {
  it("the minimum is a few KiB, the maximum 64 KiB", () => {
    expect(READ_BUFFER_MIN_BYTES).toBeLessThanOrEqual(4 * 1024);
    expect(READ_BUFFER_MAX_BYTES).toBe(64 * 1024);
  });

  it("doubles after a read that filled its buffer, capped at the maximum", () => {
    expect(nextReadSize(READ_BUFFER_MIN_BYTES, READ_BUFFER_MIN_BYTES)).toBe(2 * READ_BUFFER_MIN_BYTES);
    expect(nextReadSize(32 * 1024, 32 * 1024)).toBe(64 * 1024);
    expect(nextReadSize(READ_BUFFER_MAX_BYTES, READ_BUFFER_MAX_BYTES)).toBe(READ_BUFFER_MAX_BYTES);
  });

  it("falls back to the minimum after any short read", () => {
    expect(nextReadSize(READ_BUFFER_MAX_BYTES, READ_BUFFER_MAX_BYTES - 1)).toBe(READ_BUFFER_MIN_BYTES);
    expect(nextReadSize(8 * 1024, 1)).toBe(READ_BUFFER_MIN_BYTES);
    expect(nextReadSize(READ_BUFFER_MIN_BYTES, 10)).toBe(READ_BUFFER_MIN_BYTES);
  });
});

describe("fittedReadSize", () => {
  it.each([
    [0, 1024],
    [100, 1024],
    [1023, 1024],
    [1024, 2048], // an exact fit would fill the buffer and look like more waiting
    [1300, 2048],
    [4096, 8192],
    [8191, 8192],
    [READ_BUFFER_FIT_LIMIT_BYTES, READ_BUFFER_MIN_BYTES], // a bulk transfer: back to the minimum
    [1_000_000, READ_BUFFER_MIN_BYTES],
  ])("a message of %i bytes → the next read holds %i", (total, size) => {
    expect(fittedReadSize(total)).toBe(size);
  });
});

describe("readChunk", () => {
  it("copies a chunk that uses at most half of a buffer larger than the minimum", () => {
    const buf = new Uint8Array(64 * 1024).fill(1);
    const chunk = readChunk(buf, 100);
    expect(chunk.length).toBe(100);
    expect(chunk.buffer).not.toBe(buf.buffer);
    expect(chunk.buffer.byteLength).toBe(100);
  });

  it("keeps a view when the chunk fills most of the buffer, or the buffer is the small one", () => {
    const big = new Uint8Array(64 * 1024);
    expect(readChunk(big, 40_000).buffer).toBe(big.buffer);
    const small = new Uint8Array(READ_BUFFER_MIN_BYTES);
    expect(readChunk(small, 10).buffer).toBe(small.buffer);
  });
});
