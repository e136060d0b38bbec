/**
 * The one outstanding `Conn.read()` of an event-driven socket (Node's `net.Socket`, Bun's
 * socket handlers): the adapter queues chunks as they arrive and hands them to the waiting
 * read, if any. A read may be withdrawn (`Conn.cancelRead`) without losing bytes: whatever
 * arrives afterwards goes to the queue, and so to the next read.
 *
 * @module
 */

/** One chunk, or `null` for end of stream. */
export type Chunk = Uint8Array | null;

interface Waiter {
  resolve(chunk: Chunk): void;
  reject(e: Error): void;
}

/** The slot for the single pending read of one connection. */
export class PendingRead {
  private waiter: Waiter | null = null;

  /** Wait for {@link resolve} or {@link reject}. A second concurrent wait is refused. */
  wait(): Promise<Chunk> {
    if (this.waiter) return Promise.reject(new Error("concurrent read on one connection"));
    return new Promise<Chunk>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Hand `chunk` to the waiting read. False when none waits (queue the chunk instead). */
  resolve(chunk: Chunk): boolean {
    const w = this.waiter;
    if (!w) return false;
    this.waiter = null;
    w.resolve(chunk);
    return true;
  }

  /**
   * Fail the waiting read with `e` (the connection failed, or the read is withdrawn: then
   * later chunks go to the queue). False when none waits.
   */
  reject(e: Error): boolean {
    const w = this.waiter;
    if (!w) return false;
    this.waiter = null;
    w.reject(e);
    return true;
  }
}
