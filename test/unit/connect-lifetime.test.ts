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

/** A context with real tunnel limits and a record of what is tracked. */
function context(net: Net, overrides: Partial<NetworkConfig>) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, max_tunnels: 4, ...overrides }, { resolve: (h) => net.resolve(h) });
  const limits = new Limits();
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
  return { ctx, state, limits, tracked, everTracked: () => everTracked };
}

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
  it("an open tunnel holds its slot; when it ends the slot is free and nothing stays tracked", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, limits, tracked, everTracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("127.0.0.1"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 200/);
    expect(limits.openTunnels).toBe(1);
    expect(tracked.size).toBe(2); // the client and the upstream
    await client.write(latin1Bytes("x"));
    await client.closeWrite();
    expect(await readUntil(client, () => false)).toBe("x");
    await done;
    expect(limits.openTunnels).toBe(0);
    expect(everTracked()).toBe(2);
    expect(tracked.size).toBe(0);
  });

  it("a failed dial (502) frees the slot and untracks the client", async () => {
    const { net } = tripwireNet({ origins: {} });
    const { ctx, limits, tracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("127.0.0.1"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 502/);
    await client.closeWrite();
    await done;
    expect(limits.openTunnels).toBe(0);
    expect(tracked.size).toBe(0);
  });

  it("a refusal by policy (403) frees the slot and untracks the client", async () => {
    const { net, log } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, limits, tracked } = context(net, { allowed_domains: ["example.test"] });
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("127.0.0.1"));
    expect(await readUntil(client, headDone)).toMatch(/^HTTP\/1\.1 403/);
    await client.closeWrite();
    await done;
    expect(limits.openTunnels).toBe(0);
    expect(tracked.size).toBe(0);
    expect(log.dials).toEqual([]);
  });

  it("a client that leaves while its CONNECT is still being decided frees the slot", async () => {
    // the name never resolves: the CONNECT waits in the gate until the client goes
    const { net } = tripwireNet({ hosts: { "slow.test": (() => new Promise<never>(() => {})) as unknown as () => string[] } });
    const { ctx, limits, tracked } = context(net, { allowed_domains: ["slow.test"] });
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(CONNECT("slow.test"));
    for (let i = 0; i < 20 && limits.openTunnels === 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(limits.openTunnels).toBe(1); // held while it is decided
    client.close();
    await done;
    expect(limits.openTunnels).toBe(0);
    expect(tracked.size).toBe(0);
  });

  it("a failure while recording the ended tunnel still frees the slot and closes and untracks the upstream", async () => {
    let upstream: Conn | undefined;
    const { net } = tripwireNet({
      origins: {
        [ORIGIN_PORT]: (c) => {
          upstream = c;
          echo(c);
        },
      },
    });
    const { ctx, state, limits, tracked } = context(net, { allowed_domains: ["127.0.0.1"] });
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
    expect(limits.openTunnels).toBe(0);
    expect(tracked.size).toBe(0);
    // the origin's side sees its connection closed: a read there ends or fails
    expect(await upstream!.read().catch(() => null)).toBeNull();
  });
});

describe("a SOCKS5 CONNECT's tunnel slot and tracked connections", () => {
  const GREETING = Uint8Array.of(5, 1, 0);
  const CONNECT_V4 = Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, ORIGIN_PORT >> 8, ORIGIN_PORT & 0xff);

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

  async function handshake(client: Conn): Promise<number> {
    await client.write(GREETING);
    expect(await readN(client, 2)).toEqual([5, 0]);
    await client.write(CONNECT_V4);
    const reply = await readN(client, 10);
    return reply[1]!;
  }

  it("an open tunnel holds its slot; when it ends the slot is free and nothing stays tracked", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, limits, tracked, everTracked } = context(net, { allowed_domains: ["127.0.0.1"] });
    const [client, server] = connPair();
    const done = serveSocks5Connection(server, ctx);
    expect(await handshake(client)).toBe(0); // succeeded
    expect(limits.openTunnels).toBe(1);
    expect(tracked.size).toBe(2);
    await client.write(latin1Bytes("x"));
    await client.closeWrite();
    expect(await readUntil(client, () => false)).toBe("x");
    await done;
    expect(limits.openTunnels).toBe(0);
    expect(everTracked()).toBe(2);
    expect(tracked.size).toBe(0);
  });

  it("a failed dial and a refusal free the slot and untrack the client", async () => {
    for (const [origins, allowed, reply] of [
      [{}, ["127.0.0.1"], 5], // connection refused
      [{ [ORIGIN_PORT]: echo }, ["example.test"], 2], // not allowed by the rules
    ] as const) {
      const { net } = tripwireNet({ origins });
      const { ctx, limits, tracked } = context(net, { allowed_domains: [...allowed] });
      const [client, server] = connPair();
      const done = serveSocks5Connection(server, ctx);
      expect(await handshake(client)).toBe(reply);
      await done;
      expect(limits.openTunnels).toBe(0);
      expect(tracked.size).toBe(0);
    }
  });

  it("over max_tunnels: refused with reply 2, and the open tunnel keeps its slot", async () => {
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: echo } });
    const { ctx, limits } = context(net, { allowed_domains: ["127.0.0.1"], max_tunnels: 1 });
    const [first, firstServer] = connPair();
    const firstDone = serveSocks5Connection(firstServer, ctx);
    expect(await handshake(first)).toBe(0);
    const [second, secondServer] = connPair();
    const secondDone = serveSocks5Connection(secondServer, ctx);
    expect(await handshake(second)).toBe(2);
    await secondDone;
    expect(limits.openTunnels).toBe(1);
    await first.closeWrite();
    await readUntil(first, () => false);
    await firstDone;
    expect(limits.openTunnels).toBe(0);
  });
});
