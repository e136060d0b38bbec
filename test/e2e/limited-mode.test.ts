/**
 * Limited mode (docs/behaviour.md §3, §5): only GET, HEAD and OPTIONS pass; the host decision comes
 * first; CONNECT is refused after the host check.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  absoluteGet,
  blockedBody,
  curlHttp,
  type EchoReply,
  expectBlockedConnect,
  expectBlockedJson,
  networkConfig,
  type Origin,
  type ProxyProcess,
  proxyConnect,
  RawClient,
  requestOnce,
  startOrigin,
  startProxy,
} from "./helpers/index.ts";

let origin: Origin;
let proxy: ProxyProcess;

beforeAll(async () => {
  origin = await startOrigin();
  proxy = await startProxy(networkConfig({ mode: "limited", allowed_domains: ["127.0.0.1"] }));
});

afterAll(async () => {
  await proxy?.stop();
  await origin?.close();
});

describe("limited mode", () => {
  it("GET → 200", async () => {
    const r = await curlHttp(["-x", proxy.url, `${origin.url}/limited-get`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).method).toBe("GET");
  });

  it("HEAD → 200", async () => {
    const r = await requestOnce(proxy.port, `HEAD http://127.0.0.1:${origin.port}/limited-head HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`, { noBody: true });
    expect(r.status).toBe(200);
    expect(origin.requests.at(-1)).toEqual({ method: "HEAD", url: "/limited-head" });
  });

  it("OPTIONS → 200", async () => {
    const r = await curlHttp(["-x", proxy.url, "-X", "OPTIONS", `${origin.url}/limited-options`]);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).method).toBe("OPTIONS");
  });

  it("POST → 403 blocked-by-method-policy, method_not_allowed from mode_guard, origin not reached", async () => {
    const before = origin.requests.length;
    const r = await curlHttp(["-x", proxy.url, "--data-binary", "payload", `${origin.url}/limited-post`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
    expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
    expect(JSON.parse(r.text)).toEqual({
      status: "blocked",
      host: "127.0.0.1",
      reason: "method_not_allowed",
      decision: "deny",
      source: "mode_guard",
      protocol: "http",
      port: origin.port,
      message: "Method not allowed in limited mode.",
    });
    expect(origin.requests.length).toBe(before);
  });

  it.each(["PUT", "DELETE", "PATCH"])("%s → 403 method_not_allowed", async (method) => {
    const r = await requestOnce(proxy.port, `${method} http://127.0.0.1:${origin.port}/m HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
    expectBlockedJson(r, blockedBody("127.0.0.1", "method_not_allowed", origin.port));
  });

  it("the host decision comes first: POST to a host not in the allowlist → not_allowed", async () => {
    const r = await requestOnce(proxy.port, "POST http://not-listed.invalid/ HTTP/1.1\r\nHost: not-listed.invalid\r\nContent-Length: 0\r\n\r\n");
    expectBlockedJson(r, blockedBody("not-listed.invalid", "not_allowed", 80));
  });

  it("a refused method keeps a bodiless keep-alive connection usable", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`DELETE http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
      expectBlockedJson(await c.readResponse(), blockedBody("127.0.0.1", "method_not_allowed", origin.port));
      await c.write(absoluteGet(`127.0.0.1:${origin.port}`, "/after-delete"));
      const r = await c.readResponse();
      expect(r.status).toBe(200);
      expect((JSON.parse(r.text) as EchoReply).url).toBe("/after-delete");
    } finally {
      c.destroy();
    }
  });

  it("CONNECT to an allowed target, without TLS interception (mitm = false) → 403 blocked-by-mitm-required", async () => {
    const before = origin.connections();
    const r = await proxyConnect(proxy.port, `127.0.0.1:${origin.port}`);
    expectBlockedConnect(r, "mitm_required");
    expect(r.text).toBe("Limited mode needs TLS interception (network.mitm = true) to open HTTPS tunnels.");
    expect(origin.connections()).toBe(before);
  });

  it("CONNECT to a host not in the allowlist → the host reason (checked first)", async () => {
    expectBlockedConnect(await proxyConnect(proxy.port, "not-listed.invalid:443"), "not_allowed");
  });

  it("curl -p (tunnel) in limited mode fails with the 403", async () => {
    const r = await curlHttp(["-p", "-x", proxy.url, `${origin.url}/tunnel`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/403/);
  });
});
