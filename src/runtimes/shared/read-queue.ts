/**
 * The read side of an event-driven socket (Node's `net.Socket`, Bun's socket handlers): chunks
 * are queued as they arrive and handed to `Conn.read()`, the socket is paused while more than
 * {@link READ_QUEUE_HIGH_WATER} bytes wait and resumed when a read drains them, and end of
 * stream or a failure reaches the pending read. Both adapters use this one queue.
 *
 * @module
 */
import { PendingRead } from "./pending-read.ts";

/** Bytes a connection may hold unread before the socket is paused. */
export const READ_QUEUE_HIGH_WATER = 256 * 1024;

/** How the queue starts and stops the socket's reading. */
export interface ReadFlow {
  pause(): void;
  resume(): void;
}

/** Received chunks, end of stream and failure of one socket, and its one pending read. */
export class ReadQueue {
  private chunks: Uint8Array[] = [];
  private queued = 0;
  private ended = false;
  private failed: Error | null = null;
  private readonly pending = new PendingRead();

  constructor(private readonly flow: ReadFlow) {}

  /** The failure that ended reading, if any (writes report it too). */
  get failure(): Error | null {
    return this.failed;
  }

  /** True once the peer's FIN arrived. */
  get eof(): boolean {
    return this.ended;
  }

  /** A chunk arrived (the queue keeps it: copy first if the runtime reuses the buffer). */
  push(chunk: Uint8Array): void {
    if (this.chunks.length === 0 && this.pending.resolve(chunk)) return;
    this.chunks.push(chunk);
    this.queued += chunk.length;
    if (this.queued > READ_QUEUE_HIGH_WATER) this.flow.pause();
  }

  /** The peer sent FIN: reads return what is queued, then `null`. */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Reading failed (the first failure is kept): reads return what is queued, then reject. */
  fail(e: Error): void {
    this.failed ??= e;
    this.wake();
  }

  /** `Conn.read()`. */
  read(): Promise<Uint8Array | null> {
    const chunk = this.chunks.shift();
    if (chunk) {
      this.queued -= chunk.length;
      if (this.queued <= READ_QUEUE_HIGH_WATER) this.flow.resume();
      return Promise.resolve(chunk);
    }
    if (this.ended) return Promise.resolve(null);
    if (this.failed) return Promise.reject(this.failed);
    const next = this.pending.wait();
    this.flow.resume();
    return next;
  }

  /** `Conn.cancelRead()`: the pending read rejects with `reason`; later chunks stay queued. */
  cancel(reason: Error): void {
    this.pending.reject(reason);
  }

  /** Take everything queued (for a native relay that reads the socket itself from now on). */
  takeAll(): Uint8Array[] {
    const out = this.chunks;
    this.chunks = [];
    this.queued = 0;
    return out;
  }

  private wake(): void {
    if (this.chunks.length > 0) return;
    if (this.ended) this.pending.resolve(null);
    else if (this.failed) this.pending.reject(this.failed);
  }
}
