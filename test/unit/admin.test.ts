/**
 * The admin API (docs/behaviour.md §7) through `app.request()`: every endpoint, status and error,
 * bearer-token protection, body limits, and mounting inside another Hono app. No sockets. Every
 * request is addressed to `localhost` (see `withLocalhost`).
 */
import { Hono } from "hono";
import { describe, expect, it, vi } from "vitest";
import { createAdminApp, type AdminOptions } from "../../src/core/admin/app.ts";
import { MAX_ADMIN_BODY_BYTES } from "../../src/core/admin/body.ts";
import { adminTokenFrom, ADMIN_TOKEN_ENV } from "../../src/core/admin/token.ts";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { checkConstraints, type NetworkConstraints } from "../../src/core/config/constraints.ts";
import { ConfigError, defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import type { Logger } from "../../src/core/log.ts";
import { ProxyState, StateChangeError, type ConfigSource } from "../../src/core/state.ts";

/** A token that must never show up in any response or log line. */
const TOKEN = "s3cret-admin-token-7f1c";
const ALLOWED = ["example.com", "*.github.com"];
const DENIED = ["evil.example.com"];

function config(overrides: Partial<NetworkConfig> = {}): NetworkConfig {
  return { ...defaultNetworkConfig(), enabled: true, allowed_domains: [...ALLOWED], denied_domains: [...DENIED], ...overrides };
}

function makeState(overrides: Partial<NetworkConfig> = {}, opts: { source?: ConfigSource; constraints?: NetworkConstraints } = {}): ProxyState {
  return new ProxyState(config(overrides), { resolve: async () => [] }, opts);
}

function captureLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: { enabled: () => true, log: (level, target, message) => lines.push(`${level} ${target} ${message}`) } };
}

/**
 * `a` with its `request()` sending `Host: localhost` (the host of the URL Hono builds from a bare
 * path), as every real HTTP/1.1 client does: such a Request carries no Host of its own, and the
 * browser guard refuses a request without one. A Host given by the test wins. The guard itself
 * is tested in admin-browser-guard.test.ts.
 */
function withLocalhost<T extends Hono>(a: T): T {
  const request = a.request;
  a.request = (input, init, ...rest) => {
    if (input instanceof Request) return request(input, init, ...rest);
    const headers = new Headers(init?.headers);
    if (!headers.has("host")) headers.set("host", "localhost");
    return request(input, { ...init, headers }, ...rest);
  };
  return a;
}

function app(state: ProxyState, options?: AdminOptions): Hono {
  return withLocalhost(createAdminApp(state, options));
}

function postMode(a: Hono, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(a.request("/mode", { method: "POST", body, headers: { "content-type": "application/json", ...headers } }));
}

function decision(overrides: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    timestamp: 1_700_000_000_123,
    scope: "domain_rule",
    decision: "deny",
    source: "baseline_policy",
    reason: "not_allowed",
    override: false,
    protocol: "http",
    host: "blocked.example",
    port: 80,
    method: "GET",
    client: "127.0.0.1:50000",
    mode: "full",
    ...overrides,
  };
}

/** A body stream without a declared length, `chunks` chunks of `size` bytes (endless when Infinity). */
function streamOf(chunks: number, size: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let n = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (n >= chunks) return controller.close();
      n++;
      controller.enqueue(new Uint8Array(size).fill(0x20));
    },
  });
  return { stream, pulled: () => n };
}

function streamedRequest(path: string, stream: ReadableStream<Uint8Array>, headers: Record<string, string> = {}): Request {
  return new Request(`http://localhost${path}`, { method: "POST", body: stream, headers: { host: "localhost", ...headers }, duplex: "half" } as RequestInit);
}

async function expectJsonError(res: Response, status: number, contains?: string): Promise<string> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  const body = (await res.json()) as { status: string; error: string };
  expect(body.status).toBe("error");
  expect(typeof body.error).toBe("string");
  if (contains !== undefined) expect(body.error).toContain(contains);
  return body.error;
}

