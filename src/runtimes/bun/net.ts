/**
 * The socket contract on Bun's own primitives: `Bun.listen` / `Bun.connect` (with
 * `allowHalfOpen`), `Bun.udpSocket`, `Bun.serve` for the admin API. Traps handled here:
 * `write()` may take only part of the bytes, so the rest waits for `drain`; `end()` closes both
 * directions, so half-close is `shutdown()`. Each `data` event gets a fresh Buffer of its own
 * (Bun 1.4, checked by test/unit/bun-adapter.test.ts on the installed Bun), kept as it is.
 *
 * Accepting happens inside Bun (uSockets), out of reach of this adapter:
 * - Backlog: {@link LISTEN_BACKLOG} is passed to `Bun.listen` and `Bun.serve`, but Bun 1.4.5
 *   ignores it and always listens with 512 (the Send-Q of the listening socket in `ss -ltn`).
 *   Bun accepts natively, before any JavaScript runs, so bursts drain quickly regardless.
 * - Descriptor exhaustion: a failed accept never reaches JavaScript (no event, nothing to log or
 *   back off from). The listener stays open and accepts again once descriptors are freed; until
 *   then Bun retries on every event-loop turn, which keeps one core busy.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { lookup } from "node:dns/promises";
import { realpath } from "node:fs/promises";
import {
  DialError,
  type Conn,
  type DatagramHandler,
  type DatagramSocket,
  type DialOptions,
  type FetchHandler,
  type Listener,
  type Net,
  type NetAddr,
} from "../../core/net/contract.ts";
import { unmapIpv4 } from "../../core/net/ip.ts";
import { connectNodeTls } from "../shared/node-tls.ts";
import { acceptTlsOver } from "../shared/tls-accept.ts";
import { dialFailure } from "../shared/dial-failure.ts";
import { LISTEN_BACKLOG } from "../shared/accept.ts";
import { ReadQueue } from "../shared/read-queue.ts";
import type { BunSocket, BunSocketHandler } from "./bun-types.ts";
import { bufferBytes } from "../shared/buffer-bytes.ts";
import { installFastBytes } from "../../core/net/bytes.ts";

// Pooled Buffer allocation and native latin1 for the heads and joins made per request.
installFastBytes(bufferBytes);

export { READ_QUEUE_HIGH_WATER } from "../shared/read-queue.ts";

/** How long a closed connection may take to flush before it is reset. */
export const CLOSE_LINGER_MS = 5_000;

declare const Bun: import("./bun-types.ts").BunGlobal;

/** A {@link Conn} over a Bun TCP socket. */
export class BunConn implements Conn {
  readonly remote: NetAddr;
  readonly local: NetAddr;
  private closed = false;
  private readonly reads: ReadQueue;
  /** Bytes accepted by `write()` but not yet by the socket, in order. */
  private unsent: Uint8Array[] = [];
  private drained: (() => void)[] = [];
  private finSent = false;

  constructor(readonly socket: BunSocket<BunConn>) {
    this.remote = { host: unmapIpv4(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 };
    this.local = { host: unmapIpv4(socket.localAddress ?? ""), port: socket.localPort ?? 0 };
    // The queue asks to resume on every read; only a socket it paused is resumed (a native call).
    let paused = false;
    this.reads = new ReadQueue({
      pause: () => {
        if (paused) return;
        paused = true;
        socket.pause?.();
      },
      resume: () => {
        if (!paused) return;
        paused = false;
        socket.resume?.();
      },
    });
  }

  private get failure(): Error | null {
    return this.reads.failure;
  }

  /** @internal `data` handler. */
  onData(view: Uint8Array): void {
    this.received += view.length;
    // Bun 1.4 hands each `data` event a fresh Buffer with an ArrayBuffer of its own: it is kept
    // as it is (a view of it per read cost about 1 µs per request). Anything else, such as a
    // plain Uint8Array a runtime might reuse, is copied.
    this.reads.push(view instanceof Buffer ? view : view.slice());
  }

  /** @internal `end` handler: the peer sent FIN. */
  onEnd(): void {
    this.reads.end();
  }

  /** @internal `close` / `error` handlers. A clean close by the peer is end of stream. */
  onClose(error?: Error): void {
    if (error) this.reads.fail(error);
    else if (!this.closed) this.reads.end(); // Bun may report the peer's FIN only as a close
    this.settle();
  }

  /** @internal `drain` handler: push what is still unsent. */
  onDrain(): void {
    this.flush();
  }

  read(): Promise<Uint8Array | null> {
    return this.reads.read();
  }

  cancelRead(reason: Error): void {
    this.reads.cancel(reason);
  }

  /** Bytes the `data` handler got, and bytes `write()` was given (the metrics). */
  private received = 0;
  private sent = 0;

  bytesRead(): number {
    return this.received;
  }

  bytesWritten(): number {
    return this.sent;
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.closed || this.finSent) return Promise.reject(this.failure ?? new Error("write on a closed connection"));
    if (bytes.length === 0) return Promise.resolve();
    this.sent += bytes.length;
    this.unsent.push(bytes);
    this.flush();
    if (this.unsent.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) =>
      this.drained.push(() => (this.closed && this.unsent.length > 0 ? reject(this.failure ?? new Error("connection closed while writing")) : resolve())),
    );
  }

  /** Write as much as the socket takes; settle waiters once everything went out. */
  private flush(): void {
    while (this.unsent.length > 0 && !this.closed) {
      const head = this.unsent[0]!;
      const n = this.socket.write(head);
      if (n < 0) break;
      if (n < head.length) {
        this.unsent[0] = head.subarray(n); // partial write: the rest waits for `drain`
        return;
      }
      this.unsent.shift();
    }
    if (this.unsent.length === 0) for (const d of this.drained.splice(0)) d();
  }

  async closeWrite(): Promise<void> {
    if (this.closed || this.finSent) return;
    if (this.unsent.length > 0) await new Promise<void>((r) => this.drained.push(r));
    this.finSent = true;
    if (!this.closed) this.socket.shutdown(); // FIN; reading goes on (Bun's end() would close both)
  }

  close(): void {
    if (this.closed) return;
    this.reads.fail(new Error("connection closed"));
    const unsent = this.unsent;
    this.unsent = [];
    this.settle();
    // end() flushes what the socket holds and closes gracefully; terminate() would reset the
    // connection and could drop a response written just before. A peer that does not read
    // is cut off after CLOSE_LINGER_MS.
    for (const chunk of unsent) if (this.socket.write(chunk) < chunk.length) break;
    this.socket.end();
    setTimeout(() => this.socket.terminate(), CLOSE_LINGER_MS).unref?.();
  }

  abort(): void {
    if (this.closed) {
      this.socket.terminate();
      return;
    }
    this.reads.fail(new Error("connection aborted"));
    this.unsent = [];
    this.settle();
    this.socket.terminate(); // a reset: nothing queued is sent
  }

  /** Mark closed and settle every write waiter (the read side has ended or failed already). */
  private settle(): void {
    this.closed = true;
    for (const d of this.drained.splice(0)) d();
  }
}

