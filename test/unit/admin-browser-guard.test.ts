/**
 * The admin API's browser guard (src/core/admin/browser-guard.ts) through `app.request()`:
 * what a web page could make a browser send (a foreign Host for DNS rebinding, a foreign
 * Origin or `Sec-Fetch-Site` for cross-site request forgery) is refused with 403 before the
 * token is looked at, on every path; what curl sends is served; no CORS header is ever sent;
 * the embedded app's `allowedHosts`; the standalone listener's bound host.
 *
 * Every Host and Origin here is loopback, `localhost`, the unspecified address `0.0.0.0` (a bind
 * address, never connected to) or a reserved name (`.example`, `.test`). No sockets.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createAdminApp, type AdminOptions } from "../../src/core/admin/app.ts";
import {
  ACCEPTED_FETCH_SITES,
  BROWSER_REFUSAL_STATUS,
  browserRefusal,
  compileAcceptedHosts,
  isAcceptedHost,
  LOCALHOST_NAME,
  serveAsAdminListener,
} from "../../src/core/admin/browser-guard.ts";
import { defaultNetworkConfig } from "../../src/core/config/types.ts";
import type { Logger } from "../../src/core/log.ts";
import { ProxyState } from "../../src/core/state.ts";

const TOKEN = "guard-test-token-91ab";
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** What a cross-site HTML form (or a no-preflight `fetch`) sends: `text/plain`, no preflight. */
const FORM = { "content-type": "text/plain" };
/** The body `curl -d '{"mode":"limited"}'` sends, with its default Content-Type. */
const CURL_FORM = { "content-type": "application/x-www-form-urlencoded" };
const LIMITED = '{"mode":"limited"}';
const ADMIN_HOST = "127.0.0.1:8080";

function makeState(): ProxyState {
  return new ProxyState({ ...defaultNetworkConfig(), enabled: true, allowed_domains: ["example.com"] }, { resolve: async () => [] });
}

function captureLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: { enabled: () => true, log: (level, target, message) => lines.push(`${level} ${target} ${message}`) } };
}

/** A request with exactly `headers` (no Host unless given), to `url` (path or absolute URL). */
function send(app: Hono, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
  const absolute = url.startsWith("http") ? url : `http://localhost${url}`;
  return Promise.resolve(app.request(new Request(absolute, { method: init.method ?? "GET", headers: init.headers, body: init.body })));
}

async function expectRefused(res: Response, ...named: string[]): Promise<string> {
  expect(res.status).toBe(BROWSER_REFUSAL_STATUS);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await res.json()) as { status: string; error: string };
  expect(Object.keys(body).sort()).toEqual(["error", "status"]);
  expect(body.status).toBe("error");
  for (const n of named) expect(body.error).toContain(n);
  return body.error;
}

function corsHeaders(res: Response): string[] {
  return [...res.headers.keys()].filter((k) => k.toLowerCase().startsWith("access-control-"));
}

