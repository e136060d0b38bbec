/**
 * What an open CONNECT tunnel holds, and what it gives back on every way it can end: its
 * request head is not kept while it is open (an idle tunnel is what the proxy holds most of,
 * docs/architecture.md), its `max_tunnels` slot is held while it is open and released exactly
 * once, and every connection it tracked for shutdown is untracked. The same for a SOCKS5
 * CONNECT's slot and connections.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { handleConnect } from "../../src/core/http/connect.ts";
import { serveRequests, type RequestHandler } from "../../src/core/http/request-loop.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { serveSocks5Connection } from "../../src/core/socks5/session.ts";
import { Limits } from "../../src/core/limits.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import type { Conn, Net } from "../../src/core/net/contract.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, tripwireNet } from "../helpers/memory-net.ts";

const ORIGIN_PORT = 8000;
const CONNECT = (host: string) => latin1Bytes(`CONNECT ${host}:${ORIGIN_PORT} HTTP/1.1\r\nHost: ${host}:${ORIGIN_PORT}\r\n\r\n`);

/** A full garbage collection (the flag is set at run time, so the test needs no node option). */
function collectGarbage(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

/**
 * A context with real tunnel limits, a count of slots taken and of release calls (counted
 * before `Limits`' own guard against a second release, so a double release shows), a record
 * of what is tracked, and the connections dialled.
 */
function context(net: Net, overrides: Partial<NetworkConfig>) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, max_tunnels: 4, ...overrides }, { resolve: (h) => net.resolve(h) });
  const limits = new Limits();
  const slots = { taken: 0, released: 0 };
  const openTunnel = limits.openTunnel.bind(limits);
  limits.openTunnel = (max) => {
    const release = openTunnel(max);
    if (!release) return release;
    slots.taken++;
    return () => {
      slots.released++;
      release();
    };
  };
  const dialled: Conn[] = [];
  const dial = net.connectTcp.bind(net);
  net.connectTcp = async (addr, options) => {
    const conn = await dial(addr, options);
    dialled.push(conn);
    return conn;
  };
  const tracked = new Set<Conn>();
  let everTracked = 0;
  const ctx: SessionContext = {
    net,
    state,
    log: silentLogger,
    limits,
    track: (c) => {
      everTracked++;
      tracked.add(c);
    },
    untrack: (c) => void tracked.delete(c),
    isOwnListener: () => false,
  };
  return { ctx, state, limits, slots, dialled, tracked, everTracked: () => everTracked };
}

/** Whether an in-memory connection was closed (by the proxy). */
const isClosed = (conn: Conn | undefined): boolean => (conn as unknown as { isClosed: boolean } | undefined)?.isClosed === true;

/** Make `conn`'s `n`-th write fail (the ones before go through). */
function failWrite(conn: Conn, n: number): void {
  const write = conn.write.bind(conn);
  let writes = 0;
  conn.write = (bytes) => (++writes === n ? Promise.reject(new Error("the write failed")) : write(bytes));
}

/** A name that never resolves: a CONNECT to it waits in the gate until the client goes. */
const NEVER = { "slow.test": (() => new Promise<never>(() => {})) as unknown as () => string[] };

/** Read until `predicate` holds for what came, or the stream ends or fails. */
async function readUntil(conn: Conn, predicate: (s: string) => boolean): Promise<string> {
  let s = "";
  while (!predicate(s)) {
    const c = await conn.read().catch(() => null);
    if (c === null) break;
    s += latin1(c);
  }
  return s;
}

const headDone = (s: string) => s.includes("\r\n\r\n");

/** An origin that echoes what it gets and half-closes when the client does. */
function echo(conn: Conn): void {
  void (async () => {
    for (;;) {
      const c = await conn.read();
      if (c === null) break;
      await conn.write(c);
    }
    await conn.closeWrite();
  })().catch(() => {});
}

describe("an open CONNECT tunnel", () => {
  it("keeps no reference to its request head while it is open", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx } = context(net, { allowed_domains: ["127.0.0.1"] });
    const heads: WeakRef<object>[] = [];
    // the proxy listener's handler, plus a weak reference to each head it is given
    const handler: RequestHandler = (head, reader, slot, c) => {
      heads.push(new WeakRef(head));
      return handleConnect(head, reader, c, slot);
    };
    const [client, server] = connPair();
    const done = serveRequests(server, ctx, handler, "client");
    await client.write(CONNECT("127.0.0.1"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 200/);
    await client.write(latin1Bytes("ping"));
    expect(await readUntil(client, (s) => s === "ping")).toBe("ping"); // the tunnel is open and relaying
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await new Promise((r) => setTimeout(r, 5)); // a weak reference is cleared after the job that made it
    }
    expect(heads).toHaveLength(1);
    expect(heads[0]!.deref()).toBeUndefined();
    await client.closeWrite();
    await readUntil(client, () => false);
    expect(await done).toBe("client_closed");
  });
});

