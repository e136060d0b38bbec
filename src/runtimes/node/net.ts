/**
 * The socket contract on `node:net` and `node:dns`. Reads pull from a bounded queue (the
 * socket is paused above {@link READ_QUEUE_HIGH_WATER}); writes resolve at once unless the
 * socket asks for `drain`; tunnels use `stream.pipe`, Node's native relay.
 *
 * @module
 */
import { createAdaptorServer } from "@hono/node-server";
import type { Server } from "node:http";
import { lookup } from "node:dns/promises";
import { realpath } from "node:fs/promises";
import * as net from "node:net";
import {
  DialError,
  type Conn,
  type DialFailure,
  type DialOptions,
  type FetchHandler,
  type Listener,
  type Net,
  type NetAddr,
} from "../../core/net/contract.ts";
import { unmapIpv4 } from "../../core/net/ip.ts";
import { bindDgram } from "../shared/dgram-udp.ts";

/** How long a closed connection with unsent bytes may take to flush before it is destroyed. */
export const CLOSE_LINGER_MS = 5_000;

/** Bytes a connection may hold unread before the socket is paused. */
export const READ_QUEUE_HIGH_WATER = 256 * 1024;

type Waiter = { resolve: (chunk: Uint8Array | null) => void; reject: (e: Error) => void };

/** A {@link Conn} over a `net.Socket` (created with `allowHalfOpen: true`). */
export class NodeConn implements Conn {
  readonly remote: NetAddr;
  readonly local: NetAddr;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private eof = false;
  private failure: Error | null = null;
  private waiter: Waiter | null = null;
  private relaying = false;

  constructor(readonly socket: net.Socket) {
    this.remote = { host: unmapIpv4(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
    this.local = { host: unmapIpv4(socket.localAddress ?? ""), port: socket.localPort ?? 0 };
    socket.on("data", (chunk: Uint8Array) => {
      // Socket reads are freshly allocated per read (not a pooled slab), so keeping the view is safe.
      const w = this.waiter;
      if (w && this.queue.length === 0) {
        this.waiter = null;
        w.resolve(chunk);
        return;
      }
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued > READ_QUEUE_HIGH_WATER) socket.pause();
    });
    socket.on("end", () => {
      this.eof = true;
      this.wake();
    });
    socket.on("error", (e) => {
      this.failure = e;
      this.wake();
    });
    socket.on("close", () => {
      if (!this.eof && !this.failure) this.failure = new Error("connection closed");
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (!w || this.queue.length > 0) return;
    this.waiter = null;
    if (this.eof) w.resolve(null);
    else if (this.failure) w.reject(this.failure);
  }

  read(): Promise<Uint8Array | null> {
    const chunk = this.queue.shift();
    if (chunk) {
      this.queued -= chunk.length;
      if (this.queued <= READ_QUEUE_HIGH_WATER && this.socket.isPaused() && !this.relaying) this.socket.resume();
      return Promise.resolve(chunk);
    }
    if (this.eof) return Promise.resolve(null);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error("concurrent read on one connection"));
    if (this.socket.isPaused() && !this.relaying) this.socket.resume();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
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

  close(): void {
    const s = this.socket;
    if (s.destroyed) return;
    if (s.writableLength === 0 || s.writableEnded) return void s.destroy();
    // Bytes still buffered in Node would be dropped by destroy(): flush them, then close; a
    // peer that does not read is cut off after CLOSE_LINGER_MS.
    s.end(() => s.destroy());
    setTimeout(() => s.destroy(), CLOSE_LINGER_MS).unref();
  }

  /** Hand the socket over to a native relay: returns what was queued and whether FIN was seen. */
  detach(): { pending: Uint8Array[]; eof: boolean } {
    this.relaying = true;
    this.socket.removeAllListeners("data");
    this.socket.pause();
    const pending = this.queue;
    this.queue = [];
    this.queued = 0;
    return { pending, eof: this.eof };
  }
}

function dialFailure(e: NodeJS.ErrnoException): DialFailure {
  switch (e.code) {
    case "ECONNREFUSED":
      return "refused";
    case "EHOSTUNREACH":
      return "host_unreachable";
    case "ENETUNREACH":
      return "network_unreachable";
    case "ETIMEDOUT":
    case "ABORT_ERR":
      return "timeout";
    default:
      return "other";
  }
}

/** Relay two Node connections with `pipe`, half-close carried both ways. */
function pipeRelay(a: NodeConn, b: NodeConn): Promise<void> {
  return new Promise((resolve) => {
    const sa = a.socket;
    const sb = b.socket;
    let closed = 0;
    const onClose = (): void => {
      if (++closed === 2) resolve();
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
      else from.socket.pipe(to.socket);
      from.socket.resume();
    };
    start(a, b);
    start(b, a);
    // With allowHalfOpen, a socket whose both halves ended is destroyed by Node itself.
  });
}

/** The Node implementation of {@link Net}. */
export const nodeNet: Net = {
  listenTcp(addr, onConn) {
    return new Promise<Listener>((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        if (socket.remoteAddress === undefined) {
          socket.destroy(); // already gone between accept and callback
          return;
        }
        onConn(new NodeConn(socket));
      });
      server.once("error", reject);
      server.listen({ host: addr.host, port: addr.port, exclusive: true }, () => {
        server.off("error", reject);
        const a = server.address() as net.AddressInfo;
        resolve({
          addr: { host: a.address, port: a.port },
          close: () => new Promise<void>((r) => server.close(() => r())),
        });
      });
    });
  },

  connectTcp(addr: NetAddr, options?: DialOptions) {
    return new Promise<Conn>((resolve, reject) => {
      const socket = net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true, noDelay: true });
      const signal = options?.signal;
      const onAbort = (): void => {
        socket.destroy();
        reject(new DialError("timeout", addr, "dial aborted or timed out"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      socket.once("error", (e: NodeJS.ErrnoException) => {
        signal?.removeEventListener("abort", onAbort);
        reject(new DialError(dialFailure(e), addr, e.message));
      });
      socket.once("connect", () => {
        signal?.removeEventListener("abort", onAbort);
        socket.removeAllListeners("error");
        resolve(new NodeConn(socket));
      });
    });
  },

  serveHttp(addr: NetAddr, fetch: FetchHandler) {
    return new Promise<Listener>((resolve, reject) => {
      const server = createAdaptorServer({ fetch, hostname: addr.host, port: addr.port }) as Server;
      server.once("error", reject);
      server.listen({ host: addr.host, port: addr.port, exclusive: true }, () => {
        server.off("error", reject);
        const a = server.address() as net.AddressInfo;
        resolve({
          addr: { host: a.address, port: a.port },
          close: () =>
            new Promise<void>((r) => {
              server.close(() => r());
              server.closeAllConnections();
            }),
        });
      });
    });
  },

  bindUdp: bindDgram,

  connectUnix(path: string) {
    return new Promise<Conn>((resolve, reject) => {
      const socket = net.connect({ path, allowHalfOpen: true });
      socket.once("error", (e: NodeJS.ErrnoException) => reject(new DialError(dialFailure(e), { host: path, port: 0 }, e.message)));
      socket.once("connect", () => {
        socket.removeAllListeners("error");
        resolve(new NodeConn(socket));
      });
    });
  },

  realPath: (path: string) => realpath(path),

  async resolve(host: string) {
    const found = await lookup(host, { all: true, verbatim: true });
    return found.map((r) => r.address);
  },

  relay(a: Conn, b: Conn) {
    if (!(a instanceof NodeConn) || !(b instanceof NodeConn)) return undefined;
    return pipeRelay(a, b);
  },
};
