/**
 * CONNECT tunnels (docs/behaviour.md §5): a plaintext HTTP exchange through curl -p, raw byte tunnels
 * to a TCP echo server with half-close in both directions, and 502 when the upstream refuses.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  curlHttp,
  deadPort,
  type EchoReply,
  makeTempDir,
  networkConfig,
  type Origin,
  pollUntil,
  type ProxyProcess,
  RawClient,
  sha256,
  startBannerServer,
  startEchoServer,
  startOrigin,
  startProxy,
  type TcpServer,
} from "./helpers/index.ts";

let origin: Origin;
let echo: TcpServer;
let banner: TcpServer;
let proxy: ProxyProcess;

beforeAll(async () => {
  [origin, echo, banner] = await Promise.all([startOrigin(), startEchoServer(), startBannerServer("hello from the server\n")]);
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.allSettled([origin?.close(), echo?.close(), banner?.close()]);
});

/** Open a tunnel to 127.0.0.1:port; returns the client positioned after the 200 head. */
async function openTunnel(port: number, opts: { allowHalfOpen?: boolean; firstBytes?: string } = {}): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port, "127.0.0.1", { allowHalfOpen: opts.allowHalfOpen });
  await c.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n${opts.firstBytes ?? ""}`);
  const r = await c.readResponse({ connect: true });
  expect(r.status, r.text).toBe(200);
  return c;
}

describe("CONNECT tunnel carrying plaintext HTTP (curl -p -x)", () => {
  it("GET through the tunnel reaches the origin", async () => {
    const r = await curlHttp(["-p", "-x", proxy.url, `${origin.url}/through-tunnel?x=1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const e = JSON.parse(r.text) as EchoReply;
    expect(e.url).toBe("/through-tunnel?x=1");
    expect(e.headers.host).toBe(`127.0.0.1:${origin.port}`);
  });

  it("POST of 2 MB through the tunnel arrives intact", async () => {
    const tmp = makeTempDir();
    try {
      const data = randomBytes(2 * 1024 * 1024);
      writeFileSync(`${tmp.dir}/b.bin`, data);
      const r = await curlHttp(["-p", "-x", proxy.url, "--data-binary", `@${tmp.dir}/b.bin`, `${origin.url}/tunnel-post`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.status).toBe(200);
      const e = JSON.parse(r.text) as EchoReply;
      expect(e.bodyLength).toBe(data.length);
      expect(e.bodySha256).toBe(sha256(data));
    } finally {
      tmp.remove();
    }
  });
});

describe("raw CONNECT to a TCP echo server", () => {
  it("answers HTTP/1.1 200 and carries bytes both ways", async () => {
    const c = await openTunnel(echo.port);
    try {
      await c.write("ping 1\n");
      expect((await c.readBytes(7)).toString()).toBe("ping 1\n");
      const payload = Buffer.from([0, 1, 2, 13, 10, 255, 254, 0]);
      await c.write(payload);
      expect(await c.readBytes(payload.length)).toEqual(payload);
    } finally {
      c.destroy();
    }
  });

  it("bytes sent right after the CONNECT head (same write) are tunnelled", async () => {
    const c = await openTunnel(echo.port, { firstBytes: "early bytes" });
    try {
      expect((await c.readBytes(11)).toString()).toBe("early bytes");
    } finally {
      c.destroy();
    }
  });

  it("client half-close: data then FIN; the echo server echoes, closes, and the client gets everything", async () => {
    const idx = echo.sessions.length;
    const c = await openTunnel(echo.port);
    try {
      const data = randomBytes(300 * 1024);
      await c.write(data);
      c.endWrite();
      const back = await c.readToEnd(15_000);
      expect(back.length).toBe(data.length);
      expect(sha256(back)).toBe(sha256(data));
      expect(echo.sessions[idx]?.gotEnd).toBe(true);
    } finally {
      c.destroy();
    }
  });

  it("server half-close: the server's FIN reaches the client while the client can still send", async () => {
    const before = banner.sessions.length;
    const c = await openTunnel(banner.port, { allowHalfOpen: true });
    try {
      const got = await c.readToEnd(10_000);
      expect(got.toString()).toBe("hello from the server\n");
      // our side is still open: send after receiving the server's FIN
      await c.write("late reply");
      c.endWrite();
      const session = () => banner.sessions[before];
      await pollUntil(() => session()?.gotEnd ?? false, 10_000, "the server to receive the client's FIN");
      expect(session()?.received.toString()).toBe("late reply");
      expect(session()?.gotEnd).toBe(true);
    } finally {
      c.destroy();
    }
  });

  it("5 MB echoed through the tunnel arrives intact", async () => {
    const c = await openTunnel(echo.port);
    try {
      const data = randomBytes(5 * 1024 * 1024);
      const write = c.write(data);
      const back = await c.readBytes(data.length, 20_000);
      await write;
      expect(sha256(back)).toBe(sha256(data));
    } finally {
      c.destroy();
    }
  });
});

describe("CONNECT errors", () => {
  it("upstream refused → 502 text `upstream failure`", async () => {
    const port = await deadPort();
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
      const r = await c.readResponse({ connect: true });
      expect(r.status).toBe(502);
      expect(r.headers["content-type"]).toMatch(/^text\/plain\b/);
      expect(r.text).toBe("upstream failure");
    } finally {
      c.destroy();
    }
  });

  it("curl -p to a refused port fails with 502", async () => {
    const port = await deadPort();
    const r = await curlHttp(["-p", "-x", proxy.url, `http://127.0.0.1:${port}/`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/502/);
  });

  it("CONNECT without a port → 400", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write("CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const r = await c.readResponse();
      expect(r.status).toBe(400);
    } finally {
      c.destroy();
    }
  });
});