describe("a CONNECT's tunnel slot and tracked connections", () => {
  it("an open tunnel holds its slot; when it ends the slot is freed once and nothing stays tracked", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, slots, dialled, tracked, everTracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("127.0.0.1"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 200/);
    expect(slots).toEqual({ taken: 1, released: 0 });
    expect(tracked.size).toBe(2); // the client and the upstream
    await client.write(latin1Bytes("x"));
    await client.closeWrite();
    expect(await readUntil(client, () => false)).toBe("x");
    expect(await done).toBe("client_closed");
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(everTracked()).toBe(2);
    expect(tracked.size).toBe(0);
    expect(isClosed(dialled[0])).toBe(true);
  });

  it("a failed dial (502) and a refusal (403) free the slot once and untrack the client", async () => {
    for (const [origins, allowed, status] of [
      [{}, ["127.0.0.1"], 502],
      [{ [ORIGIN_PORT]: echo }, ["example.test"], 403],
    ] as const) {
      const { net, log } = tripwireNet({ origins });
      const { ctx, slots, tracked } = context(net, { allowed_domains: [...allowed] });
      const [client, server] = connPair();
      const done = serveHttpConnection(server, ctx);
      await client.write(CONNECT("127.0.0.1"));
      expect(await readUntil(client, headDone)).toMatch(new RegExp(`^HTTP/1\\.1 ${status}`));
      await client.closeWrite();
      await done;
      expect(slots).toEqual({ taken: 1, released: 1 });
      expect(tracked.size).toBe(0);
      if (status === 403) expect(log.dials).toEqual([]);
    }
  });

  it("a client that leaves while its CONNECT is still being decided frees the slot once", async () => {
    const { net } = tripwireNet({ hosts: NEVER });
    const { ctx, slots, tracked } = context(net, { allowed_domains: ["slow.test"] });
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("slow.test"));
    for (let i = 0; i < 50 && slots.taken === 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(slots).toEqual({ taken: 1, released: 0 }); // held while it is decided
    client.close();
    await done;
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
  });

  it("an intercepted CONNECT (limited mode with mitm) holds the slot until interception ends, then frees it once", async () => {
    const { net, log } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    net.acceptTls = async () => {
      throw new Error("not reached: the CA fails first");
    };
    const { ctx, slots, tracked } = context(net, { allowed_domains: ["127.0.0.1"], mode: "limited", mitm: true });
    let failCa!: (e: Error) => void;
    const ca = new Promise<never>((_, reject) => (failCa = reject));
    const intercepting: SessionContext = { ...ctx, mitmCa: () => ca };
    const [client, server] = connPair();
    const done = serveHttpConnection(server, intercepting);
    await client.write(CONNECT("127.0.0.1"));
    for (let i = 0; i < 50 && slots.taken === 0; i++) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 5));
    expect(slots).toEqual({ taken: 1, released: 0 }); // held while the local CA is still being made
    failCa(new Error("no local CA"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 502/);
    await done;
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
    expect(log.dials).toEqual([]); // an intercepted tunnel dials per request, and there was none
  });

  it("a failed write of the 200 closes and untracks the upstream and frees the slot once", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, slots, dialled, tracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    failWrite(server, 1);
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("127.0.0.1"));
    expect(await done).toBe("error");
    expect(dialled).toHaveLength(1);
    expect(isClosed(dialled[0])).toBe(true);
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
  });

  it("a failure while recording the ended tunnel still closes and untracks the upstream and frees the slot once", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, state, slots, dialled, tracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    state.recordConnection = () => {
      throw new Error("the record store failed");
    };
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("127.0.0.1"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 200/);
    await client.closeWrite();
    await readUntil(client, () => false);
    expect(await done).toBe("error");
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
    expect(isClosed(dialled[0])).toBe(true);
  });
});

