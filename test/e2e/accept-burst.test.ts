/**
 * A burst of simultaneous connects to the standalone proxy, on every runtime: every client of the
 * burst is accepted and answered, on the HTTP and the SOCKS5 listener. On Node, each of those
 * listeners also listens through more descriptors of its socket (runtimes/node/accept-handles.ts),
 * as many as the proxy's open-files limit allows, and the admin API through one.
 *
 * The load figures (thousands of busy clients, accept queues, p99) are measured by
 * `npm run bench -- load`, never here: this checks that accepting through the copies works and
 * loses nobody.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extraAcceptHandles } from "../../src/runtimes/node/accept-handles.ts";
import { listenInode, socketDescriptors } from "../helpers/proc-sockets.ts";
import {
  absoluteGet,
  networkConfig,
  type Origin,
  type ProxyProcess,
  RawClient,
  readSocksReply,
  RUNTIME,
  SOCKS_CMD,
  SOCKS_GREETING,
  SOCKS_REP,
  socksRequest,
  startOrigin,
  startProxy,
  withDeadline,
} from "./helpers/index.ts";

/** Clients connecting at once to each listener (the test process holds two descriptors each). */
const BURST = 300;
/** Deadline for the whole burst to be answered. */
const BURST_DEADLINE_MS = 30_000;

let origin: Origin;
let proxy: ProxyProcess;

beforeAll(async () => {
  origin = await startOrigin();
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], enable_socks5: true, socks_url: "http://127.0.0.1:0" }), {
    waitForSocks5: true,
    waitForAdmin: true,
  });
});

afterAll(async () => {
  await proxy?.stop();
  await origin?.close();
});

/** Run `one` BURST times at once; resolves with how many succeeded. */
async function burst(one: () => Promise<boolean>): Promise<number> {
  const results = await withDeadline(Promise.all(Array.from({ length: BURST }, () => one().catch(() => false))), BURST_DEADLINE_MS, "the burst");
  return results.filter(Boolean).length;
}

describe(`a burst of connects (${RUNTIME})`, () => {
  it(`all ${BURST} HTTP clients connecting at once get their 200`, async () => {
    const ok = await burst(async () => {
      const c = await RawClient.connect(proxy.port);
      try {
        await c.write(absoluteGet(`127.0.0.1:${origin.port}`, "/"));
        return (await c.readResponse({ timeoutMs: BURST_DEADLINE_MS })).status === 200;
      } finally {
        c.destroy();
      }
    });
    expect(ok).toBe(BURST);
  });

  it(`all ${BURST} SOCKS5 clients connecting at once get a tunnel`, async () => {
    const ok = await burst(async () => {
      const c = await RawClient.connect(proxy.socksPort!);
      try {
        await c.write(SOCKS_GREETING);
        const method = await c.readBytes(2, BURST_DEADLINE_MS);
        if (method[1] !== 0x00) return false;
        await c.write(socksRequest(SOCKS_CMD.CONNECT, "127.0.0.1", origin.port));
        return (await readSocksReply(c, BURST_DEADLINE_MS)).rep === SOCKS_REP.SUCCEEDED;
      } finally {
        c.destroy();
      }
    });
    expect(ok).toBe(BURST);
  });

  it("a proxy stopped right after it started listening exits 0 (on Node, while its accept helper may still run)", async () => {
    for (let i = 0; i < 3; i++) {
      const quick = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], enable_socks5: true, socks_url: "http://127.0.0.1:0" }));
      expect(await quick.stop(), quick.stderr()).toBe(0);
    }
  });

  // Node only: the other runtimes accept many connections per wake-up on their own
  if (RUNTIME === "node") it("on Node, the proxy listeners accept through as many descriptors as the limit allows", async () => {
    const pid = proxy.child.pid!;
    const copies = extraAcceptHandles(readFileSync(`/proc/${pid}/limits`, "latin1"));
    expect(copies).toBeGreaterThan(0);
    const count = (port: number): number => socketDescriptors(listenInode(port, pid), pid).length;
    const deadline = Date.now() + 10_000;
    while ((count(proxy.port) !== 1 + copies || count(proxy.socksPort!) !== 1 + copies) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(count(proxy.port)).toBe(1 + copies);
    expect(count(proxy.socksPort!)).toBe(1 + copies);
    expect(count(proxy.adminPort!)).toBe(1);
  });
});
