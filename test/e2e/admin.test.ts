/**
 * The admin API and live configuration, end to end against the standalone proxy
 * (docs/behaviour.md §7 and §1; README "Running", "Admin API", "Managed constraints"): the real
 * admin listener, `/blocked` entries for refusals of every kind, `POST /mode`, `POST /reload`
 * and the config-file watcher, the bearer token (config and environment), the proxy-loop guard
 * for the admin port, the browser guard (cross-site requests and DNS rebinding refused, curl
 * served), admin bind clamping, `--constraints FILE`, and a reload to `enabled = false`.
 *
 * Network: loopback only; refused names are under `.example` / `.invalid` (never resolved).
 */
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminJson, adminRequest, mtimeOf, replaceFileWithMtime } from "./helpers/admin.ts";
import {
  absoluteGet,
  blockedBody,
  curl,
  curlHttp,
  type EchoReply,
  expectBlockedConnect,
  expectBlockedJson,
  makeTempDir,
  networkConfig,
  type Origin,
  type ProxyProcess,
  pollUntil,
  RawClient,
  type RawResponse,
  runCli,
  SOCKS_CMD,
  SOCKS_REP,
  socksOpen,
  startOrigin,
  startProxy,
  withDeadline,
} from "./helpers/index.ts";

/** Every `[network]` key of docs/behaviour.md §1. */
const SECTION1_KEYS = [
  "enabled",
  "proxy_url",
  "admin_url",
  "enable_socks5",
  "socks_url",
  "enable_socks5_udp",
  "allow_upstream_proxy",
  "dangerously_allow_non_loopback_proxy",
  "dangerously_allow_non_loopback_admin",
  "mode",
  "allowed_domains",
  "denied_domains",
  "allow_local_binding",
  "allow_unix_sockets",
  "admin_token",
] as const;

/** Message and `x-proxy-error` of a refusal for a reason outside the baseline policy (§5). */
const POLICY_MESSAGE = "Request blocked by network policy.";

interface BlockedEntry {
  host: string;
  reason: string;
  client: string | null;
  method: string | null;
  mode: string;
  protocol: string;
  decision: string;
  source: string;
  port: number;
  timestamp: number;
}

interface ConfigView {
  network: Record<string, unknown>;
}

let origin: Origin;

beforeAll(async () => {
  origin = await startOrigin();
});

afterAll(async () => {
  await origin?.close();
});

/** Start a proxy and wait for its admin listener too; `adminPort` is then defined. */
async function startWithAdmin(config: string, opts: Parameters<typeof startProxy>[1] = {}): Promise<ProxyProcess & { adminPort: number }> {
  const p = await startProxy(config, { waitForAdmin: true, readyTimeoutMs: 10_000, ...opts });
  if (p.adminPort === undefined) throw new Error(`no admin listening line; stderr:\n${p.stderr()}`);
  return p as ProxyProcess & { adminPort: number };
}

/** Send `bytes` to the proxy on a fresh connection; the response and our local port. */
async function throughProxy(proxyPort: number, bytes: string, opts: { connect?: boolean } = {}): Promise<{ r: RawResponse; localPort: number }> {
  const c = await RawClient.connect(proxyPort);
  try {
    const localPort = c.socket.localPort!;
    await c.write(bytes);
    return { r: await c.readResponse({ connect: opts.connect, timeoutMs: 5_000 }), localPort };
  } finally {
    c.destroy();
  }
}

function get(proxyPort: number, authority: string, path = "/"): Promise<RawResponse> {
  return throughProxy(proxyPort, absoluteGet(authority, path)).then((x) => x.r);
}

