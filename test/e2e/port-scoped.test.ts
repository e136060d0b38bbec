/**
 * Port-scoped allowlist entries (issue 14 item 1, docs/behaviour.md §2.2): with
 * `allowed_domains = ["127.0.0.1:<origin port>"]` the origin is reachable while another loopback
 * port on the same address is refused (`not_allowed_local`: the explicit-local-literal rule is
 * port-scoped too), on plain HTTP, CONNECT, SOCKS5 CONNECT and SOCKS5 UDP; a port-scoped deny
 * refuses that port only. On node, bun and deno.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  curlHttp,
  networkConfig,
  type Origin,
  type ProxyProcess,
  RUNTIME,
  SOCKS_CMD,
  SOCKS_REP,
  Socks5UdpClient,
  socksOpen,
  startEchoServer,
  startOrigin,
  startProxy,
  startUdpEcho,
  type TcpServer,
  type UdpEchoServer,
} from "./helpers/index.ts";

let allowed: Origin;
let other: Origin;
let echo: TcpServer;
let otherEcho: TcpServer;
let udp: UdpEchoServer;
let otherUdp: UdpEchoServer;
let proxy: ProxyProcess;

beforeAll(async () => {
  [allowed, other, echo, otherEcho, udp, otherUdp] = await Promise.all([startOrigin(), startOrigin(), startEchoServer(), startEchoServer(), startUdpEcho(), startUdpEcho()]);
  // Patterns do not tell TCP from UDP: the six ports must differ, or "another port" is the same one.
  while (new Set([allowed, other, echo, otherEcho, udp, otherUdp].map((s) => s.port)).size < 6) {
    await otherUdp.close();
    otherUdp = await startUdpEcho();
    await udp.close();
    udp = await startUdpEcho();
  }
  proxy = await startProxy(
    networkConfig({
      enable_socks5: true,
      socks_url: "http://127.0.0.1:0",
      enable_socks5_udp: true,
      allowed_domains: [`127.0.0.1:${allowed.port}`, `127.0.0.1:${echo.port}`, `127.0.0.1:${udp.port}`, `localhost:${allowed.port}`, `127.0.0.1:${other.port}`],
      // the deny entry refuses only that port: the allow entry for it above is overruled
      denied_domains: [`127.0.0.1:${other.port}`],
    }),
  );
}, 30_000);

afterAll(async () => {
  await proxy?.stop();
  await Promise.allSettled([allowed, other, echo, otherEcho, udp, otherUdp].map((s) => s?.close()));
});

const via = () => ["-x", `http://127.0.0.1:${proxy.port}`];

describe(`port-scoped entries (${RUNTIME})`, () => {
  it("plain HTTP: the allowed port is served; another port on the same address is refused", async () => {
    const ok = await curlHttp([...via(), `http://127.0.0.1:${allowed.port}/port-ok`]);
    expect(ok.status).toBe(200);
    const viaName = await curlHttp([...via(), `http://localhost:${allowed.port}/by-name`]);
    expect(viaName.status).toBe(200);
    const refused = await curlHttp([...via(), `http://127.0.0.1:${otherEcho.port}/port-refused`]);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.text)).toMatchObject({ reason: "not_allowed_local", host: "127.0.0.1", port: otherEcho.port });
    // localhost:PORT allows localhost on that port only
    const otherName = await curlHttp([...via(), `http://localhost:${otherEcho.port}/`]);
    expect(otherName.status).toBe(403);
  });

  it("a port-scoped deny refuses that port even though it is allowed", async () => {
    const r = await curlHttp([...via(), `http://127.0.0.1:${other.port}/denied`]);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ reason: "denied", port: other.port });
    expect(other.requests).toEqual([]);
  });

  it("CONNECT: the allowed port tunnels; another port is a 403", async () => {
    const ok = await curlHttp([...via(), "-p", `http://127.0.0.1:${allowed.port}/tunnelled`]);
    expect(ok.status, ok.stderr).toBe(200);
    const refused = await curlHttp([...via(), "-p", `http://127.0.0.1:${otherEcho.port}/`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/403/);
  });

  it("SOCKS5 CONNECT: the allowed port succeeds; another port gets reply 0x02", async () => {
    const ok = await socksOpen(proxy.socksPort!, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
    try {
      expect(ok.reply.rep).toBe(SOCKS_REP.SUCCEEDED);
    } finally {
      ok.client.destroy();
    }
    const refused = await socksOpen(proxy.socksPort!, SOCKS_CMD.CONNECT, "127.0.0.1", otherEcho.port);
    try {
      expect(refused.reply.rep).toBe(SOCKS_REP.NOT_ALLOWED);
    } finally {
      refused.client.destroy();
    }
  });

  it("SOCKS5 UDP: a datagram to the allowed port is relayed; one to another port is dropped", async () => {
    const u = await Socks5UdpClient.associate(proxy.socksPort!);
    try {
      await u.send("127.0.0.1", udp.port, "to the allowed port");
      expect(await u.next()).toMatchObject({ host: "127.0.0.1", port: udp.port });
      await u.send("127.0.0.1", otherUdp.port, "to another port");
      expect(await u.nothingWithin(500)).toBe(true);
      expect(otherUdp.received).toEqual([]);
    } finally {
      u.close();
    }
  });
});
