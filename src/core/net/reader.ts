/**
 * A read buffer over a {@link Conn}: protocol sessions peek at what has arrived, consume what a
 * pure parser accepted, and stream the rest without copying.
 *
 * @module
 */
import type { Conn } from "./contract.ts";
import { withTimeout } from "./timeout.ts";

/** A read that did not complete before its deadline. */
export class ReadTimeoutError extends Error {
  constructor(readonly ms: number) {
    super(`no data within ${ms} ms`);
    this.name = "ReadTimeoutError";
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Buffered reading over a connection. Not safe for concurrent readers. Appending grows the
 * storage geometrically, so a peer trickling bytes costs linear copying, not quadratic.
 */
export class BufferedReader {
  /** Storage; the unread bytes are `store[start, end)`. */
  private store: Uint8Array = EMPTY;
  private start = 0;
  private end = 0;
  /** Whether `store` is our own allocation (else an adopted chunk, never written to). */
  private owned = false;
  private eof = false;

  constructor(readonly conn: Conn) {}

  /** Bytes received and not yet consumed. */
  get buffered(): Uint8Array {
    return this.store.subarray(this.start, this.end);
  }

  /** True once the peer's FIN was read and the buffer is drained. */
  get ended(): boolean {
    return this.eof && this.start === this.end;
  }

  /**
   * Read one more chunk into the buffer. Returns false at end of stream. With `deadline`
   * (a `Date.now()` instant), rejects with {@link ReadTimeoutError} when it passes; the caller
   * then closes the connection, which settles the abandoned read.
   */
  async fill(deadline?: number): Promise<boolean> {
    if (this.eof) return false;
    const chunk = deadline === undefined ? await this.conn.read() : await readBefore(this.conn, deadline);
    if (chunk === null) {
      this.eof = true;
      return false;
    }
    this.append(chunk);
    return true;
  }

  private append(chunk: Uint8Array): void {
    const live = this.end - this.start;
    if (live === 0) {
      // Adopt the chunk as it is: the common case costs no copy.
      this.store = chunk;
      this.owned = false;
      this.start = 0;
      this.end = chunk.length;
      return;
    }
    // Never write into an adopted chunk (memory we did not allocate); grow geometrically.
    if (!this.owned || this.end + chunk.length > this.store.length) {
      const grown = new Uint8Array(Math.max(2 * (live + chunk.length), 1024));
      grown.set(this.store.subarray(this.start, this.end), 0);
      this.store = grown;
      this.owned = true;
      this.start = 0;
      this.end = live;
    }
    this.store.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** Drop `n` bytes from the front of the buffer. */
  consume(n: number): void {
    this.start = Math.min(this.end, this.start + n);
    if (this.start === this.end) {
      this.store = EMPTY;
      this.start = this.end = 0;
    }
  }

  /**
   * Up to `max` bytes: buffered ones first, else the next chunk from the connection.
   * `null` at end of stream.
   */
  async readUpTo(max: number): Promise<Uint8Array | null> {
    if (this.start === this.end) {
      if (this.eof) return null;
      const chunk = await this.conn.read();
      if (chunk === null) {
        this.eof = true;
        return null;
      }
      if (chunk.length <= max) return chunk;
      this.append(chunk);
    }
    const n = Math.min(max, this.end - this.start);
    const out = this.store.subarray(this.start, this.start + n);
    this.consume(n);
    return out;
  }

  /** Take everything buffered (for handing a connection over to a relay). */
  takeBuffered(): Uint8Array {
    const out = this.buffered;
    this.store = EMPTY;
    this.start = this.end = 0;
    return out;
  }
}

/** `conn.read()` raced against an absolute deadline. */
export function readBefore(conn: Conn, deadline: number): Promise<Uint8Array | null> {
  const ms = Math.max(0, deadline - Date.now());
  return withTimeout(conn.read(), ms, () => {
    throw new ReadTimeoutError(ms);
  });
}