describe("GET /health", () => {
  it("answers 200 ok as text", async () => {
    const res = await app(makeState()).request("/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe("ok");
  });
});

describe("GET /config", () => {
  it("reports every [network] key in force, admin_token null when unset", async () => {
    const res = await app(makeState({ allow_local_binding: true })).request("/config");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { network: Record<string, unknown> };
    expect(body.network).toEqual({ ...config({ allow_local_binding: true }), admin_token: null });
    expect(Object.keys(body.network).sort()).toEqual([...Object.keys(defaultNetworkConfig()), "admin_token"].sort());
  });

  it("redacts a configured admin_token and never shows its value", async () => {
    const res = await app(makeState({ admin_token: TOKEN }), { token: TOKEN }).request("/config", {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).not.toContain(TOKEN);
    expect((JSON.parse(text) as { network: { admin_token: unknown } }).network.admin_token).toBe("<redacted>");
  });

  it("shows <redacted> when the token came from outside the config (environment)", async () => {
    const res = await app(makeState(), { token: TOKEN }).request("/config", { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await res.text();
    expect(text).not.toContain(TOKEN);
    expect((JSON.parse(text) as { network: { admin_token: unknown } }).network.admin_token).toBe("<redacted>");
  });

  it("reflects a mode set through POST /mode", async () => {
    const a = app(makeState());
    expect((await postMode(a, '{"mode":"limited"}')).status).toBe(200);
    const body = (await (await a.request("/config")).json()) as { network: { mode: string } };
    expect(body.network.mode).toBe("limited");
  });
});

describe("GET /patterns", () => {
  it("lists the configured patterns as written", async () => {
    const res = await app(makeState()).request("/patterns");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ allowed: ALLOWED, denied: DENIED });
  });
});

describe("GET /blocked", () => {
  it("is empty at first", async () => {
    const res = await app(makeState()).request("/blocked");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ blocked: [] });
  });

  it("lists refusals newest last, skips allows, and is not cleared by reading", async () => {
    const state = makeState();
    state.record(decision({ host: "first.example" }));
    state.record(decision({ host: "allowed.example", decision: "allow", reason: "allowed" }));
    state.record(decision({ host: "second.example", protocol: "socks5_tcp", method: undefined, client: undefined, port: 443 }));
    const a = app(state);
    const first = await (await a.request("/blocked")).json();
    const second = await (await a.request("/blocked")).json();
    expect(second).toEqual(first);
    expect(first).toEqual({
      blocked: [
        {
          host: "first.example",
          reason: "not_allowed",
          client: "127.0.0.1:50000",
          method: "GET",
          mode: "full",
          protocol: "http",
          decision: "deny",
          source: "baseline_policy",
          port: 80,
          timestamp: 1_700_000_000,
        },
        {
          host: "second.example",
          reason: "not_allowed",
          client: null,
          method: null,
          mode: "full",
          protocol: "socks5_tcp",
          decision: "deny",
          source: "baseline_policy",
          port: 443,
          timestamp: 1_700_000_000,
        },
      ],
    });
  });
});

