/**
 * How big each `conn.read()` buffer of the Deno adapter is. Deno reads into a buffer handed
 * over before any byte has arrived, and a read waiting for data holds its buffer all along: at
 * a fixed 64 KiB, every idle tunnel (two connections, each with a read waiting) held 128 KiB.
 * So the size adapts to the traffic: a read that fills its buffer doubles the next one (more
 * is waiting: bulk transfer), up to {@link READ_BUFFER_MAX_BYTES}; a read that does not fill it
 * means the socket was drained, so the next read will likely wait. A connection's next read
 * then fits the message that just ended (the bytes of the reads since the last short one), when
 * that was small ({@link fittedReadSize}): a kept-alive upstream answering 1.3 KB responses
 * needed two reads per response at a fixed 1 KiB, a third of Deno's cost per request. After a
 * bulk transfer it gets {@link READ_BUFFER_MIN_BYTES}.
 *
 * @module
 */

/**
 * Buffer of a connection's first read, and of every read after one that did not fill its
 * buffer: what an idle connection holds (1 KiB against 2 KiB saved about 1 KiB per idle tunnel).
 */
export const READ_BUFFER_MIN_BYTES = 1024;

/** Largest read buffer, reached while reads keep filling their buffer (bulk transfer). */
export const READ_BUFFER_MAX_BYTES = 64 * 1024;

/**
 * Largest read buffer of a tunnel direction (`relay.ts`), reached only while every read fills its
 * buffer, that is while the socket has that much queued. Fewer, larger reads and writes: a
 * minimal Deno relay moved 2.2–2.4 GB/s with 256 KiB against 1.7–2.2 with 64 KiB.
 */
export const RELAY_BUFFER_MAX_BYTES = 256 * 1024;

/**
 * A message (the bytes a connection received since its last short read) smaller than this sets
 * the size of the next read to fit it; a larger one is a bulk transfer, after which the next read
 * is the minimum. So a connection waiting for data holds at most this much.
 */
export const READ_BUFFER_FIT_LIMIT_BYTES = 8 * 1024;

/**
 * Size of a connection's next read after a message of `total` bytes ended (a short read): the
 * smallest power of two from {@link READ_BUFFER_MIN_BYTES} that holds `total` with room to spare
 * (a message that exactly filled the buffer would look like more waiting), or the minimum after
 * a message of {@link READ_BUFFER_FIT_LIMIT_BYTES} or more.
 */
export function fittedReadSize(total: number): number {
  if (total >= READ_BUFFER_FIT_LIMIT_BYTES) return READ_BUFFER_MIN_BYTES;
  let size = READ_BUFFER_MIN_BYTES;
  while (size <= total) size *= 2;
  return size;
}

/**
 * Size of the next read buffer after a read into `size` bytes returned `n` bytes, growing up to
 * `max` (a tunnel direction's policy: after a short read, the minimum).
 */
export function nextReadSize(size: number, n: number, max: number = READ_BUFFER_MAX_BYTES): number {
  return n >= size ? Math.min(size * 2, max) : READ_BUFFER_MIN_BYTES;
}

/**
 * The chunk a read of `n` bytes into `buf` yields. A chunk using at most half of a buffer
 * larger than {@link READ_BUFFER_MIN_BYTES} is copied out, so a chunk someone keeps (a request
 * head waiting for its body, a queued write) never pins a mostly empty 64 KiB buffer.
 */
export function readChunk(buf: Uint8Array, n: number): Uint8Array {
  return buf.length > READ_BUFFER_MIN_BYTES && n <= buf.length / 2 ? buf.slice(0, n) : buf.subarray(0, n);
}
