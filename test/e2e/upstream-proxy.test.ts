/**
 * Upstream proxy chaining (docs/behaviour.md §5, `allow_upstream_proxy = true`): the proxy under
 * test is chained to a second, independent upstream proxy started here — a second instance
 * of ours, and `proxy-chain` from npm — for plain HTTP and CONNECT, with credentials taken
 * from the proxy URL, NO_PROXY exemptions, and the policy still deciding on the target.
 * Everything is on 127.0.0.1; refused targets are `.invalid` names.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  blockedBody,
  curlHttp,
  deadPort,
  type EchoReply,
  expectBlockedConnect,
  expectBlockedJson,
  networkConfig,
  type Origin,
  pollUntil,
  proxyConnect,
  proxyGet,
  type ProxyProcess,
  RawClient,
  type RawResponse,
  startOrigin,
  startProxy,
  type StartProxyOptions,
} from "./helpers/index.ts";
import { type ChainProxy, startChainProxy } from "./helpers/proxy-chain.ts";

const USER = "user";
const PASS = "p@ss";
/** `user:p%40ss` — the password percent-encoded as it must be in a URL. */
const USERINFO = `${USER}:${encodeURIComponent(PASS)}`;

let origin: Origin;
/** A second origin: NO_PROXY names the first one's port only. */
let origin2: Origin;
/** proxy-chain without authentication. */
let chainOpen: ChainProxy;
/** proxy-chain requiring user / p@ss. */
let chainAuth: ChainProxy;
/** A second instance of ours, as the upstream proxy. */
let upstreamOurs: ProxyProcess;

/** Ours → upstreamOurs. */
let viaOurs: ProxyProcess;
/** Ours → chainAuth with the right credentials in the URL. */
let viaChain: ProxyProcess;
/** Ours → chainAuth with wrong credentials. */
let wrongCreds: ProxyProcess;
/** Ours → chainOpen, NO_PROXY=127.0.0.1. */
let noProxyHost: ProxyProcess;
/** Ours → chainOpen, lower-case variables, no_proxy=127.0.0.0/8. */
let noProxyCidr: ProxyProcess;
/** Ours → chainOpen, NO_PROXY of entries that do not match, plus 127.0.0.1:<origin port>. */
let noProxyOther: ProxyProcess;
/** allow_upstream_proxy = false, proxy variables set. */
let off: ProxyProcess;
/** HTTPS_PROXY=https://… (skipped), https_proxy=chainOpen. */
let httpsSkipped: ProxyProcess;

const started: ProxyProcess[] = [];

/** The config of the proxy under test: only 127.0.0.1 allowed, local binding off. */
function chainedConfig(extra: Record<string, unknown> = {}): string {
  return networkConfig({ allowed_domains: ["127.0.0.1"], allow_local_binding: false, allow_upstream_proxy: true, ...extra });
}

async function start(config: string, opts: StartProxyOptions): Promise<ProxyProcess> {
  const p = await startProxy(config, opts);
  started.push(p);
  return p;
}