/** Every refusal case: name, request headers, text the error must contain. */
const REFUSED: [string, Record<string, string>, string][] = [
  ["no Host", {}, "missing Host"],
  ["an empty Host", { host: "" }, "missing Host"],
  ["a foreign Host (DNS rebinding)", { host: "evil.example:8080" }, 'Host "evil.example:8080" is not this admin API\'s address'],
  ["a foreign Host without port", { host: "evil.example" }, '"evil.example"'],
  ["a subdomain of localhost", { host: "evil.localhost:8080" }, '"evil.localhost:8080"'],
  ["a name starting like a loopback literal", { host: "127.0.0.1.evil.example:8080" }, '"127.0.0.1.evil.example:8080"'],
  ["the unspecified address as Host", { host: "0.0.0.0:8080" }, '"0.0.0.0:8080"'],
  ["a Host list", { host: "127.0.0.1:8080, evil.example" }, '"127.0.0.1:8080, evil.example"'],
  ["a Host with userinfo", { host: "evil.example@127.0.0.1:8080" }, '"evil.example@127.0.0.1:8080"'],
  ["a Host with a bad port", { host: "127.0.0.1:99999" }, '"127.0.0.1:99999"'],
  ["a foreign Origin", { host: ADMIN_HOST, origin: "http://evil.example" }, 'Origin "http://evil.example" is not this admin API\'s origin "http://127.0.0.1:8080"'],
  ["Origin: null", { host: ADMIN_HOST, origin: "null" }, 'Origin "null"'],
  ["an Origin on another localhost port (a dev server page)", { host: "localhost:8080", origin: "http://localhost:3000" }, '"http://localhost:3000"'],
  ["an Origin on another loopback address", { host: ADMIN_HOST, origin: "http://127.0.0.2:8080" }, '"http://127.0.0.2:8080"'],
  ["an https Origin for the plain admin API", { host: ADMIN_HOST, origin: "https://127.0.0.1:8080" }, '"https://127.0.0.1:8080"'],
  ["an Origin with a path", { host: ADMIN_HOST, origin: "http://127.0.0.1:8080/" }, '"http://127.0.0.1:8080/"'],
  ["Sec-Fetch-Site: cross-site", { host: ADMIN_HOST, "sec-fetch-site": "cross-site" }, 'Sec-Fetch-Site "cross-site"'],
  ["Sec-Fetch-Site: same-site", { host: ADMIN_HOST, "sec-fetch-site": "same-site" }, 'Sec-Fetch-Site "same-site"'],
  ["an unknown Sec-Fetch-Site", { host: ADMIN_HOST, "sec-fetch-site": "bogus" }, '"bogus"'],
];

/** Requests the guard lets through: name and headers. */
const ACCEPTED: [string, Record<string, string>][] = [
  ["curl's Host", { host: ADMIN_HOST }],
  ["127.0.0.1 without port", { host: "127.0.0.1" }],
  ["localhost", { host: "localhost:8080" }],
  ["LOCALHOST with a trailing dot", { host: "LOCALHOST.:8080" }],
  ["another 127/8 address", { host: "127.255.255.254:9" }],
  ["127.1", { host: "127.1:8080" }],
  ["decimal 2130706433", { host: "2130706433:8080" }],
  ["hex 0x7f.0.0.1", { host: "0x7f.0.0.1:8080" }],
  ["octal 0177.0.0.1", { host: "0177.0.0.1:8080" }],
  ["[::1]", { host: "[::1]:8080" }],
  ["[::1] spelt out", { host: "[0:0:0:0:0:0:0:1]:8080" }],
  ["[::ffff:127.0.0.1]", { host: "[::ffff:127.0.0.1]:8080" }],
  ["its own Origin", { host: ADMIN_HOST, origin: "http://127.0.0.1:8080" }],
  ["its own Origin under localhost", { host: "localhost:8080", origin: "http://localhost:8080" }],
  ["its own Origin under [::1]", { host: "[::1]:8080", origin: "http://[::1]:8080" }],
  ["its own Origin on port 80 (default port dropped)", { host: "127.0.0.1:80", origin: "http://127.0.0.1" }],
  ["Sec-Fetch-Site: same-origin", { host: ADMIN_HOST, "sec-fetch-site": "same-origin", origin: "http://127.0.0.1:8080" }],
  ["Sec-Fetch-Site: none (typed in the address bar)", { host: ADMIN_HOST, "sec-fetch-site": "none" }],
];

