/**
 * Allowed plain HTTP through the proxy (curl -x, undici ProxyAgent), large bodies both ways,
 * chunked request bodies, hop-by-hop header removal, keep-alive with per-request decisions,
 * and 502 when the upstream refuses. docs/behaviour.md §3, §5.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fetch, ProxyAgent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  absoluteGet,
  blockedBody,
  curl,
  curlHttp,
  deadPort,
  type EchoReply,
  expectBlockedJson,
  makeTempDir,
  networkConfig,
  type Origin,
  patternBytes,
  type ProxyProcess,
  RawClient,
  rawRequest,
  sha256,
  startOrigin,
  startProxy,
  withDeadline,
} from "./helpers/index.ts";

const TEN_MB = 10 * 1024 * 1024;

let origin: Origin;
let proxy: ProxyProcess;
let tmp: { dir: string; remove(): void };
let bigFile: string;
let bigSha: string;
let expectedDownloadSha: string;
const agents: ProxyAgent[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
  tmp = makeTempDir();
  const big = randomBytes(TEN_MB);
  bigFile = join(tmp.dir, "upload.bin");
  writeFileSync(bigFile, big);
  bigSha = sha256(big);
  expectedDownloadSha = sha256(patternBytes(TEN_MB));
});

afterAll(async () => {
  await Promise.allSettled(agents.map((a) => a.close()));
  await proxy?.stop();
  await origin?.close();
  tmp?.remove();
});

function agent(proxyTunnel: boolean): ProxyAgent {
  const a = new ProxyAgent({ uri: proxy.url, proxyTunnel });
  agents.push(a);
  return a;
}

describe("allowed requests with curl -x", () => {
  it("GET is forwarded in origin-form and answered 200", async () => {
    const r = await curlHttp(["-x", proxy.url, `${origin.url}/hello?x=1&y=two`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.text) as EchoReply;
    expect(echo.method).toBe("GET");
    expect(echo.url).toBe("/hello?x=1&y=two");
    expect(echo.headers.host).toBe(`127.0.0.1:${origin.port}`);
    expect(echo.bodyLength).toBe(0);
  });

  it("POST of a 10 MB body arrives intact (sha256 echoed)", async () => {
    const r = await curlHttp(["-x", proxy.url, "--data-binary", `@${bigFile}`, "-H", "content-type: application/octet-stream", `${origin.url}/upload`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.text) as EchoReply;
    expect(echo.method).toBe("POST");
    expect(echo.bodyLength).toBe(TEN_MB);
    expect(echo.bodySha256).toBe(bigSha);
  });

  it("a chunked request body (Transfer-Encoding: chunked) arrives intact", async () => {
    const r = await curlHttp(["-x", proxy.url, "-H", "Transfer-Encoding: chunked", "--data-binary", `@${bigFile}`, `${origin.url}/chunked-upload`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.text) as EchoReply;
    expect(echo.bodyLength).toBe(TEN_MB);
    expect(echo.bodySha256).toBe(bigSha);
    // never both framings towards the origin
    expect(echo.headers["content-length"] !== undefined && echo.headers["transfer-encoding"] !== undefined).toBe(false);
  });

  it("download of 10 MB with Content-Length arrives intact", async () => {
    const out = join(tmp.dir, "dl-length.bin");
    const r = await curlHttp(["-x", proxy.url, "-o", out, `${origin.url}/bytes?n=${TEN_MB}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect(r.headers["content-length"]).toBe(String(TEN_MB));
    const got = readFileSync(out);
    expect(got.length).toBe(TEN_MB);
    expect(sha256(got)).toBe(expectedDownloadSha);
  });

  it("download of 10 MB with chunked transfer coding arrives intact", async () => {
    const out = join(tmp.dir, "dl-chunked.bin");
    const r = await curlHttp(["-x", proxy.url, "-o", out, `${origin.url}/bytes?n=${TEN_MB}&chunked=1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const got = readFileSync(out);
    expect(got.length).toBe(TEN_MB);
    expect(sha256(got)).toBe(expectedDownloadSha);
  });

  it("a close-delimited response (no Content-Length) is relayed completely", async () => {
    const r = await curlHttp(["-x", proxy.url, `${origin.url}/close?n=200000`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(200000);
    expect(sha256(r.body)).toBe(sha256(patternBytes(200000)));
  });

  it("HEAD is forwarded and answered without a body (the next request on the socket still works)", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`HEAD http://127.0.0.1:${origin.port}/bytes?n=1234 HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
      const r = await c.readResponse({ noBody: true });
      expect(r.status).toBe(200);
      expect(r.headers["content-length"]).toBe("1234");
      await c.write(absoluteGet(`127.0.0.1:${origin.port}`, "/after-head"));
      const r2 = await c.readResponse();
      expect(r2.status).toBe(200);
      expect((JSON.parse(r2.text) as EchoReply).url).toBe("/after-head");
    } finally {
      c.destroy();
    }
  });
});

describe("allowed requests with undici fetch + ProxyAgent", () => {
  for (const tunnel of [false, true]) {
    const how = tunnel ? "CONNECT tunnel (proxyTunnel: true)" : "absolute-form (proxyTunnel: false)";
    describe(how, () => {
      it("GET returns the echo", async () => {
        const res = await withDeadline(fetch(`${origin.url}/fetch-get?q=1`, { dispatcher: agent(tunnel) }), 15_000, "fetch GET");
        expect(res.status).toBe(200);
        const echo = (await res.json()) as EchoReply;
        expect(echo.method).toBe("GET");
        expect(echo.url).toBe("/fetch-get?q=1");
      });

      it("POST of a 10 MB body arrives intact", async () => {
        const body = readFileSync(bigFile);
        const res = await withDeadline(
          fetch(`${origin.url}/fetch-post`, { method: "POST", body, dispatcher: agent(tunnel) }),
          20_000,
          "fetch POST",
        );
        expect(res.status).toBe(200);
        const echo = (await res.json()) as EchoReply;
        expect(echo.method).toBe("POST");
        expect(echo.bodyLength).toBe(TEN_MB);
        expect(echo.bodySha256).toBe(bigSha);
      });

      for (const chunked of [false, true]) {
        it(`download of 10 MB (${chunked ? "chunked" : "content-length"}) arrives intact`, async () => {
          const res = await withDeadline(
            fetch(`${origin.url}/bytes?n=${TEN_MB}${chunked ? "&chunked=1" : ""}`, { dispatcher: agent(tunnel) }),
            20_000,
            "fetch download",
          );
          expect(res.status).toBe(200);
          const buf = Buffer.from(await withDeadline(res.arrayBuffer(), 20_000, "download body"));
          expect(buf.length).toBe(TEN_MB);
          expect(sha256(buf)).toBe(expectedDownloadSha);
        });
      }

      it("a blocked host is refused with 403 (fetch sees the refusal)", async () => {
        const p = fetch("http://not-listed.invalid/", { dispatcher: agent(tunnel) });
        if (tunnel) {
          // a refused CONNECT surfaces as a fetch error mentioning the 403
          await expect(withDeadline(p, 15_000, "fetch blocked")).rejects.toThrow();
        } else {
          const res = await withDeadline(p, 15_000, "fetch blocked");
          expect(res.status).toBe(403);
          expect(res.headers.get("x-proxy-error")).toBe("blocked-by-allowlist");
          expect(await res.json()).toEqual(blockedBody("not-listed.invalid", "not_allowed", 80));
        }
      });
    });
  }
});

describe("hop-by-hop headers", () => {
  it("removes Connection and the headers it names, Keep-Alive, Proxy-*, TE, Trailer, Upgrade; keeps the rest", async () => {
    const r = await curlHttp([
      "-x",
      proxy.url,
      "-H",
      "Connection: keep-alive, X-Drop-Me",
      "-H",
      "X-Drop-Me: secret",
      "-H",
      "Keep-Alive: timeout=5",
      "-H",
      "Proxy-Authorization: Basic dXNlcjpwYXNz",
      "-H",
      "TE: trailers",
      "-H",
      "Trailer: X-Trailer",
      "-H",
      "Upgrade: websocket",
      "-H",
      "X-Forwarded-For: 127.0.0.9",
      "-H",
      "X-Custom: kept",
      `${origin.url}/headers`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.text) as EchoReply;
    const h = echo.headers;
    for (const gone of ["x-drop-me", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "upgrade"]) {
      expect(h[gone], `${gone} must not be forwarded`).toBeUndefined();
    }
    expect(String(h.connection ?? "")).not.toMatch(/x-drop-me/i);
    expect(h["x-forwarded-for"]).toBe("127.0.0.9");
    expect(h["x-custom"]).toBe("kept");
    expect(h.host).toBe(`127.0.0.1:${origin.port}`);
  });
});

describe("keep-alive: every request on a connection is decided on its own", () => {
  it("allowed, refused, allowed on one socket (sequential)", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      const before = origin.connections();
      await c.write(absoluteGet(`127.0.0.1:${origin.port}`, "/one"));
      const r1 = await c.readResponse();
      expect(r1.status).toBe(200);
      expect((JSON.parse(r1.text) as EchoReply).url).toBe("/one");

      await c.write(absoluteGet("not-listed.invalid", "/two"));
      const r2 = await c.readResponse();
      expectBlockedJson(r2, blockedBody("not-listed.invalid", "not_allowed", 80));
      expect(r2.headers.connection).not.toMatch(/close/i);

      await c.write(absoluteGet(`127.0.0.1:${origin.port}`, "/three"));
      const r3 = await c.readResponse();
      expect(r3.status).toBe(200);
      expect((JSON.parse(r3.text) as EchoReply).url).toBe("/three");
      expect(c.closed).toBe(false);
      // the upstream connection was kept alive and reused as well: one new connection at most
      // (none when an idle one from an earlier test was taken from the shared pool)
      expect(origin.connections() - before).toBeLessThanOrEqual(1);
    } finally {
      c.destroy();
    }
  });

  it("allowed, refused, allowed pipelined in one write", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(
        absoluteGet(`127.0.0.1:${origin.port}`, "/p1") + absoluteGet("not-listed.invalid", "/p2") + absoluteGet(`127.0.0.1:${origin.port}`, "/p3"),
      );
      const r1 = await c.readResponse();
      const r2 = await c.readResponse();
      const r3 = await c.readResponse();
      expect(r1.status).toBe(200);
      expect((JSON.parse(r1.text) as EchoReply).url).toBe("/p1");
      expectBlockedJson(r2, blockedBody("not-listed.invalid", "not_allowed", 80));
      expect(r3.status).toBe(200);
      expect((JSON.parse(r3.text) as EchoReply).url).toBe("/p3");
    } finally {
      c.destroy();
    }
  });

  it("origin-form requests are routed by Host", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`GET /origin-form?a=b HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
      const r = await c.readResponse();
      expect(r.status).toBe(200);
      const echo = JSON.parse(r.text) as EchoReply;
      expect(echo.url).toBe("/origin-form?a=b");
      expect(echo.headers.host).toBe(`127.0.0.1:${origin.port}`);
      await c.write("GET /x HTTP/1.1\r\nHost: not-listed.invalid:8080\r\n\r\n");
      expectBlockedJson(await c.readResponse(), blockedBody("not-listed.invalid", "not_allowed", 8080));
    } finally {
      c.destroy();
    }
  });

  it("HTTP/1.0 request gets its response and the connection is closed", async () => {
    const ex = await rawRequest(proxy.port, `GET http://127.0.0.1:${origin.port}/ten HTTP/1.0\r\n\r\n`);
    expect(ex.response.status).toBe(200);
    expect((JSON.parse(ex.response.text) as EchoReply).url).toBe("/ten");
    expect(ex.closed).toBe(true);
  });

  it("HTTP/1.0 client receives a close-delimited upstream body completely", async () => {
    const ex = await rawRequest(proxy.port, `GET http://127.0.0.1:${origin.port}/close HTTP/1.0\r\n\r\n`);
    expect(ex.response.status).toBe(200);
    expect(ex.response.text).toBe("close-delimited body");
    expect(ex.closed).toBe(true);
  });
});

describe("upstream failure", () => {
  it("plain request to a loopback port nothing listens on → 502 upstream failure", async () => {
    const port = await deadPort();
    const r = await curlHttp(["-x", proxy.url, `http://127.0.0.1:${port}/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(502);
    expect(r.headers["content-type"]).toMatch(/^text\/plain\b/);
    expect(r.text).toBe("upstream failure");
  });

  it("the proxy still serves after a 502", async () => {
    const r = await curl(["-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code}", `${origin.url}/after-502`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe("200");
  });
});
