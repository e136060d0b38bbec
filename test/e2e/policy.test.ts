/**
 * Host decisions end to end (docs/behaviour.md §2–§5): allowlist misses, denylist wins, `*.` / `**.`
 * apex rules, explicit local literals, loopback spellings, names resolving to loopback.
 *
 * Network rule: only loopback is ever dialled. Refused hosts use `.example` / `.invalid`
 * names (never resolved by the proxy); allowed hosts are always loopback.
 */
import { lookup } from "node:dns/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blockedBody,
  curlHttp,
  type EchoReply,
  expectBlockedConnect,
  expectBlockedJson,
  findLoopbackAlias,
  networkConfig,
  type Origin,
  type ProxyProcess,
  proxyConnect,
  proxyGet,
  RawClient,
  requestOnce,
  startOrigin,
  startProxy,
  withDeadline,
} from "./helpers/index.ts";

let origin: Origin;
const proxies: ProxyProcess[] = [];

async function proxyWith(lines: Record<string, unknown>): Promise<ProxyProcess> {
  const p = await startProxy(networkConfig(lines));
  proxies.push(p);
  return p;
}

beforeAll(async () => {
  origin = await startOrigin();
});

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await origin?.close();
});

describe("not in the allowlist → 403 blocked-by-allowlist", () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await proxyWith({ allowed_domains: ["127.0.0.1"] });
  });

  it("curl -x: 403 with the exact JSON body of §5", async () => {
    const r = await curlHttp(["-x", proxy.url, "http://not-listed.invalid/some/path?q=1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
    expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
    expect(JSON.parse(r.text)).toEqual({
      status: "blocked",
      host: "not-listed.invalid",
      reason: "not_allowed",
      decision: "deny",
      source: "baseline_policy",
      protocol: "http",
      port: 80,
      message: "Domain not in allowlist.",
    });
  });

  it("the JSON reports the request's port", async () => {
    expectBlockedJson(await proxyGet(proxy.port, "not-listed.invalid:8080"), blockedBody("not-listed.invalid", "not_allowed", 8080));
  });

  it("the reported host is normalised (case, trailing dot)", async () => {
    expectBlockedJson(await proxyGet(proxy.port, "Not-Listed.INVALID."), blockedBody("not-listed.invalid", "not_allowed", 80));
  });

  it("nothing reached the origin for refused requests", async () => {
    const before = origin.requests.length;
    await proxyGet(proxy.port, "not-listed.invalid");
    expect(origin.requests.length).toBe(before);
  });

  it("CONNECT to a host not in the allowlist → 403 text/plain, and the connection stays open", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write("CONNECT not-listed.invalid:443 HTTP/1.1\r\nHost: not-listed.invalid:443\r\n\r\n");
      const r = await c.readResponse({ connect: true });
      expectBlockedConnect(r, "not_allowed");
      // §5: the client connection stays open for another request
      await c.write(`GET http://127.0.0.1:${origin.port}/after-connect-403 HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
      const r2 = await c.readResponse();
      expect(r2.status).toBe(200);
      expect((JSON.parse(r2.text) as EchoReply).url).toBe("/after-connect-403");
    } finally {
      c.destroy();
    }
  });

  it("an empty allowlist blocks everything, local literals included", async () => {
    const empty = await proxyWith({ allowed_domains: [] });
    expectBlockedJson(await proxyGet(empty.port, "not-listed.invalid"), blockedBody("not-listed.invalid", "not_allowed", 80));
    // §3: the local-literal step (3) comes before the allowlist step (4)
    expectBlockedJson(await proxyGet(empty.port, `127.0.0.1:${origin.port}`), blockedBody("127.0.0.1", "not_allowed_local", origin.port));
  });
});

describe("denylist → 403 blocked-by-denylist (deny always wins)", () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await proxyWith({
      allowed_domains: ["**.example", "127.0.0.1"],
      denied_domains: ["evil.example", "**.evil2.example", "127.0.0.1"],
    });
  });

  it("an exact denied name is refused although **.example allows it", async () => {
    const r = await curlHttp(["-x", proxy.url, "http://evil.example/"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-denylist");
    expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
    expect(JSON.parse(r.text)).toEqual({
      status: "blocked",
      host: "evil.example",
      reason: "denied",
      decision: "deny",
      source: "baseline_policy",
      protocol: "http",
      port: 80,
      message: "Domain denied by the sandbox policy.",
    });
  });

  it("matching is case-insensitive and ignores a trailing dot", async () => {
    expectBlockedJson(await proxyGet(proxy.port, "EVIL.Example."), blockedBody("evil.example", "denied", 80));
  });

  it("**.evil2.example denies the apex and subdomains", async () => {
    expectBlockedJson(await proxyGet(proxy.port, "evil2.example"), blockedBody("evil2.example", "denied", 80));
    expectBlockedJson(await proxyGet(proxy.port, "a.b.evil2.example:81"), blockedBody("a.b.evil2.example", "denied", 81));
  });

  it("a denied local literal is denied even though it is explicitly allowed", async () => {
    expectBlockedJson(await proxyGet(proxy.port, `127.0.0.1:${origin.port}`), blockedBody("127.0.0.1", "denied", origin.port));
  });

  it("CONNECT to a denied name → 403 text/plain blocked-by-denylist", async () => {
    expectBlockedConnect(await proxyConnect(proxy.port, "evil.example:443"), "denied");
  });
});

describe("wildcard patterns: *. excludes the apex, **. includes it", () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await proxyWith({
      allowed_domains: ["127.0.0.1", "*.allowed.example"],
      denied_domains: ["*.blocked.example", "**.blocked2.example", "*.CaseY.example", "region*.v2.example"],
    });
  });

  it.each([
    ["a.blocked.example", "denied"],
    ["a.b.blocked.example", "denied"],
    ["blocked.example", "not_allowed"],
    ["evilblocked.example", "not_allowed"],
    ["blocked2.example", "denied"],
    ["x.blocked2.example", "denied"],
    ["x.y.blocked2.example", "denied"],
    ["notblocked2.example", "not_allowed"],
    ["a.casey.example", "denied"],
    ["A.CASEY.EXAMPLE", "denied"],
    ["region-eu.v2.example", "denied"],
    ["region1.v2.example", "denied"],
    ["xregion.v2.example", "not_allowed"],
    ["v2.example", "not_allowed"],
    // *.allowed.example does not cover its apex: refused without being resolved
    ["allowed.example", "not_allowed"],
  ] as const)("%s → %s", async (host, reason) => {
    expectBlockedJson(await proxyGet(proxy.port, host), blockedBody(host.toLowerCase(), reason, 80));
  });
});

describe("ports in patterns scope them (docs/behaviour.md §2.2)", () => {
  it("a denied pattern with a port denies that port only", async () => {
    const proxy = await proxyWith({ allowed_domains: ["127.0.0.1"], denied_domains: ["ported.example:8443"] });
    expectBlockedJson(await proxyGet(proxy.port, "ported.example"), blockedBody("ported.example", "not_allowed", 80));
    expectBlockedJson(await proxyGet(proxy.port, "ported.example:8443"), blockedBody("ported.example", "denied", 8443));
  });
});

describe("explicit local literals: 127.0.0.1 does not imply localhost and vice versa", () => {
  let only127: ProxyProcess;
  let onlyLocalhost: ProxyProcess;
  beforeAll(async () => {
    [only127, onlyLocalhost] = await Promise.all([
      proxyWith({ allowed_domains: ["127.0.0.1"] }),
      proxyWith({ allowed_domains: ["localhost"] }),
    ]);
  });

  it("allow 127.0.0.1: http://127.0.0.1:PORT/ works", async () => {
    const r = await curlHttp(["-x", only127.url, `${origin.url}/explicit`]);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/explicit");
  });

  it("allow 127.0.0.1: another IPv4 spelling of 127.0.0.1 is the same literal (canonicalised first)", async () => {
    const r = await proxyGet(only127.port, `2130706433:${origin.port}`, "/decimal");
    expect(r.status, r.text).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/decimal");
  });

  it("allow 127.0.0.1: http://localhost:PORT/ → 403 not_allowed_local", async () => {
    const r = await curlHttp(["-x", only127.url, `http://localhost:${origin.port}/`]);
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
    expect(JSON.parse(r.text)).toEqual(blockedBody("localhost", "not_allowed_local", origin.port));
  });

  it("allow 127.0.0.1: 127.0.0.2 and [::1] → 403 not_allowed_local", async () => {
    expectBlockedJson(await proxyGet(only127.port, `127.0.0.2:${origin.port}`), blockedBody("127.0.0.2", "not_allowed_local", origin.port));
    expectBlockedJson(await proxyGet(only127.port, `[::1]:${origin.port}`), blockedBody("::1", "not_allowed_local", origin.port));
  });

  it("allow localhost: http://localhost:PORT/ works", async () => {
    const r = await curlHttp(["-x", onlyLocalhost.url, `http://localhost:${origin.port}/via-localhost`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status, r.text).toBe(200);
    const echo = JSON.parse(r.text) as EchoReply;
    expect(echo.url).toBe("/via-localhost");
    expect(echo.headers.host).toBe(`localhost:${origin.port}`);
  });

  it("allow localhost: http://127.0.0.1:PORT/ → 403 not_allowed_local", async () => {
    const r = await curlHttp(["-x", onlyLocalhost.url, `${origin.url}/`]);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toEqual(blockedBody("127.0.0.1", "not_allowed_local", origin.port));
  });

  it("CONNECT follows the same rule", async () => {
    expectBlockedConnect(await proxyConnect(only127.port, `localhost:${origin.port}`), "not_allowed_local");
    expectBlockedConnect(await proxyConnect(onlyLocalhost.port, `127.0.0.1:${origin.port}`), "not_allowed_local");
  });
});

describe('loopback spellings are blocked with allowed_domains = ["*"] and allow_local_binding = false', () => {
  let proxy: ProxyProcess;
  beforeAll(async () => {
    proxy = await proxyWith({ allowed_domains: ["*"], allow_local_binding: false });
  });

  // [authority as written, acceptable canonical hosts in the JSON]
  const cases: [string, string[]][] = [
    ["127.0.0.1", ["127.0.0.1"]],
    ["127.0.0.2", ["127.0.0.2"]],
    ["2130706433", ["127.0.0.1"]],
    ["0x7f.1", ["127.0.0.1"]],
    ["0x7f000001", ["127.0.0.1"]],
    ["0177.0.0.1", ["127.0.0.1"]],
    ["127.1", ["127.0.0.1"]],
    ["[::1]", ["::1"]],
    ["[0:0:0:0:0:0:0:1]", ["::1"]],
    ["[::ffff:127.0.0.1]", ["::ffff:7f00:1", "::ffff:127.0.0.1"]],
    ["0.0.0.0", ["0.0.0.0"]],
    ["0", ["0.0.0.0"]],
    ["[::]", ["::"]],
    ["localhost", ["localhost"]],
    ["LOCALHOST", ["localhost"]],
    ["localhost.", ["localhost"]],
  ];

  it.each(cases)("GET http://%s:PORT/ → 403 not_allowed_local", async (host, canonical) => {
    const before = origin.requests.length;
    const r = await proxyGet(proxy.port, `${host}:${origin.port}`);
    expect(r.status, r.text).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
    const body = JSON.parse(r.text) as { host: string };
    expect(canonical).toContain(body.host);
    expect(body).toEqual(blockedBody(body.host, "not_allowed_local", origin.port));
    expect(origin.requests.length).toBe(before);
  });

  it.each(cases)("CONNECT %s:PORT → 403 not_allowed_local", async (host) => {
    expectBlockedConnect(await proxyConnect(proxy.port, `${host}:${origin.port}`), "not_allowed_local");
  });

  it("curl -x with --path-as-is to http://0x7f.1:PORT/ is refused too", async () => {
    const r = await curlHttp(["-x", proxy.url, "--path-as-is", `http://0x7f.1:${origin.port}/`]);
    expect(r.status).toBe(403);
    expect((JSON.parse(r.text) as { reason: string }).reason).toBe("not_allowed_local");
  });
});

describe("a name that resolves to loopback is blocked even when allowlisted", () => {
  let alias: string;
  let exact: ProxyProcess;
  let star: ProxyProcess;
  beforeAll(async () => {
    alias = await findLoopbackAlias();
    [exact, star] = await Promise.all([proxyWith({ allowed_domains: [alias] }), proxyWith({ allowed_domains: ["*"] })]);
  });

  it("precondition: the alias resolves to loopback only", async () => {
    const addrs = await withDeadline(lookup(alias, { all: true }), 3_000, "lookup alias");
    expect(addrs.length).toBeGreaterThan(0);
    for (const a of addrs) expect(a.address).toMatch(/^(127\.|::1$)/);
  });

  it("allowlisted exactly → GET 403 not_allowed_local", async () => {
    const before = origin.requests.length;
    expectBlockedJson(await proxyGet(exact.port, `${alias}:${origin.port}`), blockedBody(alias, "not_allowed_local", origin.port));
    expect(origin.requests.length).toBe(before);
  });

  it('allowlisted via "*" → GET 403 not_allowed_local', async () => {
    expectBlockedJson(await proxyGet(star.port, `${alias}:${origin.port}`), blockedBody(alias, "not_allowed_local", origin.port));
  });

  it("CONNECT to it → 403 not_allowed_local", async () => {
    expectBlockedConnect(await proxyConnect(exact.port, `${alias}:${origin.port}`), "not_allowed_local");
  });
});

describe("allow_local_binding = true: local targets follow the ordinary allowlist", () => {
  let alias: string;
  let proxy: ProxyProcess;
  beforeAll(async () => {
    alias = await findLoopbackAlias();
    proxy = await proxyWith({ allow_local_binding: true, allowed_domains: [`**.${alias}`, "*.localhost"] });
  });

  it("**.NAME matches the apex NAME (a loopback alias) → forwarded", async () => {
    const r = await requestOnce(proxy.port, `GET http://${alias}:${origin.port}/apex HTTP/1.1\r\nHost: ${alias}:${origin.port}\r\n\r\n`);
    expect(r.status, r.text).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/apex");
  });

  it("*.localhost does not match the apex localhost → not_allowed", async () => {
    expectBlockedJson(await proxyGet(proxy.port, `localhost:${origin.port}`), blockedBody("localhost", "not_allowed", origin.port));
  });

  it("127.0.0.1 is not in the allowlist → not_allowed", async () => {
    expectBlockedJson(await proxyGet(proxy.port, `127.0.0.1:${origin.port}`), blockedBody("127.0.0.1", "not_allowed", origin.port));
  });
});