describe("a SOCKS5 tunnel's slot and tracked connections", () => {
  const GREETING = Uint8Array.of(5, 1, 0);
  const CONNECT_V4 = Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, ORIGIN_PORT >> 8, ORIGIN_PORT & 0xff);
  const SLOW = new TextEncoder().encode("slow.test");
  const CONNECT_SLOW = Uint8Array.of(5, 1, 0, 3, SLOW.length, ...SLOW, ORIGIN_PORT >> 8, ORIGIN_PORT & 0xff);
  const UDP_ASSOCIATE = Uint8Array.of(5, 3, 0, 1, 0, 0, 0, 0, 0, 0);

  /** Read exactly `n` bytes (fewer at end of stream). */
  async function readN(conn: Conn, n: number): Promise<number[]> {
    const got: number[] = [];
    while (got.length < n) {
      const c = await conn.read().catch(() => null);
      if (c === null) break;
      got.push(...c);
    }
    return got;
  }

  /** Greet, send `request`, and return the reply code. */
  async function ask(client: Conn, request: Uint8Array = CONNECT_V4): Promise<number | undefined> {
    await client.write(GREETING);
    expect(await readN(client, 2)).toEqual([5, 0]);
    await client.write(request);
    return (await readN(client, 10))[1];
  }

  it("an open tunnel holds its slot; when it ends the slot is freed once and nothing stays tracked", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, slots, dialled, tracked, everTracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    const done = serveSocks5Connection(server, ctx);
    expect(await ask(client)).toBe(0); // succeeded
    expect(slots).toEqual({ taken: 1, released: 0 });
    expect(tracked.size).toBe(2);
    await client.write(latin1Bytes("x"));
    await client.closeWrite();
    expect(await readUntil(client, () => false)).toBe("x");
    expect(await done).toBe("client_closed");
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(everTracked()).toBe(2);
    expect(tracked.size).toBe(0);
    expect(isClosed(dialled[0])).toBe(true);
  });

  it("a failed dial and a refusal free the slot once and untrack the client", async () => {
    for (const [origins, allowed, reply] of [
      [{}, ["127.0.0.1"], 5], // connection refused
      [{ [ORIGIN_PORT]: echo }, ["example.test"], 2], // not allowed by the rules
    ] as const) {
      const { net } = tripwireNet({ origins });
      const { ctx, slots, tracked } = context(net, { allowed_domains: [...allowed] });
      const [client, server] = connPair();
      const done = serveSocks5Connection(server, ctx);
      expect(await ask(client)).toBe(reply);
      await done;
      expect(slots).toEqual({ taken: 1, released: 1 });
      expect(tracked.size).toBe(0);
    }
  });

  it("over max_tunnels: refused with reply 2 and no slot taken; the open tunnel keeps its own", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, limits, slots } = context(net, { allowed_domains: ["127.0.0.1"], max_tunnels: 1 });
    const [first, firstServer] = connPair();
    const firstDone = serveSocks5Connection(firstServer, ctx);
    expect(await ask(first)).toBe(0);
    const [second, secondServer] = connPair();
    const secondDone = serveSocks5Connection(secondServer, ctx);
    expect(await ask(second)).toBe(2);
    await secondDone;
    expect(slots).toEqual({ taken: 1, released: 0 });
    expect(limits.openTunnels).toBe(1);
    await first.closeWrite();
    await readUntil(first, () => false);
    await firstDone;
    expect(slots).toEqual({ taken: 1, released: 1 });
  });

  it("a client that leaves while its CONNECT is still being decided frees the slot once", async () => {
    const { net } = tripwireNet({ hosts: NEVER });
    const { ctx, slots, tracked } = context(net, { allowed_domains: ["slow.test"] });
    const [client, server] = connPair();
    const done = serveSocks5Connection(server, ctx);
    await client.write(GREETING);
    await readN(client, 2);
    await client.write(CONNECT_SLOW);
    for (let i = 0; i < 50 && slots.taken === 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(slots).toEqual({ taken: 1, released: 0 });
    client.close();
    await done;
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
  });

  it("a failed write of the reply closes and untracks the upstream and frees the slot once", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, slots, dialled, tracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    failWrite(server, 2); // the method choice goes out; the CONNECT's reply fails
    const done = serveSocks5Connection(server, ctx);
    await client.write(GREETING);
    await readN(client, 2);
    await client.write(CONNECT_V4);
    expect(await done).toBe("error");
    expect(dialled).toHaveLength(1);
    expect(isClosed(dialled[0])).toBe(true);
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
  });

  it("a failure while recording the ended tunnel still closes and untracks the upstream and frees the slot once", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, state, slots, dialled, tracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    state.recordConnection = () => {
      throw new Error("the record store failed");
    };
    const [client, server] = connPair();
    const done = serveSocks5Connection(server, ctx);
    expect(await ask(client)).toBe(0);
    await client.closeWrite();
    await readUntil(client, () => false);
    expect(await done).toBe("error");
    expect(slots).toEqual({ taken: 1, released: 1 });
    expect(tracked.size).toBe(0);
    expect(isClosed(dialled[0])).toBe(true);
  });

  it("a UDP association holds a slot until it ends, and frees it once also when binding fails", async () => {
    for (const bindFails of [false, true]) {
      const { net } = tripwireNet({});
      net.bindUdp = async (addr) => {
        if (bindFails) throw new Error("bind failed");
        return { addr: { host: addr.host, port: 40000 }, send: async () => {}, close() {} };
      };
      const { ctx, slots, tracked } = context(net, { allowed_domains: ["127.0.0.1"], enable_socks5_udp: true });
      const [client, server] = connPair();
      const done = serveSocks5Connection(server, ctx);
      const reply = await ask(client, UDP_ASSOCIATE);
      if (!bindFails) {
        expect(reply).toBe(0);
        expect(slots).toEqual({ taken: 1, released: 0 }); // held while the association is open
      }
      client.close();
      await done;
      expect(slots).toEqual({ taken: 1, released: 1 });
      expect(tracked.size).toBe(0);
    }
  });
});
