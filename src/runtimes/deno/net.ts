/**
 * The socket contract on Deno's own primitives: `Deno.listen` / `Deno.connect` for TCP,
 * `Deno.serve` for the admin API. Traps handled here (see DESIGN.md): `conn.write()` may take
 * only part of the bytes, so writes loop; draining `conn.readable` or closing `conn.writable`
 * would close the whole connection, so reads use `conn.read()` and half-close `closeWrite()`.
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
  type Net,
  type NetAddr,
  type TlsOptions,
} from "../../core/net/contract.ts";
import { unmapIpv4 } from "../../core/net/ip.ts";
import { bindDgram } from "../shared/dgram-udp.ts";

/** Size of the buffer handed to each `conn.read()`. */
export const READ_BUFFER_BYTES = 64 * 1024;

/** A {@link Conn} over a `Deno.TcpConn`. */
export class DenoConn implements Conn {
  readonly remote: NetAddr;
  readonly local: NetAddr;
  private closed = false;
  private finSent = false;
  /** Writes are serialised: a partial write must finish before the next one starts. */
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly conn: Deno.TcpConn) {
    this.remote = addrOf(conn.remoteAddr);
    this.local = addrOf(conn.localAddr);
    if (typeof conn.setNoDelay === "function") conn.setNoDelay(true); // TCP only; unix conns have none
  }

  async read(): Promise<Uint8Array | null> {
    if (this.closed) throw new Error("connection closed");
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    const n = await this.conn.read(buf);
    return n === null ? null : buf.subarray(0, n);
  }

  write(bytes: Uint8Array): Promise<void> {
    const next = this.writing.then(async () => {
      if (this.closed || this.finSent) throw new Error("write on a closed connection");
      let at = 0;
      while (at < bytes.length) at += await this.conn.write(bytes.subarray(at)); // partial writes
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
}

/** A TCP address as host and port; a unix socket as its path and port 0. */
function addrOf(a: Deno.Addr): NetAddr {
  if (a.transport === "tcp" || a.transport === "udp") return { host: unmapIpv4(a.hostname), port: a.port };
  return { host: "path" in a ? (a.path ?? "") : "", port: 0 };
}

function dialFailure(e: unknown): DialError["kind"] {
  if (e instanceof Deno.errors.ConnectionRefused) return "refused";
  if (e instanceof Deno.errors.TimedOut) return "timeout";
  const message = String((e as Error)?.message ?? "");
  if (/host is unreachable|EHOSTUNREACH/i.test(message)) return "host_unreachable";
  if (/network is unreachable|ENETUNREACH/i.test(message)) return "network_unreachable";
  return "other";
}

/** The Deno implementation of {@link Net}. */
export const denoNet: Net = {
  async listenTcp(addr, onConn) {
    const listener = Deno.listen({ hostname: addr.host, port: addr.port, transport: "tcp" });
    const bound = listener.addr as Deno.NetAddr;
    void (async () => {
      try {
        for await (const c of listener) onConn(new DenoConn(c));
      } catch {
        // the listener was closed
      }
    })();
    return {
      addr: { host: bound.hostname, port: bound.port },
      async close() {
        try {
          listener.close();
        } catch {
          // closed already
        }
      },
    } satisfies Listener;
  },

  async connectTcp(addr: NetAddr, options?: DialOptions) {
    const signal = options?.signal;
    if (signal?.aborted) throw new DialError("timeout", addr, "dial aborted or timed out");
    const dial = Deno.connect({ hostname: addr.host, port: addr.port, transport: "tcp" });
    const aborted = new Promise<never>((_, reject) =>
      signal?.addEventListener("abort", () => reject(new DialError("timeout", addr, "dial aborted or timed out")), { once: true }),
    );
    try {
      return new DenoConn(await Promise.race([dial, aborted]));
    } catch (e) {
      dial.then((c) => c.close()).catch(() => {}); // a dial that completes after the abort
      if (e instanceof DialError) throw e;
      throw new DialError(dialFailure(e), addr, (e as Error).message);
    }
  },

  async resolve(host) {
    // node:dns lookup uses the system resolver (hosts file included), as Node and Bun do;
    // Deno.resolveDns would skip /etc/hosts.
    return (await lookup(host, { all: true, verbatim: true })).map((r) => r.address);
  },

  bindUdp: bindDgram,

  async connectUnix(path: string) {
    try {
      return new DenoConn((await Deno.connect({ transport: "unix", path })) as unknown as Deno.TcpConn);
    } catch (e) {
      throw new DialError(dialFailure(e), { host: path, port: 0 }, (e as Error).message);
    }
  },

  realPath: (path: string) => Deno.realPath(path),

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
      throw new DialError(verify ? "tls" : "other", addr, verify ? `certificate verification failed for ${t.serverName}: ${message}` : message);
    }
  },

  serveHttp(addr: NetAddr, fetch: FetchHandler) {
    return new Promise<Listener>((resolve) => {
      const server = Deno.serve(
        {
          hostname: addr.host,
          port: addr.port,
          onListen: (local) => resolve({ addr: { host: local.hostname, port: local.port }, close: () => server.shutdown() }),
        },
        fetch,
      );
    });
  },
};
