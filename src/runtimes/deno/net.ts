/**
 * The socket contract on Deno's own primitives: `Deno.listen` / `Deno.connect` for TCP. Traps
 * handled here: `conn.write()` may take only part of the bytes, so writes loop; draining
 * `conn.readable` or closing `conn.writable` would close the whole connection, so reads use
 * `conn.read()` and half-close `closeWrite()`; a read holds its buffer while it waits, so the
 * buffer size adapts to the traffic (see {@link nextReadSize}).
 *
 * Listening: `Deno.listen` with `tcpBacklog` {@link LISTEN_BACKLOG} (Deno's default is 511),
 * accepted by {@link acceptLoop}, which backs off and retries when an accept fails (EMFILE:
 * `accept()` rejects with a plain `Error` whose `code` is `"EMFILE"`). Deno's own accept loops
 * do not survive that: `for await (const c of listener)` ends, `Deno.serve` ends its server
 * (the port is closed and its `finished` promise rejects, an uncaught rejection that ends the
 * process), and `node:http`/`node:net` servers stop accepting without a word. So the admin
 * API is served by the same accept loop, each connection handed to a `node:http` server that
 * never listens ({@link connHttpServer}) rather than by `Deno.serve`.
 *
 * UDP uses `node:dgram` from Deno's Node compatibility layer rather than `Deno.listenDatagram`,
 * which still needs `--unstable-net`: the stable path keeps `deno run -A` enough to start the
 * proxy, and `node:dgram` is what Deno itself documents for stable UDP.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import {
  DialError,
  type Conn,
  type DialOptions,
  type FetchHandler,
  type Listener,
  type ListenOptions,
  type Net,
  type NetAddr,
  type TlsOptions,
} from "../../core/net/contract.ts";
import { unmapIpv4 } from "../../core/net/ip.ts";
import { dialFailure } from "../shared/dial-failure.ts";
import { AcceptBackoff, acceptLoop, LISTEN_BACKLOG } from "../shared/accept.ts";
import { connHttpServer } from "../shared/conn-http.ts";
import { bindDgram } from "../shared/dgram-udp.ts";
import { PendingRead } from "../shared/pending-read.ts";
import { fittedReadSize, nextReadSize, READ_BUFFER_MIN_BYTES, readChunk } from "./read-size.ts";
import { relayDeno } from "./relay.ts";
import { acceptTlsOver } from "../shared/tls-accept.ts";
import { encodeIntoBytes } from "../shared/buffer-bytes.ts";
import { installFastBytes } from "../../core/net/bytes.ts";

// Pooled Buffer allocation and native (encodeInto) latin1 for the heads and joins made per request.
installFastBytes(encodeIntoBytes);

/** An already settled write queue (a connection that never wrote shares it). */
const SETTLED: Promise<void> = Promise.resolve();

/** A {@link Conn} over a `Deno.TcpConn`. */
export class DenoConn implements Conn {
  private closed = false;
  private finSent = false;
  /** The pending `read()`, if any. */
  private readonly pending = new PendingRead();
  /** The buffer of the socket read in progress (one at a time). */
  private readBuf: Uint8Array | undefined;
  /** The outcome of a socket read that finished after its `read()` was withdrawn. */
  private stash: { readonly chunk: Uint8Array | null } | { readonly error: Error } | undefined;
  /** Writes are serialised: a partial write must finish before the next one starts. */
  private writing: Promise<void> = SETTLED;
  /** Size of the next read buffer (see {@link nextReadSize} and {@link fittedReadSize}). */
  private nextReadBytes = READ_BUFFER_MIN_BYTES;
  /** Bytes of the reads that filled their buffer since the last short read (a message so far). */
  private burst = 0;
  /**
   * The socket read's handlers, made at the first read through the contract: then a read
   * allocates its buffer and a promise, no closures; a tunnel's upstream, read only by the
   * relay, never makes them.
   */
  private onRead: ((n: number | null) => void) | undefined;
  private onReadError: ((e: unknown) => void) | undefined;

  constructor(readonly conn: Deno.TcpConn) {
    if (typeof conn.setNoDelay === "function") conn.setNoDelay(true); // TCP only; unix conns have none
  }

  /** The addresses, read from the socket when asked: an idle tunnel keeps no copies of them. */
  get remote(): NetAddr {
    return addrOf(this.conn.remoteAddr);
  }