describe("POST /mode", () => {
  it("switches the mode: 200 {status:ok, mode} and the snapshot changes", async () => {
    const state = makeState();
    const a = app(state);
    const res = await postMode(a, '{"mode":"limited"}');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", mode: "limited" });
    expect(state.snapshot().mode).toBe("limited");
    const back = await postMode(a, '{"mode":"full"}');
    expect(await back.json()).toEqual({ status: "ok", mode: "full" });
    expect(state.snapshot().mode).toBe("full");
  });

  it.each([
    ["bad JSON", "{mode: limited", "invalid JSON"],
    ["empty body", "", "invalid JSON"],
    ["an array", '["limited"]', '["limited"]'],
    ["a string", '"limited"', '"limited"'],
    ["missing mode", '{"mod":"limited"}', 'missing "mode"'],
    ["an unknown mode", '{"mode":"bogus"}', '"bogus"'],
    ["a wrong-case mode", '{"mode":"LIMITED"}', '"LIMITED"'],
    ["a non-string mode", '{"mode":1}', "invalid mode 1"],
    ["a null mode", '{"mode":null}', "invalid mode null"],
  ])("refuses %s with 400 naming the bad value", async (_name, body, named) => {
    const state = makeState();
    const error = await expectJsonError(await postMode(app(state), body), 400, named);
    if (named.includes("mode")) expect(error).toMatch(/"full" or "limited"|JSON/);
    expect(state.snapshot().mode).toBe("full");
  });

  it("refuses a body that is not UTF-8 with 400", async () => {
    const res = await app(makeState()).request("/mode", { method: "POST", body: new Uint8Array([0x7b, 0xff, 0x7d]) });
    await expectJsonError(res, 400, "UTF-8");
  });

  it("accepts a body of exactly the limit", async () => {
    const json = '{"mode":"limited"}';
    const body = json + " ".repeat(MAX_ADMIN_BODY_BYTES - json.length);
    expect(new TextEncoder().encode(body).length).toBe(MAX_ADMIN_BODY_BYTES);
    const res = await postMode(app(makeState()), body);
    expect(res.status).toBe(200);
  });

  it("refuses a body over 8 KiB declared by Content-Length with 413", async () => {
    const state = makeState();
    const json = '{"mode":"limited"}';
    const body = json + " ".repeat(MAX_ADMIN_BODY_BYTES + 1 - json.length);
    const res = await postMode(app(state), body, { "content-length": String(body.length) });
    await expectJsonError(res, 413, String(MAX_ADMIN_BODY_BYTES));
    expect(state.snapshot().mode).toBe("full");
  });

  it("refuses on a declared Content-Length over the limit before reading", async () => {
    const { stream, pulled } = streamOf(1, 10);
    const res = await app(makeState()).request(streamedRequest("/mode", stream, { "content-length": "1000000" }));
    expect(res.status).toBe(413);
    expect(pulled()).toBeLessThanOrEqual(1);
  });

  it("refuses a streamed (chunked) body over 8 KiB with 413 while reading", async () => {
    const state = makeState();
    const { stream } = streamOf(10, 1024);
    const req = streamedRequest("/mode", stream);
    expect(req.headers.get("content-length")).toBeNull();
    await expectJsonError(await app(state).request(req), 413);
    expect(state.snapshot().mode).toBe("full");
  });

  it("stops reading an endless streamed body at the limit", async () => {
    const { stream, pulled } = streamOf(Number.POSITIVE_INFINITY, 1000);
    const res = await app(makeState()).request(streamedRequest("/mode", stream));
    expect(res.status).toBe(413);
    expect(pulled()).toBeLessThanOrEqual(Math.ceil(MAX_ADMIN_BODY_BYTES / 1000) + 2);
  });

  it("refuses a Content-Length that lies low (the counted bytes decide)", async () => {
    const { stream } = streamOf(10, 1024);
    const res = await app(makeState()).request(streamedRequest("/mode", stream, { "content-length": "20" }));
    expect(res.status).toBe(413);
  });

  it("accepts a small streamed body", async () => {
    const bytes = new TextEncoder().encode('{"mode":"limited"}');
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.slice(0, 5));
        c.enqueue(bytes.slice(5));
        c.close();
      },
    });
    const res = await app(makeState()).request(streamedRequest("/mode", stream));
    expect(await res.json()).toEqual({ status: "ok", mode: "limited" });
  });

  it("answers 409 with the reason when setMode is refused (StateChangeError) and nothing changes", async () => {
    const state = makeState({ mode: "limited" });
    const spy = vi.spyOn(state, "setMode").mockImplementation(() => {
      throw new StateChangeError('network.mode: "full" not allowed by constraints (limited)');
    });
    const error = await expectJsonError(await postMode(app(state), '{"mode":"full"}'), 409, "not allowed by constraints");
    expect(error).toContain("network.mode");
    expect(spy).toHaveBeenCalledWith("full");
    expect(state.snapshot().mode).toBe("limited");
  });

  const constraintsImplemented = checkConstraints(config({ mode: "full" }), { mode: "limited" }).length > 0;
  it.skipIf(!constraintsImplemented)("answers 409 for a mode the managed constraints forbid (real constraints)", async () => {
    const state = makeState({ mode: "limited" }, { constraints: { mode: "limited" } });
    const error = await expectJsonError(await postMode(app(state), '{"mode":"full"}'), 409);
    expect(error.length).toBeGreaterThan(0);
    expect(state.snapshot().mode).toBe("limited");
    const ok = await postMode(app(state), '{"mode":"limited"}');
    expect(ok.status).toBe(200);
  });

  it("lets a non-StateChangeError surface as a 500 without details", async () => {
    const state = makeState();
    vi.spyOn(state, "setMode").mockImplementation(() => {
      throw new Error(`boom ${TOKEN}`);
    });
    const res = await postMode(app(state, { token: TOKEN }), '{"mode":"full"}', { authorization: `Bearer ${TOKEN}` });
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(text).not.toContain(TOKEN);
  });
});