beforeAll(async () => {
  [origin, origin2, chainOpen, chainAuth] = await Promise.all([
    startOrigin(),
    startOrigin(),
    startChainProxy(),
    startChainProxy({ credentials: { username: USER, password: PASS } }),
  ]);
  upstreamOurs = await start(networkConfig({ allowed_domains: ["127.0.0.1"] }), { env: { RUST_LOG: "info,codex_network_proxy=debug" } });
  const both = (url: string) => ({ HTTP_PROXY: url, HTTPS_PROXY: url });
  [viaOurs, viaChain, wrongCreds, noProxyHost, noProxyCidr, noProxyOther, off, httpsSkipped] = await Promise.all([
    start(chainedConfig(), { env: both(upstreamOurs.url) }),
    // named by localhost, which as a target the policy refuses: the upstream is not a target
    start(chainedConfig(), { env: both(`http://${USERINFO}@localhost:${chainAuth.port}`) }),
    start(chainedConfig(), { env: both(chainAuth.url(`${USER}:wrong`)) }),
    start(chainedConfig(), { env: { ...both(chainOpen.url()), NO_PROXY: "127.0.0.1" } }),
    start(chainedConfig(), { env: { http_proxy: chainOpen.url(), https_proxy: chainOpen.url(), no_proxy: "127.0.0.0/8" } }),
    start(chainedConfig(), { env: { ...both(chainOpen.url()), NO_PROXY: `localhost .example,10.0.0.0/8 ::1, *.invalid,127.0.0.1:${origin.port}` } }),
    start(chainedConfig({ allow_upstream_proxy: false }), { env: { ...both(chainOpen.url()), ALL_PROXY: "https://127.0.0.1:9" } }),
    start(chainedConfig(), { env: { HTTPS_PROXY: "https://127.0.0.1:9", https_proxy: chainOpen.url(), HTTP_PROXY: chainOpen.url() } }),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(started.map((p) => p.stop()));
  await Promise.allSettled([origin?.close(), origin2?.close(), chainOpen?.close(), chainAuth?.close()]);
});

beforeEach(() => {
  chainOpen.seen.length = 0;
  chainAuth.seen.length = 0;
});

/** A plain absolute-form GET through `proxy` to the origin at `port`. */
function plainGet(proxy: ProxyProcess, port: number, path: string): Promise<RawResponse> {
  return proxyGet(proxy.port, `127.0.0.1:${port}`, path);
}

/** CONNECT through `proxy` to 127.0.0.1:port, then one GET inside the tunnel. */
async function tunnelGet(proxy: ProxyProcess, port: number, path: string): Promise<{ connect: RawResponse; inner?: RawResponse }> {
  const c = await RawClient.connect(proxy.port);
  try {
    await c.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    const connect = await c.readResponse({ connect: true });
    if (connect.status !== 200) return { connect };
    await c.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    return { connect, inner: await c.readResponse() };
  } finally {
    c.destroy();
  }
}

function echoOf(r: RawResponse): EchoReply {
  expect(r.status, r.text).toBe(200);
  return JSON.parse(r.text) as EchoReply;
}

/** The plain request and the tunnel reach the origin directly: the upstream proxy sees nothing. */
async function expectDirect(proxy: ProxyProcess, chain: ChainProxy, port: number, tag: string): Promise<void> {
  const plain = echoOf(await plainGet(proxy, port, `/${tag}-plain`));
  expect(plain.url).toBe(`/${tag}-plain`);
  const { connect, inner } = await tunnelGet(proxy, port, `/${tag}-tunnel`);
  expect(connect.status, connect.text).toBe(200);
  expect(echoOf(inner!).url).toBe(`/${tag}-tunnel`);
  expect(chain.seen).toEqual([]);
}

/** The plain request and the tunnel go through `chain` and reach the origin. */
async function expectChained(proxy: ProxyProcess, chain: ChainProxy, port: number, tag: string): Promise<void> {
  const plain = echoOf(await plainGet(proxy, port, `/${tag}-plain`));
  expect(plain.url).toBe(`/${tag}-plain`);
  const { connect, inner } = await tunnelGet(proxy, port, `/${tag}-tunnel`);
  expect(connect.status, connect.text).toBe(200);
  expect(echoOf(inner!).url).toBe(`/${tag}-tunnel`);
  expect(chain.seen.map((s) => [s.method, s.hostname, s.port, s.isHttp])).toEqual([
    ["GET", "127.0.0.1", port, true],
    ["CONNECT", "127.0.0.1", port, false],
  ]);
}

describe("chained to a second instance of ours", () => {
  it("a plain request reaches the origin through the upstream instance (absolute-form)", async () => {
    const before = origin.requests.length;
    const e = echoOf(await plainGet(viaOurs, origin.port, "/via-ours?x=1"));
    expect(e.url).toBe("/via-ours?x=1");
    expect(e.headers.host).toBe(`127.0.0.1:${origin.port}`);
    expect(origin.requests.slice(before)).toEqual([{ method: "GET", url: "/via-ours?x=1" }]);
    // the upstream instance decided on (and logged) the request, at debug level
    await pollUntil(() => upstreamOurs.stderr().includes(`GET 127.0.0.1:${origin.port} allowed for 127.0.0.1:`), 5_000, "the upstream instance's GET line");
  });

  it("a CONNECT tunnel reaches the origin through the upstream instance", async () => {
    const { connect, inner } = await tunnelGet(viaOurs, origin.port, "/via-ours-tunnel");
    expect(connect.status, connect.text).toBe(200);
    expect(echoOf(inner!).url).toBe("/via-ours-tunnel");
    await pollUntil(() => upstreamOurs.stderr().includes(`CONNECT 127.0.0.1:${origin.port} allowed for 127.0.0.1:`), 5_000, "the upstream instance's CONNECT line");
  });

  it("curl through the chain, plain and tunnelled", async () => {
    const plain = await curlHttp(["-x", viaOurs.url, `${origin.url}/curl-plain`]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.status).toBe(200);
    expect((JSON.parse(plain.text) as EchoReply).url).toBe("/curl-plain");
    const tunnel = await curlHttp(["-p", "-x", viaOurs.url, `${origin.url}/curl-tunnel`]);
    expect(tunnel.code, tunnel.stderr).toBe(0);
    expect(tunnel.status).toBe(200);
    expect((JSON.parse(tunnel.text) as EchoReply).url).toBe("/curl-tunnel");
  });

  it("the upstream's own failure reaches the client: its 502 is relayed for a plain request, ours answers 502 for a tunnel", async () => {
    const port = await deadPort();
    const r = await plainGet(viaOurs, port, "/nothing-there");
    expect(r.status, r.text).toBe(502);
    expect(r.text).toBe("upstream failure");
    const { connect } = await tunnelGet(viaOurs, port, "/nothing-there");
    expect(connect.status, connect.text).toBe(502);
    expect(connect.text).toBe("upstream failure");
    await pollUntil(() => upstreamOurs.stderr().includes(`CONNECT 127.0.0.1:${port} upstream failed`), 5_000, "the upstream instance's failure line");
  });
});

describe("chained to proxy-chain (npm) with credentials in the URL", () => {
  it("a plain request goes through it in absolute-form with Basic user / p@ss", async () => {
    const before = origin.requests.length;
    const e = echoOf(await plainGet(viaChain, origin.port, "/via-chain?q=2"));
    expect(e.url).toBe("/via-chain?q=2");
    expect(origin.requests.slice(before)).toEqual([{ method: "GET", url: "/via-chain?q=2" }]);
    expect(chainAuth.seen).toEqual([
      { method: "GET", url: `http://127.0.0.1:${origin.port}/via-chain?q=2`, hostname: "127.0.0.1", port: origin.port, isHttp: true, username: USER, password: PASS, accepted: true },
    ]);
    // the credentials are for the upstream proxy only
    expect(e.headers["proxy-authorization"]).toBeUndefined();
  });

  it("a CONNECT tunnel goes through it with Basic user / p@ss", async () => {
    const { connect, inner } = await tunnelGet(viaChain, origin.port, "/via-chain-tunnel");
    expect(connect.status, connect.text).toBe(200);
    const e = echoOf(inner!);
    expect(e.url).toBe("/via-chain-tunnel");
    expect(e.headers["proxy-authorization"]).toBeUndefined();
    expect(chainAuth.seen).toEqual([
      { method: "CONNECT", url: `127.0.0.1:${origin.port}`, hostname: "127.0.0.1", port: origin.port, isHttp: false, username: USER, password: PASS, accepted: true },
    ]);
  });

  it("curl through the chain, plain and tunnelled", async () => {
    const plain = await curlHttp(["-x", viaChain.url, `${origin.url}/curl-chain-plain`]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.status).toBe(200);
    const tunnel = await curlHttp(["-p", "-x", viaChain.url, `${origin.url}/curl-chain-tunnel`]);
    expect(tunnel.code, tunnel.stderr).toBe(0);
    expect(tunnel.status).toBe(200);
    expect(chainAuth.seen.map((s) => [s.isHttp, s.accepted])).toEqual([
      [true, true],
      [false, true],
    ]);
  });

  it("the client's own Proxy-Authorization (meant for ours) is never passed upstream", async () => {
    const client = Buffer.from("client:secret").toString("base64");
    const r = await RawClient.connect(viaChain.port);
    try {
      await r.write(`GET http://127.0.0.1:${origin.port}/client-creds HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nProxy-Authorization: Basic ${client}\r\n\r\n`);
      expect(echoOf(await r.readResponse()).headers["proxy-authorization"]).toBeUndefined();
      await r.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nProxy-Authorization: Basic ${client}\r\n\r\n`);
      expect((await r.readResponse({ connect: true })).status).toBe(200);
    } finally {
      r.destroy();
    }
    expect(chainAuth.seen.map((s) => [s.method, s.username, s.password])).toEqual([
      ["GET", USER, PASS],
      ["CONNECT", USER, PASS],
    ]);
  });

  it("wrong credentials: a tunnel is refused with 502 upstream failure", async () => {
    const { connect, inner } = await tunnelGet(wrongCreds, origin.port, "/never");
    expect(inner).toBeUndefined();
    expect(connect.status, connect.text).toBe(502);
    expect(connect.text).toBe("upstream failure");
    expect(connect.headers["proxy-authenticate"]).toBeUndefined();
    expect(chainAuth.seen.map((s) => [s.method, s.username, s.password, s.accepted])).toEqual([["CONNECT", USER, "wrong", false]]);
    expect(origin.requests.some((r) => r.url === "/never")).toBe(false);
  });

  it("wrong credentials: a plain request gets 502, never the upstream's 407 (the client cannot answer it)", async () => {
    const r = await plainGet(wrongCreds, origin.port, "/never-plain");
    expect(r.status, r.text).toBe(502);
    expect(r.text).toBe("upstream failure");
    expect(r.headers["proxy-authenticate"]).toBeUndefined();
    expect(chainAuth.seen.map((s) => [s.method, s.username, s.password, s.accepted])).toEqual([["GET", USER, "wrong", false]]);
    expect(origin.requests.some((q) => q.url === "/never-plain")).toBe(false);
  });
});

describe("the policy still decides on the target", () => {
  it("a not-allowlisted name is refused by ours (403) and the upstream never sees it", async () => {
    expectBlockedJson(await proxyGet(viaChain.port, "refused.invalid"), blockedBody("refused.invalid", "not_allowed", 80));
    expectBlockedConnect(await proxyConnect(viaChain.port, "refused.invalid:443"), "not_allowed");
    expect(chainAuth.seen).toEqual([]);
  });

  it("a loopback literal that is not allowlisted is refused as local (the upstream would have reached it)", async () => {
    expectBlockedJson(await proxyGet(viaChain.port, `127.0.0.2:${origin.port}`), blockedBody("127.0.0.2", "not_allowed_local", origin.port));
    expectBlockedConnect(await proxyConnect(viaChain.port, `127.0.0.2:${origin.port}`), "not_allowed_local");
    expect(chainAuth.seen).toEqual([]);
  });

  it("the upstream proxy's own address is not judged as a target (allow_local_binding = false)", async () => {
    // viaChain names its upstream as localhost:PORT. As a target, localhost is refused (not
    // allowlisted: 127.0.0.1 does not imply localhost, and local binding is off)...
    expectBlockedJson(await proxyGet(viaChain.port, `localhost:${chainAuth.port}`), blockedBody("localhost", "not_allowed_local", chainAuth.port));
    expect(chainAuth.seen).toEqual([]);
    // ...yet as the upstream proxy it is used (every chained request in this file went there).
    expect(viaChain.stderr()).toContain(`upstream proxy chaining on: http://localhost:${chainAuth.port}`);
    echoOf(await plainGet(viaChain, origin.port, "/via-localhost-proxy"));
    expect(chainAuth.seen).toHaveLength(1);
  });
});

describe("NO_PROXY", () => {
  it("NO_PROXY=127.0.0.1: requests go direct, the upstream sees nothing, and they still work", async () => {
    await expectDirect(noProxyHost, chainOpen, origin.port, "nph");
  });

  it("lower-case variables and no_proxy=127.0.0.0/8 (CIDR): direct", async () => {
    await expectDirect(noProxyCidr, chainOpen, origin.port, "npc");
  });

  it("entries that do not match the target: through the upstream", async () => {
    await expectChained(noProxyOther, chainOpen, origin2.port, "npo");
  });

  it("127.0.0.1:<port> exempts only that port: the named origin direct, another port through the upstream", async () => {
    await expectDirect(noProxyOther, chainOpen, origin.port, "npp-direct");
    await expectChained(noProxyOther, chainOpen, origin2.port, "npp-chained");
  });

  it("the policy still applies to a NO_PROXY-exempt target", async () => {
    expectBlockedJson(await proxyGet(noProxyOther.port, "refused.invalid"), blockedBody("refused.invalid", "not_allowed", 80));
    expect(chainOpen.seen).toEqual([]);
  });
});

describe("default off", () => {
  it("allow_upstream_proxy = false: the proxy variables are ignored, requests go direct", async () => {
    await expectDirect(off, chainOpen, origin.port, "off");
    expect(off.stderr()).not.toContain("upstream proxy chaining on");
    // an unusable value is not worth a warning when chaining is off
    expect(off.stderr()).not.toMatch(/WARN.*ALL_PROXY/);
  });

  it("allow_upstream_proxy = false: a malformed proxy variable does not keep the proxy from starting", async () => {
    const p = await start(chainedConfig({ allow_upstream_proxy: false }), { env: { HTTP_PROXY: "http://a%zz@127.0.0.1:9", HTTPS_PROXY: "http://user:100%@127.0.0.1:9" }, readyTimeoutMs: 15_000 });
    await expectDirect(p, chainOpen, origin.port, "off-malformed");
  });
});

describe("unusable proxy variables", () => {
  it("an https:// value is skipped with a warning and the next candidate (lower-case) is used", async () => {
    expect(httpsSkipped.stderr()).toMatch(/WARN .*HTTPS_PROXY: https:\/\/ proxies are not supported \(only http:\/\/\); not used as upstream proxy/);
    expect(httpsSkipped.stderr()).toContain(`upstream proxy chaining on: http://127.0.0.1:${chainOpen.port}`);
    await expectChained(httpsSkipped, chainOpen, origin.port, "https-skipped");
  });

  it("chaining on: credentials with a malformed percent-escape do not keep the proxy from starting", async () => {
    // Either the raw credentials are sent or HTTP_PROXY is skipped for http_proxy: both reach chainOpen.
    const p = await start(chainedConfig(), {
      env: { HTTP_PROXY: `http://a%zz@127.0.0.1:${chainOpen.port}`, http_proxy: chainOpen.url(), HTTPS_PROXY: chainOpen.url() },
      readyTimeoutMs: 15_000,
    });
    await expectChained(p, chainOpen, origin.port, "malformed-on");
  });
});