  get local(): NetAddr {
    return addrOf(this.conn.localAddr);
  }

  /**
   * A `conn.read()` cannot be cancelled, so a read withdrawn by {@link cancelRead} leaves its
   * socket read running, and its outcome goes to the next read: no bytes are lost.
   */
  read(): Promise<Uint8Array | null> {
    if (this.closed) return Promise.reject(new Error("connection closed"));
    const s = this.stash;
    if (s) {
      this.stash = undefined;
      return "chunk" in s ? Promise.resolve(s.chunk) : Promise.reject(s.error);
    }
    const next = this.pending.wait();
    if (!this.readBuf) {
      const buf = (this.readBuf = new Uint8Array(this.nextReadBytes));
      this.conn.read(buf).then(
        (this.onRead ??= (n) => this.readDone(n)),
        (this.onReadError ??= (e) => this.settle({ error: e instanceof Error ? e : new Error(String(e)) })),
      );
    }
    return next;
  }

  cancelRead(reason: Error): void {
    this.pending.reject(reason);
  }

  /** Size of the next read buffer (the relay keeps the same policy). */
  get readSize(): number {
    return this.nextReadBytes;
  }

  /** Whether a read already holds bytes (or an end) for the next `read()`, or is in flight. */
  hasBuffered(): boolean {
    return this.stash !== undefined || this.readBuf !== undefined;
  }

  /** Resolves once every write queued so far has gone out (failed ones included). */
  drained(): Promise<void> {
    return this.writing;
  }

  /** Bytes read and written, through the contract or the relay (the metrics). */
  received = 0;
  sent = 0;

  bytesRead(): number {
    return this.received;
  }

  bytesWritten(): number {
    return this.sent;
  }

  private readDone(n: number | null): void {
    const buf = this.readBuf!;
    if (n === null) return this.settle({ chunk: null });
    this.received += n;
    if (n >= buf.length) {
      this.burst += n;
      this.nextReadBytes = nextReadSize(buf.length, n);
    } else {
      this.nextReadBytes = fittedReadSize(this.burst + n);
      this.burst = 0;
    }
    this.settle({ chunk: readChunk(buf, n) });
  }

  /** Hand a socket read's outcome to the pending read, or keep it for the next one. */
  private settle(outcome: { readonly chunk: Uint8Array | null } | { readonly error: Error }): void {
    this.readBuf = undefined;
    const taken = "chunk" in outcome ? this.pending.resolve(outcome.chunk) : this.pending.reject(outcome.error);
    if (!taken) this.stash = outcome;
  }

  write(bytes: Uint8Array): Promise<void> {
    const next = this.writing.then(async () => {
      if (this.closed || this.finSent) throw new Error("write on a closed connection");
      let at = 0;
      while (at < bytes.length) at += await this.conn.write(bytes.subarray(at)); // partial writes
      this.sent += bytes.length;
    });
    this.writing = next.catch(() => {});
    return next;
  }