describe("POST /reload", () => {
  it("re-reads the source: 200 {status:reloaded} and the new patterns are in force", async () => {
    let next = config({ allowed_domains: ["new.example"], denied_domains: [] });
    const state = makeState({}, { source: () => next });
    const a = app(state);
    const res = await a.request("/reload", { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "reloaded" });
    expect(await (await a.request("/patterns")).json()).toEqual({ allowed: ["new.example"], denied: [] });
    next = config({ allowed_domains: ["newer.example"] });
    expect((await a.request("/reload", { method: "POST" })).status).toBe(200);
    expect(state.snapshot().network.allowed_domains).toEqual(["newer.example"]);
  });

  it("a reload ends a mode set by /mode", async () => {
    const state = makeState({}, { source: async () => config() });
    const a = app(state);
    await postMode(a, '{"mode":"limited"}');
    expect(state.snapshot().mode).toBe("limited");
    await a.request("/reload", { method: "POST" });
    expect(state.snapshot().mode).toBe("full");
  });

  it("answers 500 with the reason when the source fails, keeping the previous policy", async () => {
    const state = makeState({}, {
      source: async () => {
        throw new Error("failed to parse /tmp/config.toml: unexpected character at line 3");
      },
    });
    const before = state.snapshot();
    const a = app(state);
    await expectJsonError(await a.request("/reload", { method: "POST" }), 500, "failed to parse /tmp/config.toml");
    expect(state.snapshot()).toBe(before);
    expect(state.snapshot().policy).toBe(before.policy);
    expect(await (await a.request("/patterns")).json()).toEqual({ allowed: ALLOWED, denied: DENIED });
  });

  it("answers 500 when the new config is invalid, keeping the previous policy", async () => {
    const state = makeState({}, { source: () => config({ allowed_domains: ["bad[pattern"] }) });
    const before = state.snapshot();
    const res = await app(state).request("/reload", { method: "POST" });
    expect(res.status).toBe(500);
    expect(state.snapshot()).toBe(before);
  });

  it("scrubs the token from a reload failure message (TOML errors quote the line)", async () => {
    const { log, lines } = captureLogger();
    const state = makeState({ admin_token: TOKEN }, {
      source: async () => {
        throw new Error(`failed to parse config.toml: 4 | admin_token = "${TOKEN}" oops\n also ${TOKEN}`);
      },
    });
    const res = await app(state, { token: TOKEN, log }).request("/reload", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(text).not.toContain(TOKEN);
    expect(text).toContain("<redacted>");
    expect(lines.join("\n")).not.toContain(TOKEN);
    expect(lines.some((l) => l.includes("reload failed"))).toBe(true);
  });
});

describe("anything else", () => {
  it.each([
    ["POST", "/"],
    ["GET", "/nope"],
    ["GET", "/health/extra"],
    ["POST", "/health"],
    ["GET", "/mode"],
    ["GET", "/reload"],
    ["DELETE", "/config"],
    ["PUT", "/blocked"],
  ])("%s %s is 404 not found", async (method, path) => {
    const res = await app(makeState()).request(path, { method });
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("not found");
  });
});

describe("the live page (docs/behaviour.md §7.6)", () => {
  it.each([
    ["/", "text/html; charset=utf-8", "<title>codex-network-proxy</title>"],
    ["/app.js", "text/javascript; charset=utf-8", "sessionStorage"],
    ["/app.css", "text/css; charset=utf-8", "font"],
  ])("GET %s is served without a token, with a strict CSP", async (path, type, content) => {
    const res = await app(makeState(), { token: TOKEN }).request(path);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(type);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const body = await res.text();
    expect(body).toContain(content);
    expect(body).not.toContain(TOKEN);
  });

  it.each([
    ["a page's form post (Origin, form type)", { origin: "http://localhost", "content-type": "application/x-www-form-urlencoded" }, 415],
    ["a browser's text/plain post (Sec-Fetch-Site)", { "sec-fetch-site": "same-origin", "content-type": "text/plain" }, 415],
    ["the page's own JSON post", { origin: "http://localhost", "sec-fetch-site": "same-origin", "content-type": "application/json" }, 200],
    ["curl without a content type (not a browser)", {}, 200],
  ])("POST /mode: %s → %i", async (_what, headers, status) => {
    const a = app(makeState());
    const res = await a.request("/mode", { method: "POST", body: JSON.stringify({ mode: "limited" }), headers });
    expect(res.status).toBe(status);
    if (status === 415) expect(await res.json()).toEqual({ status: "error", error: "a state change from a browser must have content-type application/json" });
  });

  it("mounted under a prefix, the page links its own script and style, not the host app's", async () => {
    const parent = withLocalhost(new Hono());
    parent.get("/app.js", (c) => c.text("the host app's script"));
    parent.route("/proxy", createAdminApp(makeState()));
    const html = await (await parent.request("/proxy")).text();
    expect(html).toContain('src="/proxy/app.js"');
    expect(html).toContain('href="/proxy/app.css"');
    expect(await (await parent.request("/proxy/app.js")).text()).toContain("sessionStorage");
  });

  it("the page holds no data: the patterns are not in it", async () => {
    const body = await (await app(makeState()).request("/")).text();
    expect(body).not.toMatch(/example\.(com|org)/);
  });
});

describe("admin token", () => {
  const protectedRequests: [string, string, string?][] = [
    ["GET", "/config"],
    ["GET", "/patterns"],
    ["GET", "/blocked"],
    ["POST", "/mode", '{"mode":"limited"}'],
    ["POST", "/reload"],
    ["GET", "/unknown"],
  ];

  it.each(protectedRequests)("%s %s without a token is 401 with WWW-Authenticate: Bearer", async (method, path, body) => {
    const state = makeState();
    const res = await app(state, { token: TOKEN }).request(path, { method, body });
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    expect(await res.json()).toEqual({ status: "error", error: "unauthorized" });
    expect(res.status).toBe(401);
    expect(state.snapshot().mode).toBe("full");
  });

  it.each([
    ["a wrong token", `Bearer ${TOKEN}x`, 'Bearer error="invalid_token"'],
    ["a prefix of the token", `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer error="invalid_token"'],
    ["an empty token", "Bearer ", 'Bearer error="invalid_request"'],
    ["another scheme", `Basic ${TOKEN}`, 'Bearer error="invalid_request"'],
    ["the bare token", TOKEN, 'Bearer error="invalid_request"'],
  ])("refuses %s with 401 and the RFC 6750 challenge", async (_name, authorization, challenge) => {
    const res = await app(makeState(), { token: TOKEN }).request("/patterns", { headers: { authorization } });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(challenge);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ status: "error", error: "unauthorized" });
    expect(text).not.toContain(TOKEN);
  });

  it.each([`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER   ${TOKEN}  `])("accepts %j", async (authorization) => {
    const res = await app(makeState(), { token: TOKEN }).request("/patterns", { headers: { authorization } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ allowed: ALLOWED, denied: DENIED });
  });

  it("lets POST /mode through with the token", async () => {
    const state = makeState();
    const res = await postMode(app(state, { token: TOKEN }), '{"mode":"limited"}', { authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);
    expect(state.snapshot().mode).toBe("limited");
  });

  it("keeps /health open", async () => {
    const res = await app(makeState(), { token: TOKEN }).request("/health");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok");
  });

  it("treats an empty token option as no token", async () => {
    expect((await app(makeState(), { token: "" }).request("/patterns")).status).toBe(200);
  });

  it("never writes the token to a response or a log line", async () => {
    const { log, lines } = captureLogger();
    const state = makeState({ admin_token: TOKEN }, { source: async () => config({ admin_token: TOKEN }) });
    const a = app(state, { token: TOKEN, log });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const texts: string[] = [];
    for (const [method, path, body] of protectedRequests) {
      for (const headers of [auth, {}, { authorization: `Bearer ${TOKEN}-wrong` }]) {
        const res = await a.request(path, { method, body, headers });
        texts.push(await res.text(), JSON.stringify([...res.headers]));
      }
    }
    texts.push(await (await postMode(a, '{"mode":"nope"}', auth)).text());
    expect(texts.join("\n")).not.toContain(TOKEN);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).not.toContain(TOKEN);
    expect(lines.every((l) => l.includes("codex_network_proxy::admin"))).toBe(true);
  });
});

describe("mounted inside another Hono app", () => {
  function parentWith(options?: AdminOptions): Hono {
    const parent = new Hono();
    parent.get("/other", (c) => c.text("parent route"));
    parent.route("/proxy", createAdminApp(makeState(), options));
    parent.get("/after", (c) => c.text("registered after"));
    return withLocalhost(parent);
  }

  it("serves the endpoints under the prefix", async () => {
    const parent = parentWith();
    const health = await parent.request("/proxy/health");
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok");
    expect(await (await parent.request("/proxy/patterns")).json()).toEqual({ allowed: ALLOWED, denied: DENIED });
    const mode = await parent.request("/proxy/mode", { method: "POST", body: '{"mode":"limited"}' });
    expect(await mode.json()).toEqual({ status: "ok", mode: "limited" });
  });

  it("keeps its 404 inside its own paths", async () => {
    const parent = parentWith();
    const inside = await parent.request("/proxy/nope");
    expect(inside.status).toBe(404);
    expect(await inside.text()).toBe("not found");
    expect(await (await parent.request("/other")).text()).toBe("parent route");
    expect(await (await parent.request("/after")).text()).toBe("registered after");
    const outside = await parent.request("/elsewhere");
    expect(outside.status).toBe(404);
    expect(await outside.text()).not.toBe("not found");
    expect((await parent.request("/health")).status).toBe(404);
  });

  it("applies the token only under its prefix", async () => {
    const parent = parentWith({ token: TOKEN });
    expect((await parent.request("/proxy/health")).status).toBe(200);
    expect((await parent.request("/proxy/config")).status).toBe(401);
    expect((await parent.request("/proxy/config", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await parent.request("/other")).status).toBe(200);
    expect((await parent.request("/after")).status).toBe(200);
  });
});

describe("adminTokenFrom", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];

  it("prefers a non-empty CODEX_NETWORK_PROXY_ADMIN_TOKEN", () => {
    expect(ADMIN_TOKEN_ENV).toBe("CODEX_NETWORK_PROXY_ADMIN_TOKEN");
    expect(adminTokenFrom(config({ admin_token: "from-file" }), env({ [ADMIN_TOKEN_ENV]: "from-env" }))).toBe("from-env");
  });

  it("falls back to network.admin_token when the variable is unset or empty", () => {
    expect(adminTokenFrom(config({ admin_token: "from-file" }), env({}))).toBe("from-file");
    expect(adminTokenFrom(config({ admin_token: "from-file" }), env({ [ADMIN_TOKEN_ENV]: "" }))).toBe("from-file");
  });

  it("is undefined when neither is set", () => {
    expect(adminTokenFrom(config(), env({}))).toBeUndefined();
    expect(adminTokenFrom(config({ admin_token: "" }), env({ [ADMIN_TOKEN_ENV]: "" }))).toBeUndefined();
  });

  it("refuses a variable that is not a bearer token with a ConfigError naming it, not the token", () => {
    let err: unknown;
    try {
      adminTokenFrom(config(), env({ [ADMIN_TOKEN_ENV]: "sec ret" }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe(ADMIN_TOKEN_ENV);
    expect((err as ConfigError).message).toBe(
      `${ADMIN_TOKEN_ENV} is not a bearer token: it holds whitespace (a space, tab or line break); use letters, digits and - . _ ~ + /, optionally ending in = (RFC 6750 §2.1)`,
    );
  });
});

describe("createAdminApp token option", () => {
  it("refuses a token no request could present, without quoting it", () => {
    expect(() => createAdminApp(makeState(), { token: "sec\tret" })).toThrow(/^the admin token is not a bearer token: it holds whitespace/);
    expect(() => createAdminApp(makeState(), { token: "sec\tret" })).not.toThrow(/sec\tret/);
  });

  it("logs each kind of refusal at warn, without the token", async () => {
    const lines: string[] = [];
    const log: Logger = { log: (level, _target, message) => void lines.push(`${level} ${message}`), enabled: () => true };
    const admin = app(makeState(), { token: TOKEN, log });
    await admin.request("/config");
    await admin.request("/config", { headers: { authorization: "Basic x" } });
    await admin.request("/config", { headers: { authorization: "Bearer nope" } });
    expect(lines).toEqual([
      "warn admin GET /config refused: no Authorization header",
      "warn admin GET /config refused: Authorization is not `Bearer TOKEN`",
      "warn admin GET /config refused: wrong bearer token",
    ]);
  });
});