function post(proxyPort: number, authority: string, path = "/", body = "hello"): Promise<RawResponse> {
  return throughProxy(
    proxyPort,
    `POST http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  ).then((x) => x.r);
}

function connectReq(authority: string): string {
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
}

function postMode(adminPort: number, mode: string, token?: string): Promise<RawResponse> {
  return adminRequest(adminPort, "POST", "/mode", { body: JSON.stringify({ mode }), token, headers: { "content-type": "application/json" } });
}

/** `{"status":"error","error":…}` of an admin refusal. */
function errorOf(r: RawResponse): string {
  const body = JSON.parse(r.text) as { status?: string; error?: string };
  expect(body.status).toBe("error");
  expect(typeof body.error).toBe("string");
  return body.error!;
}

/** A timestamp in Unix seconds within the last 60 s (not milliseconds, not in the future). */
function expectRecentSeconds(ts: unknown): void {
  expect(typeof ts).toBe("number");
  const now = Date.now() / 1000;
  expect(ts as number).toBeGreaterThanOrEqual(Math.floor(now) - 60);
  expect(ts as number).toBeLessThanOrEqual(Math.ceil(now) + 1);
}

// ---------------------------------------------------------------------------------------------
// Cases 1, 2, 3, 6: one proxy with SOCKS5, allowlist 127.0.0.1, denylist denied.example.
// ---------------------------------------------------------------------------------------------
describe("admin API on a running proxy", () => {
  let proxy: ProxyProcess & { adminPort: number };
  const configLines = {
    admin_url: "127.0.0.1:0",
    enable_socks5: true,
    socks_url: "127.0.0.1:0",
    allowed_domains: ["127.0.0.1"],
    denied_domains: ["denied.example"],
  };

  beforeAll(async () => {
    proxy = await startWithAdmin(networkConfig(configLines));
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  describe("endpoints (case 1)", () => {
    it("GET /health → 200 `ok`", async () => {
      const r = await adminRequest(proxy.adminPort, "GET", "/health");
      expect(r.status).toBe(200);
      expect(r.text).toBe("ok");
    });

    it("GET /config → every §1 key with the values in force", async () => {
      const r = await adminRequest(proxy.adminPort, "GET", "/config");
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
      const { network } = JSON.parse(r.text) as ConfigView;
      expect(Object.keys(network)).toEqual(expect.arrayContaining([...SECTION1_KEYS]));
      expect(network).toMatchObject({
        enabled: true,
        proxy_url: "http://127.0.0.1:0",
        admin_url: "127.0.0.1:0",
        enable_socks5: true,
        socks_url: "127.0.0.1:0",
        enable_socks5_udp: false,
        allow_upstream_proxy: false,
        dangerously_allow_non_loopback_proxy: false,
        dangerously_allow_non_loopback_admin: false,
        mode: "full",
        allowed_domains: ["127.0.0.1"],
        denied_domains: ["denied.example"],
        allow_local_binding: false,
        allow_unix_sockets: [],
        admin_token: null,
      });
    });

    it("GET /patterns → the allow and deny lists", async () => {
      const r = await adminRequest(proxy.adminPort, "GET", "/patterns");
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text)).toEqual({ allowed: ["127.0.0.1"], denied: ["denied.example"] });
    });

    it.each([
      ["GET", "/nope"],
      ["GET", "/config/extra"],
      ["POST", "/health"],
      ["GET", "/mode"],
      ["DELETE", "/blocked"],
    ])("%s %s → 404 `not found`", async (method, path) => {
      const r = await adminRequest(proxy.adminPort, method, path);
      expect(r.status).toBe(404);
      expect(r.text).toBe("not found");
    });
  });

  describe("POST /mode (case 3)", () => {
    const target = () => `127.0.0.1:${origin.port}`;

    it("limited → 200; POST through the proxy is then 403 blocked-by-method-policy, GET 200; full → POST works again", async () => {
      try {
        const set = await postMode(proxy.adminPort, "limited");
        expect(set.status, set.text).toBe(200);
        expect(JSON.parse(set.text)).toEqual({ status: "ok", mode: "limited" });
        expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("limited");

        const before = origin.requests.length;
        expectBlockedJson(await post(proxy.port, target(), "/mode-post"), blockedBody("127.0.0.1", "method_not_allowed", origin.port));
        expect(origin.requests.length).toBe(before);
        const g = await get(proxy.port, target(), "/mode-get");
        expect(g.status).toBe(200);
        expect((JSON.parse(g.text) as EchoReply).url).toBe("/mode-get");
      } finally {
        const back = await postMode(proxy.adminPort, "full");
        expect(back.status, back.text).toBe(200);
        expect(JSON.parse(back.text)).toEqual({ status: "ok", mode: "full" });
      }
      const p = await post(proxy.port, target(), "/mode-post-again", "payload");
      expect(p.status).toBe(200);
      const echo = JSON.parse(p.text) as EchoReply;
      expect(echo.method).toBe("POST");
      expect(echo.bodyLength).toBe(7);
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("full");
    });

    it.each([
      ["not JSON", "{mode:"],
      ["empty body", ""],
      ["a JSON array", '["limited"]'],
      ["no mode", '{"other":"limited"}'],
      ["an unknown mode", '{"mode":"fast"}'],
      ["a non-string mode", '{"mode":1}'],
      ["a wrong-case mode", '{"mode":"LIMITED"}'],
    ])("%s → 400, mode unchanged", async (_what, body) => {
      const r = await adminRequest(proxy.adminPort, "POST", "/mode", { body, headers: { "content-type": "application/json" } });
      expect(r.status, r.text).toBe(400);
      errorOf(r);
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("full");
    });

    it("a body over 8 KiB (Content-Length) → 413, mode unchanged", async () => {
      const body = JSON.stringify({ mode: "limited", pad: "x".repeat(9000) });
      const r = await adminRequest(proxy.adminPort, "POST", "/mode", { body, headers: { "content-type": "application/json" } });
      expect(r.status, r.text).toBe(413);
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("full");
    });

    it("a chunked body over 8 KiB → 413, mode unchanged", async () => {
      const body = JSON.stringify({ mode: "limited", pad: "x".repeat(9000) });
      const c = await RawClient.connect(proxy.adminPort);
      try {
        const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
        const head = `POST /mode HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
        await c.write(head + chunk(body.slice(0, 4000)) + chunk(body.slice(4000)) + "0\r\n\r\n").catch(() => undefined);
        const r = await c.readResponse({ timeoutMs: 5_000 });
        expect(r.status, r.text).toBe(413);
      } finally {
        c.destroy();
      }
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("full");
    });

    it("a body of exactly 8 KiB is accepted", async () => {
      const prefix = '{"mode":"full","pad":"';
      const body = prefix + "x".repeat(8192 - prefix.length - 2) + '"}';
      expect(Buffer.byteLength(body)).toBe(8192);
      const r = await adminRequest(proxy.adminPort, "POST", "/mode", { body, headers: { "content-type": "application/json" } });
      expect(r.status, r.text).toBe(200);
      expect(JSON.parse(r.text)).toEqual({ status: "ok", mode: "full" });
    });
  });

  describe("GET /blocked (case 2)", () => {
    it("records every kind of refusal with the right fields, newest last, and reading does not clear it", async () => {
      const start = (await adminJson<{ blocked: BlockedEntry[] }>(proxy.adminPort, "/blocked")).blocked.length;
      const expected: Partial<BlockedEntry>[] = [];
      const base = { decision: "deny", mode: "full", protocol: "http" };

      // not allowlisted
      let x = await throughProxy(proxy.port, absoluteGet("not-listed.invalid", "/a"));
      expectBlockedJson(x.r, blockedBody("not-listed.invalid", "not_allowed", 80));
      expected.push({ ...base, host: "not-listed.invalid", reason: "not_allowed", source: "baseline_policy", method: "GET", port: 80, client: `127.0.0.1:${x.localPort}` });

      // denied
      x = await throughProxy(proxy.port, absoluteGet("denied.example:8080", "/b"));
      expectBlockedJson(x.r, blockedBody("denied.example", "denied", 8080));
      expected.push({ ...base, host: "denied.example", reason: "denied", source: "baseline_policy", method: "GET", port: 8080, client: `127.0.0.1:${x.localPort}` });

      // local literal not in the allowlist
      x = await throughProxy(proxy.port, absoluteGet(`localhost:${origin.port}`, "/c"));
      expectBlockedJson(x.r, blockedBody("localhost", "not_allowed_local", origin.port));
      expected.push({ ...base, host: "localhost", reason: "not_allowed_local", source: "baseline_policy", method: "GET", port: origin.port, client: `127.0.0.1:${x.localPort}` });

      // limited-mode POST
      expect((await postMode(proxy.adminPort, "limited")).status).toBe(200);
      try {
        x = await throughProxy(proxy.port, `POST http://127.0.0.1:${origin.port}/d HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nContent-Length: 2\r\n\r\nhi`);
        expectBlockedJson(x.r, blockedBody("127.0.0.1", "method_not_allowed", origin.port));
        expected.push({
          ...base,
          mode: "limited",
          host: "127.0.0.1",
          reason: "method_not_allowed",
          source: "mode_guard",
          method: "POST",
          port: origin.port,
          client: `127.0.0.1:${x.localPort}`,
        });
      } finally {
        expect((await postMode(proxy.adminPort, "full")).status).toBe(200);
      }

      // CONNECT refused
      x = await throughProxy(proxy.port, connectReq("denied.example:443"), { connect: true });
      expectBlockedConnect(x.r, "denied");
      expected.push({ ...base, protocol: "https_connect", host: "denied.example", reason: "denied", source: "baseline_policy", method: "CONNECT", port: 443, client: `127.0.0.1:${x.localPort}` });

      // SOCKS5 refusal
      const s = await socksOpen(proxy.socksPort!, SOCKS_CMD.CONNECT, "denied.example", 443);
      const socksLocal = s.client.socket.localPort!;
      s.client.destroy();
      expect(s.reply.rep).toBe(SOCKS_REP.NOT_ALLOWED);
      expected.push({ ...base, protocol: "socks5_tcp", host: "denied.example", reason: "denied", source: "baseline_policy", method: null, port: 443, client: `127.0.0.1:${socksLocal}` });

      const first = await adminRequest(proxy.adminPort, "GET", "/blocked");
      expect(first.status).toBe(200);
      expect(first.headers["content-type"]).toMatch(/^application\/json\b/);
      const entries = (JSON.parse(first.text) as { blocked: BlockedEntry[] }).blocked;
      const mine = entries.slice(start);
      expect(mine).toHaveLength(expected.length);
      for (let i = 0; i < expected.length; i++) {
        const e = mine[i]!;
        expect(Object.keys(e).sort(), JSON.stringify(e)).toEqual(
          ["client", "decision", "host", "method", "mode", "port", "protocol", "reason", "source", "timestamp"],
        );
        expect(e, `entry ${i}`).toMatchObject(expected[i]!);
        expectRecentSeconds(e.timestamp);
      }
      // newest last: timestamps never decrease
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.timestamp).toBeGreaterThanOrEqual(mine[i - 1]!.timestamp);

      const again = await adminJson<{ blocked: BlockedEntry[] }>(proxy.adminPort, "/blocked");
      expect(again.blocked).toEqual(entries);
    });
  });

  describe("the proxy never forwards to its own admin listener (case 6)", () => {
    it("GET http://127.0.0.1:<adminPort>/config through the proxy → 403 proxy_loop blocked-by-policy", async () => {
      const { r, localPort } = await throughProxy(proxy.port, absoluteGet(`127.0.0.1:${proxy.adminPort}`, "/config"));
      expect(r.status, r.text).toBe(403);
      expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
      expect(r.headers["x-proxy-error"]).toBe("blocked-by-policy");
      expect(JSON.parse(r.text)).toEqual({
        status: "blocked",
        host: "127.0.0.1",
        reason: "proxy_loop",
        decision: "deny",
        source: "proxy_state",
        protocol: "http",
        port: proxy.adminPort,
        message: POLICY_MESSAGE,
      });
      const last = (await adminJson<{ blocked: BlockedEntry[] }>(proxy.adminPort, "/blocked")).blocked.at(-1);
      expect(last).toMatchObject({ host: "127.0.0.1", reason: "proxy_loop", port: proxy.adminPort, method: "GET", client: `127.0.0.1:${localPort}` });
    });

    it("POST /mode through the proxy does not reach the admin API", async () => {
      const body = '{"mode":"limited"}';
      const { r } = await throughProxy(
        proxy.port,
        `POST http://127.0.0.1:${proxy.adminPort}/mode HTTP/1.1\r\nHost: 127.0.0.1:${proxy.adminPort}\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      expect(r.status).toBe(403);
      expect(JSON.parse(r.text)).toMatchObject({ reason: "proxy_loop" });
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("full");
    });

    it("CONNECT 127.0.0.1:<adminPort> → 403 text/plain proxy_loop", async () => {
      const { r } = await throughProxy(proxy.port, connectReq(`127.0.0.1:${proxy.adminPort}`), { connect: true });
      expect(r.status, r.text).toBe(403);
      expect(r.headers["content-type"]).toMatch(/^text\/plain\b/);
      expect(r.headers["x-proxy-error"]).toBe("blocked-by-policy");
      expect(r.text).toBe(POLICY_MESSAGE);
      const last = (await adminJson<{ blocked: BlockedEntry[] }>(proxy.adminPort, "/blocked")).blocked.at(-1);
      expect(last).toMatchObject({ reason: "proxy_loop", protocol: "https_connect", method: "CONNECT", port: proxy.adminPort });
    });

    it("SOCKS5 CONNECT 127.0.0.1:<adminPort> → refused by ruleset (0x02)", async () => {
      const s = await socksOpen(proxy.socksPort!, SOCKS_CMD.CONNECT, "127.0.0.1", proxy.adminPort);
      s.client.destroy();
      expect(s.reply.rep).toBe(SOCKS_REP.NOT_ALLOWED);
      const last = (await adminJson<{ blocked: BlockedEntry[] }>(proxy.adminPort, "/blocked")).blocked.at(-1);
      expect(last).toMatchObject({ reason: "proxy_loop", protocol: "socks5_tcp", method: null, port: proxy.adminPort });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Web pages cannot drive the admin API (CSRF, DNS rebinding); curl still can.
// ---------------------------------------------------------------------------------------------
describe("browser guard: no cross-site requests, no DNS rebinding; the README's curl commands work", () => {
  let proxy: ProxyProcess & { adminPort: number };
  /** What a cross-site HTML form sends: no preflight is needed for `text/plain`. */
  const FORM_HEADERS = { "content-type": "text/plain", origin: "http://evil.example", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" };
  const LIMITED = '{"mode":"limited"}';

  const modeNow = async () => (await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode;
  const adminUrl = (path: string) => `http://127.0.0.1:${proxy.adminPort}${path}`;
  const accessControl = (r: RawResponse) => Object.keys(r.headers).filter((k) => k.toLowerCase().startsWith("access-control-"));

  beforeAll(async () => {
    proxy = await startWithAdmin(networkConfig({ admin_url: "127.0.0.1:0", allowed_domains: ["127.0.0.1"] }));
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it("a cross-site text/plain form POST to /mode → 403 naming the Origin, mode unchanged", async () => {
    expect(await modeNow()).toBe("full");
    const r = await adminRequest(proxy.adminPort, "POST", "/mode", { body: LIMITED, headers: { "content-type": "text/plain", origin: "http://evil.example" } });
    expect(r.status, r.text).toBe(403);
    expect(errorOf(r)).toContain('Origin "http://evil.example"');
    expect(accessControl(r)).toEqual([]);
    const browserLike = await adminRequest(proxy.adminPort, "POST", "/mode", { body: LIMITED, headers: FORM_HEADERS });
    expect(browserLike.status, browserLike.text).toBe(403);
    expect(await modeNow()).toBe("full");
  });

  it("a JSON POST to /mode with a foreign Origin → 403, mode unchanged", async () => {
    const r = await adminRequest(proxy.adminPort, "POST", "/mode", {
      body: LIMITED,
      headers: { "content-type": "application/json", origin: "http://localhost:3000" },
    });
    expect(r.status, r.text).toBe(403);
    expect(errorOf(r)).toContain('"http://localhost:3000"');
    expect(await modeNow()).toBe("full");
  });

  it("a foreign Host (DNS rebinding) → 403 on GET /config, GET /blocked, GET /health and POST /mode; mode unchanged", async () => {
    const host = `evil.example:${proxy.adminPort}`;
    for (const path of ["/config", "/blocked", "/health"]) {
      const r = await adminRequest(proxy.adminPort, "GET", path, { host });
      expect(r.status, `${path}: ${r.text}`).toBe(403);
      expect(errorOf(r)).toContain(`Host "${host}" is not this admin API's address`);
      expect(r.text).not.toContain("allowed_domains");
    }
    const m = await adminRequest(proxy.adminPort, "POST", "/mode", {
      host,
      body: LIMITED,
      headers: { "content-type": "application/json", origin: `http://${host}`, "sec-fetch-site": "same-origin" },
    });
    expect(m.status, m.text).toBe(403);
    expect(await modeNow()).toBe("full");
    expect(proxy.stderr()).toMatch(/WARN.*admin POST \/mode refused: Host "evil\.example:\d+"/i);
  });

  it("no Host at all → refused (by the runtime's HTTP server or the guard), mode unchanged", async () => {
    const r = await adminRequest(proxy.adminPort, "POST", "/mode", { host: null, body: LIMITED, headers: { "content-type": "application/json" } });
    expect([400, 403], r.text).toContain(r.status);
    expect(await modeNow()).toBe("full");
  });

  it("Sec-Fetch-Site: cross-site or same-site → 403", async () => {
    for (const site of ["cross-site", "same-site"]) {
      const r = await adminRequest(proxy.adminPort, "POST", "/mode", { body: LIMITED, headers: { "content-type": "application/json", "sec-fetch-site": site } });
      expect(r.status, r.text).toBe(403);
      expect(errorOf(r)).toContain(`Sec-Fetch-Site "${site}"`);
      const g = await adminRequest(proxy.adminPort, "GET", "/config", { headers: { "sec-fetch-site": site } });
      expect(g.status, g.text).toBe(403);
    }
    expect(await modeNow()).toBe("full");
  });

  it("a CORS preflight never succeeds and no answer carries access-control-* headers", async () => {
    const pre = await adminRequest(proxy.adminPort, "OPTIONS", "/mode", {
      headers: { origin: "http://evil.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(pre.status, pre.text).toBe(403);
    expect(accessControl(pre)).toEqual([]);
    const ok = await adminRequest(proxy.adminPort, "GET", "/config");
    expect(ok.status).toBe(200);
    expect(accessControl(ok)).toEqual([]);
  });

  it("loopback Hosts in other spellings are served: localhost, [::1], 127.1", async () => {
    for (const host of [`localhost:${proxy.adminPort}`, `[::1]:${proxy.adminPort}`, `127.1:${proxy.adminPort}`, "127.0.0.1"]) {
      const r = await adminRequest(proxy.adminPort, "GET", "/health", { host });
      expect(r.status, `${host}: ${r.text}`).toBe(200);
    }
    const own = await adminRequest(proxy.adminPort, "GET", "/config", { headers: { origin: `http://127.0.0.1:${proxy.adminPort}`, "sec-fetch-site": "same-origin" } });
    expect(own.status, own.text).toBe(200);
  });

  it("the README's curl commands work: GET /health /config /patterns /blocked, POST /mode -d …, POST /reload", async () => {
    const health = await curlHttp([adminUrl("/health")]);
    expect(health.code, health.stderr).toBe(0);
    expect(health.status).toBe(200);
    expect(health.text).toBe("ok");
    for (const path of ["/config", "/patterns", "/blocked"]) {
      const r = await curlHttp([adminUrl(path)]);
      expect(r.status, `${path}: ${r.text}`).toBe(200);
      expect(() => JSON.parse(r.text)).not.toThrow();
    }

    const set = await curl(["-X", "POST", adminUrl("/mode"), "-d", LIMITED]);
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout.toString("utf8"))).toEqual({ status: "ok", mode: "limited" });
    expect(await modeNow()).toBe("limited");

    const reload = await curl(["-X", "POST", adminUrl("/reload")]);
    expect(reload.code, reload.stderr).toBe(0);
    expect(JSON.parse(reload.stdout.toString("utf8"))).toEqual({ status: "reloaded" });
    expect(await modeNow()).toBe("full"); // a reload ends a mode set by POST /mode
  });
});

// ---------------------------------------------------------------------------------------------
// Cases 4 and 9: POST /reload, the file watcher, broken files, reload to enabled = false.
// ---------------------------------------------------------------------------------------------
describe("live config: POST /reload and the file watcher (cases 4, 9)", () => {
  let proxy: ProxyProcess & { adminPort: number };
  /** The config file's mtime at startup: rewriting with it keeps the watcher quiet. */
  let quietMtime: number;
  const cfg = (lines: Record<string, unknown>) => networkConfig({ admin_url: "127.0.0.1:0", ...lines });
  const ip = () => `127.0.0.1:${origin.port}`;
  const lh = () => `localhost:${origin.port}`;
  /** Rewrite the config without changing its mtime (only POST /reload can pick it up). */
  const rewriteQuietly = (text: string) => replaceFileWithMtime(proxy.configPath, text, quietMtime);
  const reload = () => adminRequest(proxy.adminPort, "POST", "/reload");

  async function expectIpAllowed(): Promise<void> {
    const a = await get(proxy.port, ip(), "/ip");
    expect(a.status, a.text).toBe(200);
    expectBlockedJson(await get(proxy.port, lh(), "/lh"), blockedBody("localhost", "not_allowed_local", origin.port));
  }
  async function expectLocalhostAllowed(): Promise<void> {
    expectBlockedJson(await get(proxy.port, ip(), "/ip"), blockedBody("127.0.0.1", "not_allowed_local", origin.port));
    const b = await get(proxy.port, lh(), "/lh");
    expect(b.status, b.text).toBe(200);
    expect((JSON.parse(b.text) as EchoReply).url).toBe("/lh");
  }

  beforeAll(async () => {
    proxy = await startWithAdmin(cfg({ allowed_domains: ["127.0.0.1"] }));
    quietMtime = mtimeOf(proxy.configPath);
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it("an edited file + POST /reload → 200 {status: reloaded}; the next request uses the new list", async () => {
    await expectIpAllowed();
    rewriteQuietly(cfg({ allowed_domains: ["localhost"] }));
    const r = await reload();
    expect(r.status, r.text).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ status: "reloaded" });
    await expectLocalhostAllowed();
    expect(await adminJson(proxy.adminPort, "/patterns")).toEqual({ allowed: ["localhost"], denied: [] });
    expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.allowed_domains).toEqual(["localhost"]);
  });

  it("a mode set by POST /mode lasts until the next reload", async () => {
    expect((await postMode(proxy.adminPort, "limited")).status).toBe(200);
    expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("limited");
    const r = await reload();
    expect(r.status, r.text).toBe(200);
    expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("full");
  });

  it("a TOML syntax error → POST /reload 500 with the reason; the previous policy still applies", async () => {
    rewriteQuietly('[network\nenabled = true\nallowed_domains = ["127.0.0.1"]\n');
    const r = await reload();
    expect(r.status, r.text).toBe(500);
    expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
    const why = errorOf(r);
    expect(why).toMatch(/failed to parse/);
    expect(why).toContain(proxy.configPath);
    await expectLocalhostAllowed();
    expect(await adminJson(proxy.adminPort, "/patterns")).toEqual({ allowed: ["localhost"], denied: [] });
  });

  it("an invalid domain pattern → POST /reload 500 naming it; the previous policy still applies", async () => {
    rewriteQuietly(cfg({ allowed_domains: ["localhost", "127.0.0.1", "bad[pattern"] }));
    const r = await reload();
    expect(r.status, r.text).toBe(500);
    const why = errorOf(r);
    expect(why).toContain("bad[pattern");
    expect(why).toContain("network.allowed_domains");
    await expectLocalhostAllowed();
    expect(await adminJson(proxy.adminPort, "/patterns")).toEqual({ allowed: ["localhost"], denied: [] });
  });

  it("without POST /reload, an edit with a new mtime is picked up by the watcher", async () => {
    replaceFileWithMtime(proxy.configPath, cfg({ allowed_domains: ["127.0.0.1"] }), quietMtime - 3_600_000);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const r = await get(proxy.port, ip(), "/watch");
      if (r.status === 200) break;
      expect(r.status, r.text).toBe(403);
      if (Date.now() > deadline) throw new Error("timed out after 5000 ms: the watcher did not apply the edited config");
      await new Promise((res) => setTimeout(res, 100));
    }
    await expectIpAllowed();
    expect(await adminJson(proxy.adminPort, "/patterns")).toEqual({ allowed: ["127.0.0.1"], denied: [] });
  });

  it("a reload to enabled = false keeps listening and refuses with proxy_disabled (case 9)", async () => {
    rewriteQuietly(cfg({ enabled: false, allowed_domains: ["127.0.0.1"] }));
    const r = await reload();
    expect(r.status, r.text).toBe(200);
    expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.enabled).toBe(false);

    const before = origin.requests.length;
    const { r: g, localPort } = await throughProxy(proxy.port, absoluteGet(ip(), "/disabled"));
    expect(g.status, g.text).toBe(403);
    expect(g.headers["content-type"]).toMatch(/^application\/json\b/);
    expect(g.headers["x-proxy-error"]).toBe("blocked-by-policy");
    expect(JSON.parse(g.text)).toEqual({
      status: "blocked",
      host: "127.0.0.1",
      reason: "proxy_disabled",
      decision: "deny",
      source: "proxy_state",
      protocol: "http",
      port: origin.port,
      message: POLICY_MESSAGE,
    });
    const c = await throughProxy(proxy.port, connectReq(ip()), { connect: true });
    expect(c.r.status).toBe(403);
    expect(c.r.headers["x-proxy-error"]).toBe("blocked-by-policy");
    expect(c.r.text).toBe(POLICY_MESSAGE);
    expect(origin.requests.length).toBe(before);
    const last = (await adminJson<{ blocked: BlockedEntry[] }>(proxy.adminPort, "/blocked")).blocked.slice(-2);
    expect(last[0]).toMatchObject({ reason: "proxy_disabled", source: "proxy_state", method: "GET", client: `127.0.0.1:${localPort}` });
    expect(last[1]).toMatchObject({ reason: "proxy_disabled", source: "proxy_state", method: "CONNECT", protocol: "https_connect" });

    const h = await adminRequest(proxy.adminPort, "GET", "/health");
    expect(h.status).toBe(200);

    // and back on without a restart
    rewriteQuietly(cfg({ allowed_domains: ["127.0.0.1"] }));
    expect((await reload()).status).toBe(200);
    const a = await get(proxy.port, ip(), "/enabled-again");
    expect(a.status, a.text).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------
// Case 5: the admin token, from the config file and from the environment.
// ---------------------------------------------------------------------------------------------
const TOKEN_CASES = [
  { name: "admin_token in the config", token: "s3cret-token", lines: { admin_token: "s3cret-token" }, env: {} },
  { name: "CODEX_NETWORK_PROXY_ADMIN_TOKEN", token: "env-s3cret-t0ken", lines: {}, env: { CODEX_NETWORK_PROXY_ADMIN_TOKEN: "env-s3cret-t0ken" } },
] as const;

describe.each(TOKEN_CASES)("admin token: $name (case 5)", ({ token, lines, env }) => {
  let proxy: ProxyProcess & { adminPort: number };

  beforeAll(async () => {
    proxy = await startWithAdmin(networkConfig({ admin_url: "127.0.0.1:0", allowed_domains: ["127.0.0.1"], ...lines }), {
      env: { CODEX_NETWORK_PROXY_ADMIN_TOKEN: undefined, ...env },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it("GET /health needs no token", async () => {
    const r = await adminRequest(proxy.adminPort, "GET", "/health");
    expect(r.status).toBe(200);
    expect(r.text).toBe("ok");
  });

  const protectedRequests: [string, string, string | undefined][] = [
    ["GET", "/config", undefined],
    ["GET", "/blocked", undefined],
    ["GET", "/patterns", undefined],
    ["POST", "/mode", '{"mode":"full"}'],
    ["POST", "/reload", undefined],
  ];

  it.each(protectedRequests)("%s %s without a token, with a wrong one or a wrong scheme → 401", async (method, path, body) => {
    const variants: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong-token" },
      { authorization: `Bearer ${token}x` },
      { authorization: `Bearer ${token.slice(0, -1)}` },
      { authorization: "Bearer " },
      { authorization: token },
      { authorization: `Basic ${Buffer.from(`admin:${token}`).toString("base64")}` },
    ];
    for (const headers of variants) {
      const r = await adminRequest(proxy.adminPort, method, path, { body, headers });
      expect(r.status, `${JSON.stringify(headers)}: ${r.text}`).toBe(401);
      expect(r.headers["www-authenticate"]).toMatch(/^Bearer\b/);
      expect(r.text).not.toContain(token);
    }
  });

  it.each(protectedRequests)("%s %s with `Authorization: Bearer <token>` → 200", async (method, path, body) => {
    const r = await adminRequest(proxy.adminPort, method, path, { body, token });
    expect(r.status, r.text).toBe(200);
  });

  it("POST /mode with the token changes the mode", async () => {
    expect((await postMode(proxy.adminPort, "limited", token)).status).toBe(200);
    expect((await adminJson<ConfigView>(proxy.adminPort, "/config", token)).network.mode).toBe("limited");
    expect((await postMode(proxy.adminPort, "limited")).status).toBe(401);
    expect((await postMode(proxy.adminPort, "full", token)).status).toBe(200);
    expect((await adminJson<ConfigView>(proxy.adminPort, "/config", token)).network.mode).toBe("full");
  });

  it("an unknown path without the token is 401 too (nothing revealed)", async () => {
    expect((await adminRequest(proxy.adminPort, "GET", "/nope")).status).toBe(401);
    const r = await adminRequest(proxy.adminPort, "GET", "/nope", { token });
    expect(r.status).toBe(404);
    expect(r.text).toBe("not found");
  });

  it("the token never appears in GET /config", async () => {
    const r = await adminRequest(proxy.adminPort, "GET", "/config", { token });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(token);
    const { network } = JSON.parse(r.text) as ConfigView;
    expect(Object.keys(network)).toEqual(expect.arrayContaining([...SECTION1_KEYS]));
    expect(network.admin_token).toBe("<redacted>");
  });

  it("the token never appears in the proxy's stderr", () => {
    expect(proxy.stderr()).not.toContain(token);
    expect(proxy.stdout()).not.toContain(token);
  });
});

describe("admin token in a broken config file (case 5)", () => {
  const token = "s3cret-token";
  let proxy: ProxyProcess & { adminPort: number };

  beforeAll(async () => {
    proxy = await startWithAdmin(networkConfig({ admin_url: "127.0.0.1:0", allowed_domains: ["127.0.0.1"], admin_token: token }), {
      env: { CODEX_NETWORK_PROXY_ADMIN_TOKEN: undefined },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  /** An unterminated string on the token line: the TOML error quotes that line. */
  const broken = `[network]\nenabled = true\nproxy_url = "http://127.0.0.1:0"\nadmin_url = "127.0.0.1:0"\nadmin_token = "${token}\nallowed_domains = ["127.0.0.1"]\n`;

  it("POST /reload of a file whose TOML error quotes the token line → 500 without the token; old token and policy kept", async () => {
    // Same mtime: only POST /reload reads it (the watcher gets its turn in the next test).
    replaceFileWithMtime(proxy.configPath, broken, mtimeOf(proxy.configPath));
    const r = await adminRequest(proxy.adminPort, "POST", "/reload", { token });
    expect(r.status, r.text).toBe(500);
    expect(errorOf(r)).toMatch(/failed to parse/);
    expect(r.text).not.toContain(token);
    expect((await adminRequest(proxy.adminPort, "GET", "/config", { token })).status).toBe(200);
    expect((await adminRequest(proxy.adminPort, "GET", "/config")).status).toBe(401);
    expect((await get(proxy.port, `127.0.0.1:${origin.port}`, "/still")).status).toBe(200);
  });

  it("the watcher's failed reload of that file does not log the token", async () => {
    replaceFileWithMtime(proxy.configPath, broken, mtimeOf(proxy.configPath) + 7_000);
    await pollUntil(() => /previous configuration stays in force/.test(proxy.stderr()), 5_000, `the watcher's failed reload in stderr:\n${proxy.stderr()}`);
    expect(proxy.stderr()).not.toContain(token);
  });

  it("a startup error quoting the token line does not print it", async () => {
    const dir = makeTempDir("cnp-e2e-token-");
    try {
      const path = join(dir.dir, "config.toml");
      writeFileSync(path, broken);
      const r = await runCli(["--config", path], { env: { CODEX_NETWORK_PROXY_ADMIN_TOKEN: undefined }, timeoutMs: 10_000 });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/failed to parse/);
      expect(r.stderr).not.toContain(token);
      expect(r.stdout).not.toContain(token);
    } finally {
      dir.remove();
    }
  });
});

describe("an admin token that no request could present is a startup error (RFC 6750 §2.1)", () => {
  const SECRET = "pass word";

  it("in the config: exit 2 naming network.admin_token and its line, not the token", async () => {
    const dir = makeTempDir("cnp-e2e-token-");
    try {
      const path = join(dir.dir, "config.toml");
      writeFileSync(path, `[network]\nenabled = true\n\nadmin_token = "${SECRET}"\n`);
      const r = await runCli(["--config", path], { env: { CODEX_NETWORK_PROXY_ADMIN_TOKEN: undefined }, timeoutMs: 10_000 });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${path}:4: network.admin_token: is not a bearer token: it holds whitespace (a space, tab or line break)`);
      expect(r.stderr + r.stdout).not.toContain(SECRET);
    } finally {
      dir.remove();
    }
  });

  it("in CODEX_NETWORK_PROXY_ADMIN_TOKEN (a trailing newline): exit 2 naming the variable, not the token", async () => {
    const dir = makeTempDir("cnp-e2e-token-");
    try {
      const path = join(dir.dir, "config.toml");
      writeFileSync(path, `[network]\nenabled = true\n`);
      const r = await runCli(["--config", path], { env: { CODEX_NETWORK_PROXY_ADMIN_TOKEN: "tok-from-file\n" }, timeoutMs: 10_000 });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("CODEX_NETWORK_PROXY_ADMIN_TOKEN is not a bearer token: it holds whitespace (a space, tab or line break)");
      expect(r.stderr + r.stdout).not.toContain("tok-from-file");
    } finally {
      dir.remove();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Case 7: a non-loopback admin bind address is clamped.
// ---------------------------------------------------------------------------------------------
describe("admin bind clamping (case 7)", () => {
  let proxy: ProxyProcess;

  beforeAll(async () => {
    proxy = await startProxy(networkConfig({ admin_url: "0.0.0.0:0", allowed_domains: ["127.0.0.1"] }), { readyTimeoutMs: 10_000 });
    await pollUntil(() => /admin API listening on \S+/.test(proxy.stderr()), 5_000, `admin listening line; stderr:\n${proxy.stderr()}`);
  });

  afterAll(async () => {
    await proxy?.stop();
  });

  it("warns naming network.admin_url and listens on 127.0.0.1 only", async () => {
    const err = proxy.stderr();
    expect(err).toMatch(/network\.admin_url/);
    expect(err).toMatch(/0\.0\.0\.0/);
    const m = /admin API listening on (\S+)/.exec(err)!;
    const addr = m[1]!;
    expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
    const port = Number(addr.split(":")[1]);
    expect(port).toBeGreaterThan(0);
    const h = await adminRequest(port, "GET", "/health");
    expect(h.status).toBe(200);
    // another loopback address reaches a 0.0.0.0 bind, but not a 127.0.0.1 one
    const outcome = await withDeadline(
      new Promise<string>((resolve) => {
        const s = connect({ host: "127.0.0.2", port });
        s.once("connect", () => {
          s.destroy();
          resolve("connected");
        });
        s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      }),
      5_000,
      "connect to 127.0.0.2",
    );
    expect(outcome).toBe("ECONNREFUSED");
  });
});

// ---------------------------------------------------------------------------------------------
// Case 8: --constraints FILE.
// ---------------------------------------------------------------------------------------------
describe("--constraints FILE (case 8)", () => {
  const CONSTRAINTS = '[network]\nmode = "limited"\nallowed_domains = ["**.example", "127.0.0.1"]\ndenied_domains = ["bad.example"]\n';
  const compliant = (over: Record<string, unknown> = {}) =>
    networkConfig({ admin_url: "127.0.0.1:0", mode: "limited", allowed_domains: ["127.0.0.1", "ok.example"], denied_domains: ["bad.example"], ...over });
  const tmp = makeTempDir("cnp-e2e-constraints-");
  const constraintsPath = join(tmp.dir, "constraints.toml");
  writeFileSync(constraintsPath, CONSTRAINTS);
  let proxy: ProxyProcess & { adminPort: number };

  afterAll(async () => {
    await proxy?.stop();
    tmp.remove();
  });

  it("startup: violations, an unknown constraint key and a missing file → exit 2 naming the field", async () => {
    const write = (name: string, text: string) => {
      const p = join(tmp.dir, name);
      writeFileSync(p, text);
      return p;
    };
    const cases = [
      { name: "mode full", config: write("full.toml", compliant({ mode: "full" })), constraints: constraintsPath, expect: [/network\.mode\b.*"full"/] },
      { name: "allowed *", config: write("star.toml", compliant({ allowed_domains: ["*"] })), constraints: constraintsPath, expect: [/network\.allowed_domains\b.*"\*"/] },
      { name: "denied entry missing", config: write("nodeny.toml", compliant({ denied_domains: [] })), constraints: constraintsPath, expect: [/network\.denied_domains\b.*"bad\.example"/] },
      {
        name: "unknown constraint key",
        config: write("ok1.toml", compliant()),
        constraints: write("unknown.toml", CONSTRAINTS + "bogus_limit = true\n"),
        expect: [/bogus_limit/],
      },
      { name: "missing constraints file", config: write("ok2.toml", compliant()), constraints: join(tmp.dir, "absent.toml"), expect: [/absent\.toml/] },
    ];
    const results = await Promise.all(cases.map((c) => runCli(["--config", c.config, "--constraints", c.constraints], { timeoutMs: 10_000 })));
    results.forEach((r, i) => {
      const c = cases[i]!;
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(2);
      for (const re of c.expect) expect(r.stderr, c.name).toMatch(re);
      expect(r.stderr, c.name).not.toMatch(/listening on/);
    });
  });

  describe("a compliant config", () => {
    beforeAll(async () => {
      proxy = await startWithAdmin(compliant(), { args: ["--constraints", constraintsPath] });
    });

    it("starts, in limited mode", async () => {
      const { network } = await adminJson<ConfigView>(proxy.adminPort, "/config");
      expect(network.mode).toBe("limited");
      expect(network.allowed_domains).toEqual(["127.0.0.1", "ok.example"]);
      const g = await get(proxy.port, `127.0.0.1:${origin.port}`, "/c-get");
      expect(g.status).toBe(200);
    });

    it("POST /mode full → 409, mode unchanged", async () => {
      const r = await postMode(proxy.adminPort, "full");
      expect(r.status, r.text).toBe(409);
      expect(errorOf(r)).toMatch(/mode/);
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("limited");
      expectBlockedJson(await post(proxy.port, `127.0.0.1:${origin.port}`, "/c-post"), blockedBody("127.0.0.1", "method_not_allowed", origin.port));
      const ok = await postMode(proxy.adminPort, "limited");
      expect(ok.status, ok.text).toBe(200);
    });

    it("a widened allowlist → POST /reload 500 naming it; the old policy still applies", async () => {
      const quiet = mtimeOf(proxy.configPath);
      replaceFileWithMtime(proxy.configPath, compliant({ allowed_domains: ["127.0.0.1", "ok.example", "other.invalid"] }), quiet);
      const r = await adminRequest(proxy.adminPort, "POST", "/reload");
      expect(r.status, r.text).toBe(500);
      const why = errorOf(r);
      expect(why).toContain("network.allowed_domains");
      expect(why).toContain("other.invalid");
      expect(await adminJson(proxy.adminPort, "/patterns")).toEqual({ allowed: ["127.0.0.1", "ok.example"], denied: ["bad.example"] });
      expectBlockedJson(await get(proxy.port, "other.invalid", "/"), blockedBody("other.invalid", "not_allowed", 80));
      expect((await get(proxy.port, `127.0.0.1:${origin.port}`, "/c-get2")).status).toBe(200);
    });

    it("a reload to mode full → 500 naming network.mode; still limited", async () => {
      const quiet = mtimeOf(proxy.configPath);
      replaceFileWithMtime(proxy.configPath, compliant({ mode: "full" }), quiet);
      const r = await adminRequest(proxy.adminPort, "POST", "/reload");
      expect(r.status, r.text).toBe(500);
      expect(errorOf(r)).toContain("network.mode");
      expect((await adminJson<ConfigView>(proxy.adminPort, "/config")).network.mode).toBe("limited");
      expectBlockedJson(await post(proxy.port, `127.0.0.1:${origin.port}`, "/c-post2"), blockedBody("127.0.0.1", "method_not_allowed", origin.port));
    });
  });
});