describe("refusals (403, before anything else)", () => {
  describe.each([
    ["without a token", undefined],
    ["with a token (even the right one is sent)", TOKEN],
  ])("%s", (_label, token) => {
    const options: AdminOptions = token === undefined ? {} : { token };
    const auth = token === undefined ? {} : AUTH;

    it.each(REFUSED)("%s: POST /mode (text/plain form) → 403 naming it, mode unchanged", async (_name, headers, named) => {
      const state = makeState();
      const res = await send(createAdminApp(state, options), "/mode", { method: "POST", headers: { ...FORM, ...auth, ...headers }, body: LIMITED });
      await expectRefused(res, named);
      expect(corsHeaders(res)).toEqual([]);
      expect(state.snapshot().mode).toBe("full");
    });

    it.each(REFUSED)("%s: GET /config, /blocked, /patterns and /health → 403", async (_name, headers, named) => {
      const app = createAdminApp(makeState(), options);
      for (const path of ["/config", "/blocked", "/patterns", "/health", "/nowhere"]) {
        const res = await send(app, path, { headers: { ...auth, ...headers } });
        await expectRefused(res, named);
      }
    });

    it("a cross-site form POST as a browser sends it → 403, mode unchanged", async () => {
      const state = makeState();
      const res = await send(createAdminApp(state, options), "/mode", {
        method: "POST",
        headers: { ...auth, host: ADMIN_HOST, origin: "http://evil.example", "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", ...FORM },
        body: LIMITED,
      });
      await expectRefused(res, '"http://evil.example"');
      expect(state.snapshot().mode).toBe("full");
    });

    it("a DNS-rebound page (its own name as Host and Origin) → 403 on reads and on /mode", async () => {
      const state = makeState();
      const app = createAdminApp(state, options);
      const rebound = { host: "evil.example:8080", origin: "http://evil.example:8080", "sec-fetch-site": "same-origin" };
      await expectRefused(await send(app, "/config", { headers: { ...auth, ...rebound } }), '"evil.example:8080"');
      await expectRefused(await send(app, "/blocked", { headers: { ...auth, ...rebound } }), '"evil.example:8080"');
      await expectRefused(await send(app, "/mode", { method: "POST", headers: { ...auth, ...rebound, "content-type": "application/json" }, body: LIMITED }));
      expect(state.snapshot().mode).toBe("full");
    });
  });

  it("the Host is checked before the Origin, the Origin before Sec-Fetch-Site", async () => {
    const app = createAdminApp(makeState());
    const all = { host: "evil.example", origin: "http://evil.example", "sec-fetch-site": "cross-site" };
    expect(await expectRefused(await send(app, "/config", { headers: all }))).toMatch(/^Host /);
    expect(await expectRefused(await send(app, "/config", { headers: { ...all, host: ADMIN_HOST } }))).toMatch(/^Origin /);
    expect(await expectRefused(await send(app, "/config", { headers: { ...all, host: ADMIN_HOST, origin: "http://127.0.0.1:8080" } }))).toMatch(/^Sec-Fetch-Site /);
  });

  it("quotes a long or hostile value cut short and escaped", async () => {
    const long = `${"a".repeat(300)}.example`;
    const error = await expectRefused(await send(createAdminApp(makeState()), "/config", { headers: { host: long } }));
    expect(error.length).toBeLessThan(300);
    expect(error).toContain("…");
  });

  it("logs each refusal at warn (target admin) naming the value, never the token", async () => {
    const { log, lines } = captureLogger();
    const app = createAdminApp(makeState(), { token: TOKEN, log });
    await send(app, "/mode", { method: "POST", headers: { ...AUTH, host: "evil.example:8080" }, body: LIMITED });
    await send(app, "/config", { headers: { ...AUTH, host: ADMIN_HOST, origin: "null" } });
    await send(app, "/health", { headers: { host: ADMIN_HOST, "sec-fetch-site": "cross-site" } });
    expect(lines).toEqual([
      expect.stringMatching(/^warn codex_network_proxy::admin admin POST \/mode refused: Host "evil\.example:8080" is not/),
      expect.stringMatching(/^warn codex_network_proxy::admin admin GET \/config refused: Origin "null"/),
      expect.stringMatching(/^warn codex_network_proxy::admin admin GET \/health refused: Sec-Fetch-Site "cross-site"/),
    ]);
    expect(lines.join("\n")).not.toContain(TOKEN);
  });
});

