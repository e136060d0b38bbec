/**
 * Reads of a dialled `net.Socket` into buffers of our own (Node's `onread` option) instead of a
 * fresh 64 KiB buffer per read: in a tunnel, a chunk the destination socket took whole is done
 * with when `write()` returns, so the next read reuses the same memory. That makes a Node tunnel
 * markedly faster (no allocation and no garbage per chunk; BENCHMARKS.md, profile notes).
 *
 * Memory stays small for idle connections: the buffer starts at {@link SMALL_READ_BYTES}, grows
 * to {@link LARGE_READ_BYTES} only while reads fill it, and shrinks back after a short read. A
 * buffer something still refers to (a chunk handed to the read queue, or a write Node queued
 * because the destination did not take it all) is never read into again: the next read gets a
 * new one.
 *
 * Memory stays proportional to what is kept: a chunk for the read queue that uses at most half
 * of its buffer is copied out (so a queued 3 KiB chunk never pins a large buffer), and in a
 * relay, a chunk written while the target already has a queue is written as a copy, so at most
 * one buffer per direction is pinned by Node's queue.
 *
 * Flow control uses `socket.pause()`/`resume()`, which stop and restart the reads of an
 * `onread` socket (checked on Node 20).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type * as net from "node:net";

/**
 * The read buffer of an idle or lightly used connection. Under Node's pool threshold (4 KiB), so
 * it is a slice of a shared slab whose pages are touched only when read into: 10,000 idle
 * tunnels measured 259 MiB with it, 281 MiB with 4 KiB buffers of their own. A small HTTP
 * response (head and 1 KiB body) still arrives in one read.
 */
export const SMALL_READ_BYTES = 2 * 1024;
/**
 * The read buffer while reads fill the small one: a bulk transfer. As large as the Deno relay's
 * largest (`RELAY_BUFFER_MAX_BYTES`): fewer reads and writes per byte; through the Node proxy
 * on loopback, alternating runs moved CONNECT downloads 1,340–1,550 MB/s with 64 KiB and
 * 1,260–1,880 with 256 KiB, SOCKS5 1,130–1,560 against 1,450–2,060 (BENCHMARKS.md, note 17).
 * A tunnel that stalls pins at most one such buffer per direction (see the module comment).
 */
export const LARGE_READ_BYTES = 256 * 1024;

/** The `onread` reads of one socket; see the module comment. */
export class OwnReads {
  private buffer: Buffer = Buffer.allocUnsafe(SMALL_READ_BYTES);
  /** Something outside still refers to `buffer`: never read into it again. */
  private taken = false;
  /** The last read filled the buffer: more is likely waiting. */
  private filled = false;
  private socket: net.Socket | undefined;
  /** Until a relay takes over: where chunks go (the connection's read queue). */
  private deliver: ((chunk: Uint8Array) => void) | undefined;
  /** In a relay: the socket chunks are written to. */
  private target: net.Socket | undefined;
  private waitingForDrain = false;

  /** The `onread` option to create the socket with. */
  readonly option = {
    buffer: (): Uint8Array => this.next(),
    callback: (n: number, buf: Uint8Array): boolean => {
      this.onRead(n, buf as Buffer);
      return true;
    },
  };

  /** The socket created with {@link option}, and where its chunks go until {@link relayTo}. */
  attach(socket: net.Socket, deliver: (chunk: Uint8Array) => void): void {
    this.socket = socket;
    this.deliver = deliver;
  }

  /** From now on write every chunk to `target`, pausing reads while it does not drain. */
  relayTo(target: net.Socket): void {
    this.target = target;
    this.deliver = undefined;
  }

  /** The buffer for the next read. */
  private next(): Buffer {
    const want = this.filled ? LARGE_READ_BYTES : SMALL_READ_BYTES;
    if (this.taken || this.buffer.length !== want) {
      this.buffer = Buffer.allocUnsafe(want);
      this.taken = false;
    }
    return this.buffer;
  }

  private onRead(n: number, buf: Buffer): void {
    this.filled = n === buf.length;
    const chunk = buf.subarray(0, n);
    const target = this.target;
    if (target) {
      // Behind an existing queue, Node would keep this memory queued: give it a copy instead.
      const queued = target.writableLength > 0;
      const more = target.write(queued ? Buffer.from(chunk) : chunk);
      // A write Node could not finish at once keeps a reference to this memory.
      if (!queued && target.writableLength > 0) this.taken = true;
      if (!more && !this.waitingForDrain) {
        this.waitingForDrain = true;
        this.socket!.pause();
        target.once("drain", () => {
          this.waitingForDrain = false;
          this.socket!.resume();
        });
      }
      return;
    }
    if (n <= buf.length / 2) {
      this.deliver?.(Buffer.from(chunk)); // the queue's count then matches the memory it holds
    } else {
      this.taken = true;
      this.deliver?.(chunk);
    }
  }
}
