/**
 * The proxy's own CPU cost per keep-alive request, without the kernel: the real HTTP session
 * (`serveHttpConnection`: parse, gate, exchange, relay) driven over in-memory connections, with
 * an in-memory origin that answers every request at once with a 1 KiB body. What is left is
 * the JavaScript the data path runs, so a profile of this (`node --cpu-prof --import tsx
 * bench/hotpath.ts`) shows where it goes without the syscalls that dominate a real run.
 *
 * Prints µs per request for CLIENTS concurrent keep-alive clients. Asserts nothing.
 * Env: HOTPATH_REQUESTS (default 200000), HOTPATH_CLIENTS (32).
 */
import { defaultNetworkConfig } from "../src/core/config/types.ts";
import { serveHttpConnection } from "../src/core/http/session.ts";
import { silentLogger } from "../src/core/log.ts";
import { latin1Bytes } from "../src/core/net/bytes.ts";
import type { Conn, Net } from "../src/core/net/contract.ts";
import type { SessionContext } from "../src/core/session-context.ts";
import { ProxyState } from "../src/core/state.ts";
import { UpstreamPool } from "../src/core/http/upstream-pool.ts";
import { connPair } from "../test/helpers/memory-net.ts";

// What the runtime's adapter installs at load (Node: pooled Buffer allocation for the core's bytes).
const runtime = process.versions.bun ? "bun" : "Deno" in globalThis ? "deno" : "node";
await import(`../src/runtimes/${runtime}/net.ts`);

const REQUESTS = Number(process.env.HOTPATH_REQUESTS ?? 200_000);
const CLIENTS = Number(process.env.HOTPATH_CLIENTS ?? 32);
const ORIGIN_PORT = 18080;
const REQUEST = latin1Bytes(`GET http://127.0.0.1:${ORIGIN_PORT}/small HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\nUser-Agent: hotpath\r\nAccept: */*\r\n\r\n`);
const RESPONSE = latin1Bytes(
  `HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 29 Nov 2026 23:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\nLast-Modified: Sun, 29 Nov 2026 22:00:00 GMT\r\nConnection: keep-alive\r\nETag: "1-400"\r\nAccept-Ranges: bytes\r\n\r\n${"x".repeat(1024)}`,
);

/** An origin that answers each request head (ended by a blank line) with {@link RESPONSE}. */
async function serveOrigin(conn: Conn): Promise<void> {
  for (;;) {
    const chunk = await conn.read().catch(() => null);
    if (chunk === null) return;
    await conn.write(RESPONSE);
  }
}

const net: Net = {
  async listenTcp() {
    throw new Error("not used");
  },
  async connectTcp(addr) {
    const [mine, theirs] = connPair({ host: "127.0.0.1", port: 40000 }, addr);
    void serveOrigin(theirs);
    return mine;
  },
  async resolve() {
    throw new Error("not used: the target is an IP literal");
  },
};

const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, allowed_domains: ["127.0.0.1"] }, { resolve: (h) => net.resolve(h) });
const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false, pool: new UpstreamPool(state) };

/** One keep-alive client sending `n` requests one after another; resolves when all answered. */
async function client(n: number): Promise<void> {
  const [mine, proxySide] = connPair();
  const session = serveHttpConnection(proxySide, ctx);
  const expected = RESPONSE.length;
  for (let i = 0; i < n; i++) {
    await mine.write(REQUEST);
    let got = 0;
    while (got < expected) {
      const c = await mine.read();
      if (c === null) throw new Error("the proxy closed the connection");
      got += c.length;
    }
  }
  mine.close();
  await session;
}

async function run(n: number): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => client(Math.ceil(n / CLIENTS))));
  return ((performance.now() - start) * 1000) / n;
}

await run(Math.min(20_000, REQUESTS)); // warm-up
const us = await run(REQUESTS);
console.log(`hot path: ${us.toFixed(2)} µs per keep-alive request (${REQUESTS} requests, ${CLIENTS} clients, in-memory connections, ${runtime})`);
ctx.pool?.close();
