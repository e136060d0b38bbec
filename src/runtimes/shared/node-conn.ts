/**
 * The socket contract's connection on a `net.Socket` (plain or TLS), and the native pipe
 * relay between two of them. Shared by the Node adapter and by the Node-compatible TLS dial
 * the Bun adapter uses.
 *
 * @module
 */
import type * as net from "node:net";
import type { Conn, NetAddr } from "../../core/net/contract.ts";
import { unmapIpv4 } from "../../core/net/ip.ts";
import type { OwnReads } from "./own-reads.ts";
import { ReadQueue } from "./read-queue.ts";

export { READ_QUEUE_HIGH_WATER } from "./read-queue.ts";

/** How long a closed connection with unsent bytes may take to flush before it is destroyed. */
export const CLOSE_LINGER_MS = 5_000;

/** A {@link Conn} over a `net.Socket` (created with `allowHalfOpen: true`). */
export class NodeConn implements Conn {
  readonly remote: NetAddr;
  readonly local: NetAddr;
  private relaying = false;
  private readonly reads: ReadQueue;

  /** `ownReads`: the socket was created with its `onread` option (a dialled socket). */
  constructor(
    readonly socket: net.Socket,
    readonly ownReads?: OwnReads,
    /** The addresses, when the socket runs over a stream and has none (a terminated TLS). */
    addrs?: { readonly remote: NetAddr; readonly local: NetAddr },
  ) {
    this.remote = addrs?.remote ?? { host: unmapIpv4(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
    this.local = addrs?.local ?? { host: unmapIpv4(socket.localAddress ?? ""), port: socket.localPort ?? 0 };
    this.reads = new ReadQueue({
      pause: () => socket.pause(),
      // A native relay reads the socket itself: the queue no longer resumes it.
      resume: () => {
        if (socket.isPaused() && !this.relaying) socket.resume();
      },
    });
    // Socket reads are freshly allocated per read (not a pooled slab), so keeping the view is safe.
    // An `onread` socket emits no `data` (its reads go through OwnReads); `end` still comes.
    socket.on("data", (chunk: Uint8Array) => this.reads.push(chunk));
    ownReads?.attach(socket, (chunk) => this.reads.push(chunk));
    socket.on("end", () => this.reads.end());
    socket.on("error", (e) => this.reads.fail(e));
    socket.on("close", () => {
      if (!this.reads.eof) this.reads.fail(new Error("connection closed"));
    });
  }

  private get failure(): Error | null {
    return this.reads.failure;
  }

  read(): Promise<Uint8Array | null> {
    return this.reads.read();
  }

  cancelRead(reason: Error): void {
    this.reads.cancel(reason);
  }

  write(bytes: Uint8Array): Promise<void> {
    const s = this.socket;
    if (s.destroyed || s.writableEnded) return Promise.reject(this.failure ?? new Error("write on a closed connection"));
    if (s.write(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        s.off("drain", done);
        s.off("close", done);
        if (s.destroyed && s.writableLength > 0) reject(this.failure ?? new Error("connection closed while writing"));
        else resolve();
      };
      s.on("drain", done);
      s.on("close", done);
    });
  }

  closeWrite(): Promise<void> {
    const s = this.socket;
    if (s.destroyed || s.writableEnded) return Promise.resolve();
    return new Promise((resolve) => s.end(resolve));
  }

  bytesRead(): number {
    return this.socket.bytesRead;
  }

  bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  close(): void {
    const s = this.socket;
    if (s.destroyed) return;
    if (s.writableLength === 0 || s.writableEnded) return void s.destroy();
    // Bytes still buffered in Node would be dropped by destroy(): flush them, then close; a
    // peer that does not read is cut off after CLOSE_LINGER_MS.
    s.end(() => s.destroy());
    setTimeout(() => s.destroy(), CLOSE_LINGER_MS).unref();
  }

  abort(): void {
    const s = this.socket;
    if (s.destroyed) return;
    this.reads.fail(new Error("connection aborted"));
    // A reset frees the kernel's send buffer at once; a pending write settles on `close`.
    if (typeof s.resetAndDestroy === "function") s.resetAndDestroy();
    else s.destroy();
  }

  /** Hand the socket over to a native relay: returns what was queued and whether FIN was seen. */
  detach(): { pending: Uint8Array[]; eof: boolean } {
    this.relaying = true;
    this.socket.removeAllListeners("data");
    this.socket.pause();
    return { pending: this.reads.takeAll(), eof: this.reads.eof };
  }
}

/** Relay two Node connections with `pipe`, half-close carried both ways. */
export function pipeRelay(a: NodeConn, b: NodeConn): Promise<"a" | "b" | undefined> {
  return new Promise((resolve) => {
    const sa = a.socket;
    const sb = b.socket;
    let closed = 0;
    /** The side whose FIN came first; none when a side was torn down instead. */
    let first: "a" | "b" | undefined;
    sa.once("end", () => (first ??= "a"));
    sb.once("end", () => (first ??= "b"));
    const onClose = (): void => {
      if (++closed === 2) resolve(first);
    };
    const fail = (): void => {
      sa.destroy();
      sb.destroy();
    };
    sa.once("close", onClose);
    sb.once("close", onClose);
    sa.on("error", fail);
    sb.on("error", fail);
    if (sa.destroyed) onClose();
    if (sb.destroyed) onClose();
    const start = (from: NodeConn, to: NodeConn): void => {
      const { pending, eof } = from.detach();
      for (const chunk of pending) to.socket.write(chunk);
      if (eof) to.socket.end();
      else if (from.ownReads) {
        // Reads land in reused buffers and are written straight to the other socket.
        from.ownReads.relayTo(to.socket);
        from.socket.once("end", () => to.socket.end());
      } else from.socket.pipe(to.socket);
      from.socket.resume();
    };
    start(a, b);
    start(b, a);
    // With allowHalfOpen, a socket whose both halves ended is destroyed by Node itself.
  });
}

