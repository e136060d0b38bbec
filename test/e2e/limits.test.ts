/**
 * Load limits (issue 14 item 4, docs/behaviour.md §5.20) end to end, on node, bun and deno:
 * a client opening connections past `max_connections` gets `503` with `Retry-After` (SOCKS5:
 * reply `0x01`) while the earlier connections keep working; a CONNECT past `max_tunnels` gets
 * `429`; a burst past `max_requests_per_second` gets `429` and the next second is served; a
 * tunnel silent for `tunnel_idle_timeout` is closed; each refusal is in `/blocked`, the limits
 * in `/config`, and a reload changes them.
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminJson, adminRequest } from "./helpers/admin.ts";
import {
  delay,
  networkConfig,
  type Origin,
  type ProxyProcess,
  RawClient,
  RUNTIME,
  SOCKS_REP,
  socksOpen,
  SOCKS_CMD,
  startEchoServer,
  startOrigin,
  startProxy,
  type TcpServer,
} from "./helpers/index.ts";

let origin: Origin;
let echo: TcpServer;
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  [origin, echo] = await Promise.all([startOrigin(), startEchoServer()]);
});

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await Promise.allSettled([origin?.close(), echo?.close()]);
});

async function start(limits: Record<string, unknown>): Promise<ProxyProcess> {
  const p = await startProxy(
    networkConfig({ enable_socks5: true, socks_url: "http://127.0.0.1:0", allowed_domains: ["127.0.0.1"], ...limits }),
    { waitForAdmin: true },
  );
  proxies.push(p);
  return p;
}

/** A GET on an open keep-alive connection; the response. */
async function get(c: RawClient, path: string) {
  await c.write(`GET ${origin.url}${path} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
  return c.readResponse({ timeoutMs: 5_000 });
}

describe(`load limits (${RUNTIME})`, () => {
  it("max_connections: the connection past it gets 503 with Retry-After and is closed; the earlier ones keep working", async () => {
    const p = await start({ max_connections: 3 });
    const held = await Promise.all([RawClient.connect(p.port), RawClient.connect(p.port), RawClient.connect(p.port)]);
    try {
      for (const c of held) expect((await get(c, "/first")).status).toBe(200);
      const extra = await RawClient.connect(p.port);
      try {
        const r = await get(extra, "/extra");
        expect(r.status).toBe(503);
        expect(r.headers["retry-after"]).toBe("1");
        expect(r.headers["x-proxy-error"]).toBe("blocked-by-limit");
        expect(JSON.parse(r.text)).toMatchObject({ reason: "too_many_connections" });
        expect(await extra.waitClosed(5_000)).toBe(true);
      } finally {
        extra.destroy();
      }
      // SOCKS5 counts against the same limit: reply 0x01
      const socks = await socksOpen(p.socksPort!, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
      expect(socks.reply.rep).toBe(SOCKS_REP.GENERAL_FAILURE);
      socks.client.destroy();
      for (const c of held) expect((await get(c, "/again")).status).toBe(200);
    } finally {
      for (const c of held) c.destroy();
    }
    // once they are gone there is room again
    await delay(200);
    const after = await RawClient.connect(p.port);
    try {
      expect((await get(after, "/after")).status).toBe(200);
    } finally {
      after.destroy();
    }
    // recorded, at most one a second (a flood must not push policy refusals out of /blocked)
    const blocked = await adminJson<{ blocked: { reason: string; protocol: string }[] }>(p.adminPort!, "/blocked");
    expect(blocked.blocked.length).toBeGreaterThanOrEqual(1);
    expect(new Set(blocked.blocked.map((b) => b.reason))).toEqual(new Set(["too_many_connections"]));
  });

  it("max_connections: a refused client that sends nothing is closed within seconds and holds no slot", async () => {
    const p = await start({ max_connections: 1 });
    const holder = await RawClient.connect(p.port);
    expect((await get(holder, "/hold")).status).toBe(200);
    const silent = await Promise.all([RawClient.connect(p.port), RawClient.connect(p.port), RawClient.connect(p.port)]);
    try {
      for (const c of silent) expect(await c.waitClosed(5_000)).toBe(true);
      holder.destroy();
      // the slot the holder held is free again once its session has ended
      let status = 0;
      for (let i = 0; i < 30 && status !== 200; i++) {
        await delay(100);
        const fresh = await RawClient.connect(p.port);
        try {
          status = (await get(fresh, "/fresh")).status;
        } finally {
          fresh.destroy();
        }
      }
      expect(status).toBe(200);
    } finally {
      for (const c of silent) c.destroy();
    }
  });

  it("max_tunnels: a slot comes back when a tunnel ends, after a refused CONNECT, and for SOCKS5", async () => {
    const p = await start({ max_tunnels: 1 });
    const connect = async (host: string) => {
      const c = await RawClient.connect(p.port);
      await c.write(`CONNECT ${host}:${echo.port} HTTP/1.1\r\nHost: ${host}:${echo.port}\r\n\r\n`);
      return { c, status: (await c.readResponse({ connect: true })).status };
    };
    for (let i = 0; i < 3; i++) {
      const t = await connect("127.0.0.1");
      expect(t.status).toBe(200);
      t.c.destroy();
      await delay(100);
    }
    const refused = await connect("not-allowed.invalid"); // a 403 by the policy holds no slot afterwards
    expect(refused.status).toBe(403);
    refused.c.destroy();
    await delay(100);
    const socks = await socksOpen(p.socksPort!, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
    expect(socks.reply.rep).toBe(SOCKS_REP.SUCCEEDED);
    socks.client.destroy();
    await delay(100);
    const last = await connect("127.0.0.1");
    expect(last.status).toBe(200);
    last.c.destroy();
  });

  it("max_tunnels: a CONNECT past it gets 429 with Retry-After: 1; a SOCKS5 CONNECT gets 0x02", async () => {
    const p = await start({ max_tunnels: 1 });
    const first = await RawClient.connect(p.port);
    try {
      await first.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
      expect((await first.readResponse({ connect: true })).status).toBe(200);
      const second = await RawClient.connect(p.port);
      try {
        await second.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
        const r = await second.readResponse({ connect: true });
        expect(r.status).toBe(429);
        expect(r.headers["retry-after"]).toBe("1");
      } finally {
        second.destroy();
      }
      const socks = await socksOpen(p.socksPort!, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
      expect(socks.reply.rep).toBe(SOCKS_REP.NOT_ALLOWED);
      socks.client.destroy();
    } finally {
      first.destroy();
    }
  });

  it("max_requests_per_second: a burst past it gets 429, the next second is served; a reload lifts it", async () => {
    const p = await start({ max_requests_per_second: 2, max_request_burst: 3 });
    const c = await RawClient.connect(p.port);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await get(c, `/burst${i}`)).status);
      expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
      expect(statuses.slice(3)).toContain(429);
      await delay(1_100);
      expect((await get(c, "/next-second")).status).toBe(200);
      const config = await adminJson<{ network: { max_requests_per_second: number; max_connections: number } }>(p.adminPort!, "/config");
      expect(config.network).toMatchObject({ max_requests_per_second: 2, max_connections: 16384 });
      // a reload takes the limit away
      writeFileSync(p.configPath, networkConfig({ enable_socks5: true, socks_url: "http://127.0.0.1:0", allowed_domains: ["127.0.0.1"] }));
      expect((await adminRequest(p.adminPort!, "POST", "/reload")).status).toBe(200);
      const after: number[] = [];
      for (let i = 0; i < 6; i++) after.push((await get(c, `/unlimited${i}`)).status);
      expect(after).toEqual([200, 200, 200, 200, 200, 200]);
    } finally {
      c.destroy();
    }
  });

  it("tunnel_idle_timeout: a silent tunnel is closed; a busy one is not", async () => {
    const p = await start({ tunnel_idle_timeout: 1 });
    const open = async () => {
      const c = await RawClient.connect(p.port);
      await c.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
      expect((await c.readResponse({ connect: true })).status).toBe(200);
      return c;
    };
    const [silent, busy] = await Promise.all([open(), open()]);
    try {
      for (let i = 0; i < 6; i++) {
        await delay(300);
        await busy.write(`ping ${i}\n`);
      }
      expect(await silent.waitClosed(3_000)).toBe(true);
      expect(busy.closed).toBe(false);
      expect(p.stderr()).toMatch(/closed after 1 s without a byte either way \(tunnel_idle_timeout\)/);
    } finally {
      silent.destroy();
      busy.destroy();
    }
  });
});