describe("accepted requests", () => {
  it.each(ACCEPTED)("%s → GET /config 200, POST /mode 200", async (_name, headers) => {
    const state = makeState();
    const app = createAdminApp(state);
    const config = await send(app, "/config", { headers });
    expect(config.status).toBe(200);
    expect(corsHeaders(config)).toEqual([]);
    const mode = await send(app, "/mode", { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: LIMITED });
    expect(mode.status).toBe(200);
    expect(state.snapshot().mode).toBe("limited");
  });

  it("what the README's curl commands send works: POST /mode with curl -d's form Content-Type, POST /reload, the GETs", async () => {
    const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true }, { resolve: async () => [] }, { source: () => ({ ...defaultNetworkConfig(), enabled: true }) });
    const app = createAdminApp(state);
    const curl = { host: ADMIN_HOST, "user-agent": "curl/8.5.0", accept: "*/*" };
    const mode = await send(app, "/mode", { method: "POST", headers: { ...curl, ...CURL_FORM }, body: '{"mode":"full"}' });
    expect(await mode.json()).toEqual({ status: "ok", mode: "full" });
    const limited = await send(app, "/mode", { method: "POST", headers: { ...curl, ...CURL_FORM }, body: LIMITED });
    expect(await limited.json()).toEqual({ status: "ok", mode: "limited" });
    expect(state.snapshot().mode).toBe("limited");
    const reload = await send(app, "/reload", { method: "POST", headers: curl });
    expect(await reload.json()).toEqual({ status: "reloaded" });
    for (const path of ["/health", "/config", "/patterns", "/blocked"]) {
      expect((await send(app, path, { headers: curl })).status).toBe(200);
    }
  });

  it("with a token: the guard passes, then the token decides (401 without it, 200 with it); /health stays open", async () => {
    const app = createAdminApp(makeState(), { token: TOKEN });
    expect((await send(app, "/config", { headers: { host: ADMIN_HOST } })).status).toBe(401);
    expect((await send(app, "/config", { headers: { host: ADMIN_HOST, ...AUTH } })).status).toBe(200);
    const health = await send(app, "/health", { headers: { host: ADMIN_HOST } });
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok");
  });
});

describe("no CORS", () => {
  it("no access-control-* header on any answer: 200, 400, 401, 403, 404", async () => {
    const plain = createAdminApp(makeState());
    const locked = createAdminApp(makeState(), { token: TOKEN });
    const responses = [
      await send(plain, "/config", { headers: { host: ADMIN_HOST } }),
      await send(plain, "/mode", { method: "POST", headers: { host: ADMIN_HOST }, body: "nope" }),
      await send(locked, "/config", { headers: { host: ADMIN_HOST } }),
      await send(plain, "/config", { headers: { host: ADMIN_HOST, origin: "http://evil.example" } }),
      await send(plain, "/nowhere", { headers: { host: ADMIN_HOST } }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 400, 401, 403, 404]);
    for (const r of responses) expect(corsHeaders(r)).toEqual([]);
  });

  it.each([
    ["without a token", {}],
    ["with a token", { token: TOKEN }],
  ])("an OPTIONS preflight never succeeds (%s)", async (_label, options: AdminOptions) => {
    const app = createAdminApp(makeState(), options);
    const preflight = {
      host: ADMIN_HOST,
      origin: "http://evil.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
      "sec-fetch-site": "cross-site",
    };
    const res = await send(app, "/mode", { method: "OPTIONS", headers: preflight });
    await expectRefused(res, '"http://evil.example"');
    expect(corsHeaders(res)).toEqual([]);
    // Without Origin it is just an unknown method: still no success and no CORS header.
    const bare = await send(app, "/mode", { method: "OPTIONS", headers: { host: ADMIN_HOST, ...AUTH } });
    expect(bare.status).toBe(404);
    expect(corsHeaders(bare)).toEqual([]);
  });
});

