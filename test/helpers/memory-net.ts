/**
 * In-memory implementation of the socket contract for unit tests: connected pairs with
 * half-close, and a tripwire {@link Net} whose dialer and resolver fail the test when they are
 * asked for anything outside what the test allows (never real traffic).
 */
import type { Conn, Net, NetAddr } from "../../src/core/net/contract.ts";
import { DialError } from "../../src/core/net/contract.ts";

class MemoryConn implements Conn {
  peer!: MemoryConn;
  private queue: Uint8Array[] = [];
  private finReceived = false;
  private closed = false;
  private waiter: ((c: Uint8Array | null) => void) | null = null;
  private failWaiter: ((e: Error) => void) | null = null;
  writtenFin = false;

  constructor(
    readonly local: NetAddr,
    readonly remote: NetAddr,
  ) {}

  deliver(chunk: Uint8Array | null): void {
    if (chunk === null) this.finReceived = true;
    else this.queue.push(chunk);
    this.flush();
  }

  private flush(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.queue.length > 0) {
      this.waiter = this.failWaiter = null;
      w(this.queue.shift()!);
    } else if (this.finReceived) {
      this.waiter = this.failWaiter = null;
      w(null);
    } else if (this.closed) {
      const f = this.failWaiter!;
      this.waiter = this.failWaiter = null;
      f(new Error("closed"));
    }
  }

  read(): Promise<Uint8Array | null> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift()!);
    if (this.finReceived) return Promise.resolve(null);
    if (this.closed) return Promise.reject(new Error("closed"));
    if (this.waiter) return Promise.reject(new Error("concurrent read on one connection"));
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  /** Withdraw the pending read: nothing is taken; later bytes stay queued for the next read. */
  cancelRead(reason: Error): void {
    const f = this.failWaiter;
    if (!f) return;
    this.waiter = this.failWaiter = null;
    f(reason);
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.closed || this.writtenFin) throw new Error("write after close");
    this.peer.deliver(bytes.slice());
  }

  async closeWrite(): Promise<void> {
    if (this.closed || this.writtenFin) return;
    this.writtenFin = true;
    this.peer.deliver(null);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.writtenFin) {
      this.writtenFin = true;
      this.peer.deliver(null);
    }
    this.flush();
  }

  abort(): void {
    this.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** Two connected in-memory connections. */
export function connPair(a: NetAddr = { host: "127.0.0.1", port: 50000 }, b: NetAddr = { host: "127.0.0.1", port: 3128 }): [Conn, Conn] {
  const x = new MemoryConn(a, b);
  const y = new MemoryConn(b, a);
  x.peer = y;
  y.peer = x;
  return [x, y];
}

/** Read everything until FIN (or close) as text. */
export async function readAllText(conn: Conn): Promise<string> {
  let out = "";
  for (;;) {
    let chunk: Uint8Array | null;
    try {
      chunk = await conn.read();
    } catch {
      break;
    }
    if (chunk === null) break;
    out += new TextDecoder().decode(chunk);
  }
  return out;
}

/** A record of what a {@link TripwireNet} was asked to do. */
export interface TripwireLog {
  dials: NetAddr[];
  resolves: string[];
  violations: string[];
}

/**
 * A Net whose `resolve` answers only from `hosts` and whose `connectTcp` only reaches the
 * in-memory `origins` on loopback addresses. Anything else is recorded as a violation (and
 * fails the dial or lookup), so tests assert `violations` is empty.
 */
export function tripwireNet(options: {
  hosts?: Record<string, string[] | (() => string[])>;
  origins?: Record<number, (conn: Conn) => void>;
}): { net: Net; log: TripwireLog } {
  const log: TripwireLog = { dials: [], resolves: [], violations: [] };
  const net: Net = {
    async listenTcp() {
      throw new Error("tripwire net does not listen");
    },
    async connectTcp(addr) {
      log.dials.push(addr);
      const loopback = /^127\./.test(addr.host) || addr.host === "::1";
      if (!loopback) {
        log.violations.push(`dial of non-loopback ${addr.host}:${addr.port}`);
        throw new DialError("other", addr, "tripwire: non-loopback dial");
      }
      const origin = options.origins?.[addr.port];
      if (!origin) throw new DialError("refused", addr, "nothing listens there");
      const [mine, theirs] = connPair({ host: addr.host, port: 40000 + log.dials.length }, addr);
      origin(theirs);
      return mine;
    },
    async resolve(host) {
      log.resolves.push(host);
      const entry = options.hosts?.[host];
      if (!entry) {
        log.violations.push(`lookup of unexpected name ${host}`);
        throw new Error(`tripwire: no such host ${host}`);
      }
      return typeof entry === "function" ? entry() : entry;
    },
  };
  return { net, log };
}
