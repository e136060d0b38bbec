/**
 * Findings of the first code review, each pinned by a test against the spawned proxy:
 * the proxy-loop guard under every loopback spelling, Host bound to the decision,
 * `Content-Length: 0` kept, fragment-only targets.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EchoReply,
  networkConfig,
  type Origin,
  type ProxyProcess,
  proxyConnect,
  requestOnce,
  SOCKS_CMD,
  socksOpen,
  startOrigin,
  startProxy,
} from "./helpers/index.ts";

let origin: Origin;
let open: ProxyProcess; // allow_local_binding = true, allowed = ["*"]: only the loop guard stands
let listed: ProxyProcess; // allow_local_binding = false, allowed = ["127.0.0.1"]

beforeAll(async () => {
  origin = await startOrigin();
  [open, listed] = await Promise.all([
    startProxy(networkConfig({ allow_local_binding: true, allowed_domains: ["*"], enable_socks5: true, socks_url: "127.0.0.1:0" })),
    startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] })),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([open?.stop(), listed?.stop()]);
  await origin?.close();
});

function get(proxy: ProxyProcess, authority: string, extraHeaders = "", path = "/"): ReturnType<typeof requestOnce> {
  return requestOnce(proxy.port, `GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\n${extraHeaders}\r\n`);
}

describe("the proxy never forwards to its own listeners", () => {
  it.each(["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "2130706433", "localhost"])(
    "GET to %s:<own HTTP port> → 403 proxy_loop",
    async (host) => {
      const r = await get(open, `${host}:${open.port}`);
      expect(r.status, r.text).toBe(403);
      expect(r.headers["x-proxy-error"]).toBe("blocked-by-policy");
      expect(JSON.parse(r.text)).toMatchObject({ reason: "proxy_loop", source: "proxy_state", decision: "deny", port: open.port });
    },
  );

  it("CONNECT to the own SOCKS5 port → 403 proxy_loop", async () => {
    const r = await proxyConnect(open.port, `[::ffff:127.0.0.1]:${open.socksPort}`);
    expect(r.status).toBe(403);
    expect(r.text).toBe("Request blocked by network policy.");
  });

  it("SOCKS5 CONNECT to the own HTTP port → 05 02", async () => {
    const { client, reply } = await socksOpen(open.socksPort!, SOCKS_CMD.CONNECT, "0.0.0.0", open.port);
    client.destroy();
    expect(reply.rep).toBe(0x02);
  });

  it("an exactly allowlisted 127.0.0.1 does not open a loop either", async () => {
    const r = await get(listed, `127.0.0.1:${listed.port}`);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ reason: "proxy_loop" });
  });

  it("the guard does not block other ports on the same host", async () => {
    const r = await get(open, `127.0.0.1:${origin.port}`);
    expect(r.status).toBe(200);
  });

  it("the proxy still serves after refusing loops", async () => {
    const r = await get(listed, `127.0.0.1:${origin.port}`);
    expect(r.status).toBe(200);
  });
});

describe("what reaches the origin", () => {
  it("Host cannot be stripped by naming it in Connection", async () => {
    const a = `127.0.0.1:${origin.port}`;
    const r = await get(listed, a, "Connection: host\r\n", "/host-check");
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.text) as EchoReply;
    expect(echo.headers.host).toBe(a);
    expect(echo.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === "host")).toHaveLength(1);
  });

  it("a Host header with non-ASCII bytes is refused with 400", async () => {
    const a = `127.0.0.1:${origin.port}`;
    const before = origin.requests.length;
    const r = await requestOnce(listed.port, Buffer.from(`GET http://${a}/ HTTP/1.1\r\nHost: 127.0.0.1\xad:${origin.port}\r\n\r\n`, "latin1"));
    expect(r.status).toBe(400);
    expect(origin.requests.length).toBe(before);
  });

  it("an explicit Content-Length: 0 is forwarded", async () => {
    const a = `127.0.0.1:${origin.port}`;
    const r = await requestOnce(listed.port, `POST http://${a}/empty HTTP/1.1\r\nHost: ${a}\r\nContent-Length: 0\r\n\r\n`);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).headers["content-length"]).toBe("0");
  });

  it("a target with only a fragment after the authority is sent as /", async () => {
    const a = `127.0.0.1:${origin.port}`;
    const r = await requestOnce(listed.port, `GET http://${a}#frag HTTP/1.1\r\nHost: ${a}\r\n\r\n`);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/");
  });
});