  async closeWrite(): Promise<void> {
    if (this.closed || this.finSent) return;
    await this.writing;
    this.finSent = true;
    try {
      await this.conn.closeWrite();
    } catch {
      // already reset by the peer: nothing left to half-close
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }

  /** Deno's close is already immediate: pending reads and writes fail at once. */
  abort(): void {
    this.close();
  }
}

/** A TCP address as host and port; a unix socket as its path and port 0. */
function addrOf(a: Deno.Addr): NetAddr {
  if (a.transport === "tcp" || a.transport === "udp") return { host: unmapIpv4(a.hostname), port: a.port };
  return { host: "path" in a ? (a.path ?? "") : "", port: 0 };
}

/** Deno's error classes first, then the code or message every adapter reads. */
function denoDialFailure(e: unknown): DialError["kind"] {
  if (e instanceof Deno.errors.ConnectionRefused) return "refused";
  if (e instanceof Deno.errors.TimedOut) return "timeout";
  return dialFailure(e);
}

/**
 * Bind a TCP listener and hand every accepted connection to `onConn`, through accept failures
 * (see the module comment). `close()` stops accepting; accepted connections are untouched.
 */
function listenAndAccept(addr: NetAddr, onConn: (conn: DenoConn) => void, options?: ListenOptions): Listener {
  const listener = Deno.listen({ hostname: addr.host, port: addr.port, transport: "tcp", tcpBacklog: LISTEN_BACKLOG });
  const bound = listener.addr;
  const closing = new AbortController();
  const accepted = (c: Deno.TcpConn): void => {
    let conn: DenoConn;
    try {
      conn = new DenoConn(c);
    } catch {
      // reset between accept and setup (setNoDelay on a dead socket)
      try {
        c.close();
      } catch {
        // closed already
      }
      return;
    }
    onConn(conn);
  };
  const loop = acceptLoop(() => listener.accept(), accepted, { backoff: new AcceptBackoff(options?.onAcceptError), signal: closing.signal });
  return {
    addr: { host: bound.hostname, port: bound.port },
    async close() {
      closing.abort();
      try {
        listener.close();
      } catch {
        // closed already
      }
      // Deno closes a listening socket only once its pending accept() has failed: until the
      // loop has ended, a new connect would still be taken into the backlog and then reset.
      await loop;
    },
  };
}

/** The Deno implementation of {@link Net}. */
export const denoNet: Net = {
  async listenTcp(addr, onConn, options) {
    return listenAndAccept(addr, onConn, options);
  },

  async connectTcp(addr: NetAddr, options?: DialOptions) {
    const signal = options?.signal;
    const abortError = (): DialError => new DialError("timeout", addr, "dial aborted or timed out", { cause: signal?.reason });
    if (signal?.aborted) throw abortError();
    const dial = Deno.connect({ hostname: addr.host, port: addr.port, transport: "tcp" });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(abortError());
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return new DenoConn(await Promise.race([dial, aborted]));
    } catch (e) {
      dial.then((c) => c.close()).catch(() => {}); // a dial that completes after the abort
      if (e instanceof DialError) throw e;
      throw new DialError(denoDialFailure(e), addr, (e as Error).message, { cause: e });
    } finally {
      // A long-lived signal (a client connection's) must not collect one listener per dial.
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  },

  async resolve(host) {
    // node:dns lookup uses the system resolver (hosts file included), as Node and Bun do;
    // Deno.resolveDns would skip /etc/hosts.
    return (await lookup(host, { all: true, verbatim: true })).map((r) => r.address);
  },

  bindUdp: bindDgram,

  relay(a: Conn, b: Conn) {
    if (!(a instanceof DenoConn) || !(b instanceof DenoConn)) return undefined;
    // both directions at once; the first failure ends the relay (the core closes both)
    return relayDeno(a, b);
  },

  async connectUnix(path: string) {
    try {
      return new DenoConn((await Deno.connect({ transport: "unix", path })) as unknown as Deno.TcpConn);
    } catch (e) {
      throw new DialError(denoDialFailure(e), { host: path, port: 0 }, (e as Error).message, { cause: e });
    }
  },

  realPath: (path: string) => Deno.realPath(path),

  acceptTls: acceptTlsOver,

  async connectTls(addr: NetAddr, t: TlsOptions, options?: DialOptions) {
    // TCP to the vetted IP first (DNS pinning), then TLS for the request's host name.
    const tcp = (await denoNet.connectTcp(addr, options)) as DenoConn;
    try {
      const conn = await Deno.startTls(tcp.conn, { hostname: t.serverName, caCerts: t.extraCa ? [t.extraCa] : undefined });
      await conn.handshake();
      return new DenoConn(conn as unknown as Deno.TcpConn);
    } catch (e) {
      tcp.close();
      const message = (e as Error).message;
      const verify = e instanceof Deno.errors.InvalidData || /certificate|UnknownIssuer|NotValidForName/i.test(message);
      throw new DialError(verify ? "tls" : "other", addr, verify ? `certificate verification failed for ${t.serverName}: ${message}` : message, { cause: e });
    }
  },

  async serveHttp(addr: NetAddr, fetch: FetchHandler, options?: ListenOptions) {
    // Not Deno.serve: its accept loop ends for good at EMFILE (see the module comment).
    const http = connHttpServer(fetch);
    const listener = listenAndAccept(addr, (conn) => http.serve(conn), options);
    return {
      addr: listener.addr,
      async close() {
        await listener.close();
        http.closeAll();
      },
    } satisfies Listener;
  },
};