/** Socket handlers that route events to the {@link BunConn} kept in `socket.data`. */
function handlers(onOpen?: (conn: BunConn) => void): BunSocketHandler<BunConn> {
  return {
    open(s) {
      const conn = new BunConn(s);
      s.data = conn;
      onOpen?.(conn);
    },
    data: (s, d) => s.data?.onData(d),
    drain: (s) => s.data?.onDrain(),
    end: (s) => s.data?.onEnd(),
    close: (s, e) => s.data?.onClose(e),
    error: (s, e) => s.data?.onClose(e),
  };
}

/** The Bun implementation of {@link Net}. */
export const bunNet: Net = {
  async listenTcp(addr, onConn) {
    const listener = Bun.listen<BunConn>({
      hostname: addr.host,
      port: addr.port,
      allowHalfOpen: true,
      exclusive: true,
      backlog: LISTEN_BACKLOG,
      socket: handlers(onConn),
    });
    return {
      addr: { host: listener.hostname, port: listener.port },
      close: async () => listener.stop(false),
    } satisfies Listener;
  },

  connectTcp(addr: NetAddr, options?: DialOptions) {
    return new Promise<Conn>((resolve, reject) => {
      const signal = options?.signal;
      let settled = false;
      const fail = (kind: DialError["kind"], detail: string, cause?: unknown): void => {
        signal?.removeEventListener("abort", onAbort);
        if (settled) return;
        settled = true;
        reject(new DialError(kind, addr, detail, { cause }));
      };
      const onAbort = (): void => fail("timeout", "dial aborted or timed out", signal?.reason);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      Bun.connect<BunConn>({
        hostname: addr.host,
        port: addr.port,
        allowHalfOpen: true,
        socket: {
          ...handlers(),
          connectError: (_s, e) => fail(dialFailure(e), e.message, e),
        },
      }).then(
        (s) => {
          signal?.removeEventListener("abort", onAbort);
          if (settled) return s.terminate(); // aborted meanwhile
          settled = true;
          resolve(s.data!);
        },
        (e: { code?: string; message: string }) => fail(dialFailure(e), e.message, e),
      );
    });
  },

  connectUnix(path: string) {
    return new Promise<Conn>((resolve, reject) => {
      Bun.connect<BunConn>({
        unix: path,
        allowHalfOpen: true,
        socket: { ...handlers(), connectError: (_s, e) => reject(new DialError(dialFailure(e), { host: path, port: 0 }, e.message, { cause: e })) },
      }).then(
        (s) => resolve(s.data!),
        (e: { code?: string; message: string }) => reject(new DialError(dialFailure(e), { host: path, port: 0 }, e.message, { cause: e })),
      );
    });
  },

  realPath: (path: string) => realpath(path),

  // Bun's own Bun.connect({ tls }) would resolve and verify on its own terms; node:tls (native
  // in Bun) lets the core keep DNS pinning and verify the request's host name explicitly.
  connectTls: connectNodeTls,

  acceptTls: acceptTlsOver,

  async resolve(host) {
    return (await lookup(host, { all: true, verbatim: true })).map((r) => r.address);
  },

  async bindUdp(addr: NetAddr, onMessage: DatagramHandler) {
    const socket = await Bun.udpSocket({
      hostname: addr.host,
      port: addr.port,
      socket: { data: (_s, buf, port, address) => onMessage(buf.slice(), { host: address, port }) },
    });
    let closed = false;
    return {
      addr: { host: socket.address.address, port: socket.address.port },
      async send(bytes, to) {
        if (closed) throw new Error("send on a closed UDP socket");
        socket.send(bytes, to.port, to.host); // `to.host` is always an IP: Bun wants no names here
      },
      close() {
        if (closed) return;
        closed = true;
        socket.close();
      },
    } satisfies DatagramSocket;
  },

  async serveHttp(addr: NetAddr, fetch: FetchHandler) {
    const server = Bun.serve({ hostname: addr.host, port: addr.port, backlog: LISTEN_BACKLOG, fetch });
    return { addr: { host: server.hostname, port: server.port }, close: async () => server.stop(true) } satisfies Listener;
  },
};