describe("embedded in another Hono app (allowedHosts)", () => {
  function parentWith(options: AdminOptions, state = makeState()): Hono {
    const parent = new Hono();
    parent.get("/other", (c) => c.text("parent route"));
    parent.route("/proxy", createAdminApp(state, options));
    return parent;
  }

  it("default: loopback only", async () => {
    const parent = parentWith({});
    expect((await send(parent, "/proxy/config", { headers: { host: "localhost:3000" } })).status).toBe(200);
    expect((await send(parent, "/proxy/config", { headers: { host: "[::1]:3000" } })).status).toBe(200);
    await expectRefused(await send(parent, "/proxy/config", { headers: { host: "app.test:3000" } }), '"app.test:3000"');
    // The embedding app's own routes are not guarded.
    expect((await send(parent, "/other", { headers: { host: "app.test:3000" } })).status).toBe(200);
  });

  describe.each([
    ["without a token", {}, {}],
    ["with a token", { token: TOKEN }, AUTH],
  ])("custom allowedHosts, %s", (_label, tokenOption: AdminOptions, auth: Record<string, string>) => {
    const options = { ...tokenOption, allowedHosts: ["App.Test.", "proxy.test"] };

    it("accepts the given names (any case, any port) and still loopback", async () => {
      const state = makeState();
      const parent = parentWith(options, state);
      for (const host of ["app.test", "APP.TEST:3000", "proxy.test:8443", "localhost:3000", "127.0.0.1:3000"]) {
        expect((await send(parent, "/proxy/config", { headers: { host, ...auth } })).status, host).toBe(200);
      }
      const mode = await send(parent, "/proxy/mode", {
        method: "POST",
        headers: { host: "app.test:3000", origin: "http://app.test:3000", "sec-fetch-site": "same-origin", "content-type": "application/json", ...auth },
        body: LIMITED,
      });
      expect(mode.status).toBe(200);
      expect(state.snapshot().mode).toBe("limited");
    });

    it("refuses other names, other subdomains, foreign Origins and cross-site requests", async () => {
      const state = makeState();
      const parent = parentWith(options, state);
      await expectRefused(await send(parent, "/proxy/config", { headers: { host: "evil.example", ...auth } }), '"evil.example"', "app.test");
      await expectRefused(await send(parent, "/proxy/config", { headers: { host: "sub.app.test", ...auth } }), '"sub.app.test"');
      await expectRefused(
        await send(parent, "/proxy/mode", { method: "POST", headers: { host: "app.test", origin: "http://evil.example", ...FORM, ...auth }, body: LIMITED }),
        'Origin "http://evil.example" is not this admin API\'s origin "http://app.test"',
      );
      await expectRefused(await send(parent, "/proxy/config", { headers: { host: "app.test", "sec-fetch-site": "cross-site", ...auth } }), '"cross-site"');
      await expectRefused(await send(parent, "/proxy/health", { headers: { host: "app.test", "sec-fetch-site": "same-site" } }), '"same-site"');
      expect(state.snapshot().mode).toBe("full");
    });

    it("served over TLS: its own https Origin passes, the http one does not", async () => {
      const parent = parentWith(options);
      const ok = await send(parent, "https://app.test/proxy/config", { headers: { host: "app.test", origin: "https://app.test", ...auth } });
      expect(ok.status).toBe(200);
      await expectRefused(await send(parent, "https://app.test/proxy/config", { headers: { host: "app.test", origin: "http://app.test", ...auth } }), '"https://app.test"');
    });
  });

  it("0.0.0.0 in allowedHosts accepts every IP literal, still no other DNS name", async () => {
    const parent = parentWith({ allowedHosts: ["0.0.0.0"] });
    expect((await send(parent, "/proxy/config", { headers: { host: "0.0.0.0:8080" } })).status).toBe(200);
    await expectRefused(await send(parent, "/proxy/config", { headers: { host: "evil.example:8080" } }), "any IP address");
  });

  it.each([["*"], ["exa mple.test"], ["http://app.test/"], ["[app.test]"], [""]])("a bad allowedHosts entry %j is a TypeError naming it", (entry) => {
    expect(() => createAdminApp(makeState(), { allowedHosts: [entry] })).toThrow(TypeError);
    expect(() => createAdminApp(makeState(), { allowedHosts: [entry] })).toThrow(JSON.stringify(entry));
  });
});

