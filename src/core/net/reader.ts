/**
 * A read buffer over a {@link Conn}: protocol sessions peek at what has arrived, consume what a
 * pure parser accepted, and stream the rest without copying.
 *
 * @module
 */
import { concatBytes } from "./bytes.ts";
import type { Conn } from "./contract.ts";

/** A read that did not complete before its deadline. */
export class ReadTimeoutError extends Error {
  constructor(readonly ms: number) {
    super(`no data within ${ms} ms`);
    this.name = "ReadTimeoutError";
  }
}

const EMPTY = new Uint8Array(0);

/** Buffered reading over a connection. Not safe for concurrent readers. */
export class BufferedReader {
  private buf: Uint8Array = EMPTY;
  private eof = false;

  constructor(readonly conn: Conn) {}

  /** Bytes received and not yet consumed. */
  get buffered(): Uint8Array {
    return this.buf;
  }

  /** True once the peer's FIN was read and the buffer is drained. */
  get ended(): boolean {
    return this.eof && this.buf.length === 0;
  }

  /** True once the peer's FIN was read (bytes may still be buffered). */
  get sawEof(): boolean {
    return this.eof;
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
    this.buf = this.buf.length === 0 ? chunk : concatBytes([this.buf, chunk]);
    return true;
  }

  /** Drop `n` bytes from the front of the buffer. */
  consume(n: number): void {
    this.buf = n >= this.buf.length ? EMPTY : this.buf.subarray(n);
  }

  /**
   * Up to `max` bytes: buffered ones first, else the next chunk from the connection.
   * `null` at end of stream.
   */
  async readUpTo(max: number): Promise<Uint8Array | null> {
    if (this.buf.length === 0) {
      if (this.eof) return null;
      const chunk = await this.conn.read();
      if (chunk === null) {
        this.eof = true;
        return null;
      }
      this.buf = chunk;
    }
    const out = this.buf.length <= max ? this.buf : this.buf.subarray(0, max);
    this.consume(out.length);
    return out;
  }

  /** Take everything buffered (for handing a connection over to a relay). */
  takeBuffered(): Uint8Array {
    const out = this.buf;
    this.buf = EMPTY;
    return out;
  }
}

/** `conn.read()` raced against an absolute deadline. */
export async function readBefore(conn: Conn, deadline: number): Promise<Uint8Array | null> {
  const ms = Math.max(0, deadline - Date.now());
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReadTimeoutError(ms)), ms);
  });
  try {
    return await Promise.race([conn.read(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