describe("on the proxy's own admin listener (serveAsAdminListener)", () => {
  const served = (boundHost: string, allowNonLoopback: boolean) => serveAsAdminListener(createAdminApp(makeState()).fetch, boundHost, allowNonLoopback);
  const get = (handler: (r: Request) => Response | Promise<Response>, host: string) =>
    Promise.resolve(handler(new Request("http://localhost/config", { headers: { host } })));

  it("a loopback bind: loopback only", async () => {
    const h = served("127.0.0.1", false);
    expect((await get(h, ADMIN_HOST)).status).toBe(200);
    expect((await get(h, "localhost:8080")).status).toBe(200);
    await expectRefused(await get(h, "evil.example:8080"));
  });

  it("0.0.0.0 with dangerously_allow_non_loopback_admin: any IP literal, no DNS name but localhost", async () => {
    const h = served("0.0.0.0", true);
    expect((await get(h, "0.0.0.0:8080")).status).toBe(200);
    expect((await get(h, ADMIN_HOST)).status).toBe(200);
    expect((await get(h, "localhost:8080")).status).toBe(200);
    await expectRefused(await get(h, "evil.example:8080"), "any IP address");
  });

  it(":: with the flag: the same", async () => {
    const h = served("::", true);
    expect((await get(h, "0.0.0.0:8080")).status).toBe(200);
    await expectRefused(await get(h, "evil.example:8080"));
  });

  it("a named bind with the flag: that name", async () => {
    const h = served("proxy.test", true);
    expect((await get(h, "proxy.test:8080")).status).toBe(200);
    await expectRefused(await get(h, "evil.example:8080"), "proxy.test");
  });

  it("without the flag the bound host adds nothing", async () => {
    await expectRefused(await get(served("0.0.0.0", false), "0.0.0.0:8080"));
    await expectRefused(await get(served("proxy.test", false), "proxy.test:8080"));
  });

  it("the Origin and Sec-Fetch-Site rules still hold", async () => {
    const h = served("0.0.0.0", true);
    const r1 = await h(new Request("http://localhost/config", { headers: { host: ADMIN_HOST, origin: "http://evil.example" } }));
    await expectRefused(r1, '"http://evil.example"');
    const r2 = await h(new Request("http://localhost/config", { headers: { host: ADMIN_HOST, "sec-fetch-site": "cross-site" } }));
    await expectRefused(r2, '"cross-site"');
  });
});

describe("building blocks", () => {
  it("constants", () => {
    expect(BROWSER_REFUSAL_STATUS).toBe(403);
    expect(LOCALHOST_NAME).toBe("localhost");
    expect(ACCEPTED_FETCH_SITES).toEqual(["same-origin", "none"]);
  });

  it("isAcceptedHost: loopback only by default", () => {
    const loopback = compileAcceptedHosts();
    for (const [, h] of ACCEPTED) expect(isAcceptedHost(h.host!, loopback), h.host).toBe(true);
    for (const host of ["evil.example", "0.0.0.0", "[::]", "", "127.0.0.1:0", "localhost:", "[::1"]) {
      expect(isAcceptedHost(host, loopback), host).toBe(false);
    }
  });

  it("browserRefusal: undefined for what curl sends, a reason otherwise", () => {
    const accepted = [compileAcceptedHosts()];
    const headers = (h: Record<string, string>) => new Headers(h);
    expect(browserRefusal(headers({ host: ADMIN_HOST }), "http://127.0.0.1:8080/mode", accepted)).toBeUndefined();
    expect(browserRefusal(headers({}), "http://127.0.0.1:8080/mode", accepted)).toMatch(/^missing Host/);
    expect(browserRefusal(headers({ host: ADMIN_HOST, origin: "http://evil.example" }), "http://127.0.0.1:8080/", accepted)).toMatch(/^Origin "http:\/\/evil\.example"/);
  });
});
