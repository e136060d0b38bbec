/**
 * Upstream proxy chaining (docs/behaviour.md §5, `allow_upstream_proxy`): parsing the proxy
 * variables and NO_PROXY, choosing the proxy per target, the CONNECT handshake with the
 * upstream proxy, and the HTTP session's use of it — all over in-memory connections.
 */
import { describe, expect, it } from "vitest";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import { DialError, type Conn, type Net, type NetAddr } from "../../src/core/net/contract.ts";
import { ProxyLoopError } from "../../src/core/net/dial.ts";
import { openPlannedTunnel } from "../../src/core/net/dial-plan.ts";
import { passGate } from "../../src/core/gate/gate.ts";
import {
  bypassesProxy,
  connectThrough,
  parseNoProxy,
  parseProxyUrl,
  ProxyUrlError,
  proxyFor,
  upstreamProxiesFromEnv,
  type UpstreamProxies,
  type UpstreamProxy,
} from "../../src/core/net/upstream-proxy.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, readAllText, tripwireNet } from "../helpers/memory-net.ts";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

// ---------------------------------------------------------------------------------------------
// parseProxyUrl
// ---------------------------------------------------------------------------------------------

describe("parseProxyUrl", () => {
  it.each([
    ["http://127.0.0.1:3128", { host: "127.0.0.1", port: 3128, display: "http://127.0.0.1:3128" }],
    ["http://proxy.example", { host: "proxy.example", port: 80, display: "http://proxy.example" }],
    ["http://proxy.example:80", { host: "proxy.example", port: 80, display: "http://proxy.example" }],
    ["http://proxy.example:8080/", { host: "proxy.example", port: 8080, display: "http://proxy.example:8080" }],
    ["http://proxy.example:8080/some/path?q=1", { host: "proxy.example", port: 8080, display: "http://proxy.example:8080" }],
    ["HTTP://Proxy.Example:3128", { host: "proxy.example", port: 3128, display: "http://proxy.example:3128" }],
    ["http://[::1]:8080", { host: "::1", port: 8080, display: "http://[::1]:8080" }],
    ["http://[::1]", { host: "::1", port: 80, display: "http://[::1]" }],
    // no scheme: http:// is assumed (as curl does)
    ["127.0.0.1:3128", { host: "127.0.0.1", port: 3128, display: "http://127.0.0.1:3128" }],
    ["localhost", { host: "localhost", port: 80, display: "http://localhost" }],
  ])("%s → host, port and display, no credentials", (value, expected) => {
    expect(parseProxyUrl(value)).toEqual({ ...expected, authorization: undefined });
  });

  it.each([
    ["http://user:p%40ss@127.0.0.1:3128", "user:p@ss", "dXNlcjpwQHNz"],
    ["http://Aladdin:open%20sesame@127.0.0.1:3128", "Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="],
    ["http://user@127.0.0.1:3128", "user:", "dXNlcjo="],
    ["http://:pass@127.0.0.1:3128", ":pass", "OnBhc3M="],
    // percent-decoded, then UTF-8 encoded
    ["http://us%C3%A9r:p%C3%A4ss@127.0.0.1:3128", "usér:päss", "dXPDqXI6cMOkc3M="],
    // an encoded colon in the user name is sent as it decodes
    ["http://a%3Ab:c@127.0.0.1:3128", "a:b:c", "YTpiOmM="],
  ])("%s → Proxy-Authorization Basic of %j", (value, plain, encoded) => {
    expect(b64(plain)).toBe(encoded); // the table itself is right
    const p = parseProxyUrl(value);
    expect(p.authorization).toBe(`Basic ${encoded}`);
    expect(p.host).toBe("127.0.0.1");
    expect(p.port).toBe(3128);
  });

  it("never puts the credentials in the display form", () => {
    const p = parseProxyUrl("http://user:secret@127.0.0.1:3128");
    expect(p.display).toBe("http://127.0.0.1:3128");
    expect(JSON.stringify(p.display)).not.toContain("secret");
  });

  it.each([
    ["https://127.0.0.1:3128", "https:// proxies are not supported (only http://)"],
    ["socks5://127.0.0.1:1080", "socks5:// proxies are not supported (only http://)"],
    ["socks5h://127.0.0.1:1080", "socks5h:// proxies are not supported (only http://)"],
    ["socks4://127.0.0.1:1080", "socks4:// proxies are not supported (only http://)"],
  ])("%s is refused with a ProxyUrlError naming the scheme", (value, message) => {
    expect(() => parseProxyUrl(value)).toThrow(new ProxyUrlError(message));
    expect(() => parseProxyUrl(value)).toThrow(ProxyUrlError);
  });

  it.each(["http://", "::::", "http://exa mple:1", "http://proxy.example:99999", "http://[::1:8080", "http://proxy.example:port"])(
    "%j is refused as not a URL",
    (value) => {
      let err: unknown;
      try {
        parseProxyUrl(value);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProxyUrlError);
      expect((err as ProxyUrlError).message).toBe("not a URL");
      expect((err as ProxyUrlError).cause).toBeInstanceOf(TypeError); // the URL parser's message
    },
  );

  it("keeps no credentials anywhere in the error of a malformed URL", () => {
    let err: unknown;
    try {
      parseProxyUrl("http://user:s3cret@[bad");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProxyUrlError);
    // Everything reachable from the error, own fields of the cause included (Node's `input`).
    const seen = JSON.stringify(err, Object.getOwnPropertyNames(err)) + JSON.stringify((err as Error).cause, Object.getOwnPropertyNames((err as Error).cause));
    expect(seen).not.toContain("s3cret");
  });

  it("refuses a malformed percent-escape in the credentials with a ProxyUrlError, not the decoder's URIError", () => {
    // `new URL` keeps "%zz" as is; decoding it throws URIError, which must become our own kind
    // (kept as the cause) without quoting the credentials.
    for (const value of ["http://a%zz:b@127.0.0.1:3128", "http://user:100%@127.0.0.1:3128"]) {
      let err: unknown;
      try {
        parseProxyUrl(value);
      } catch (e) {
        err = e;
      }
      expect(err, value).toBeInstanceOf(ProxyUrlError);
      expect((err as Error).message).toBe("malformed percent-escape in the credentials");
      expect((err as Error).cause).toBeInstanceOf(URIError);
    }
  });

  it("an unusable variable is skipped with a warning naming it; start-up goes on", () => {
    // An exception here would abort the proxy's start-up even with allow_upstream_proxy = false.
    const warnings: string[] = [];
    const vars: Record<string, string> = { HTTPS_PROXY: "http://a%zz:secret@127.0.0.1:3128", http_proxy: "socks5://127.0.0.1:1080", ALL_PROXY: "127.0.0.1:3128" };
    const proxies = upstreamProxiesFromEnv((n) => vars[n], (m) => warnings.push(m));
    expect(proxies.https).toBeUndefined();
    expect(proxies.http).toBeUndefined();
    expect(proxies.all?.display).toBe("http://127.0.0.1:3128");
    expect(warnings).toEqual([
      "http_proxy: socks5:// proxies are not supported (only http://); not used as upstream proxy",
      "HTTPS_PROXY: malformed percent-escape in the credentials; not used as upstream proxy",
    ]);
    expect(warnings.join()).not.toContain("secret");
  });
});

// ---------------------------------------------------------------------------------------------
// parseNoProxy + bypassesProxy
// ---------------------------------------------------------------------------------------------

describe("parseNoProxy + bypassesProxy", () => {
  type Row = [noProxy: string, host: string, port: number, bypassed: boolean];
  const rows: Row[] = [
    // `*` exempts everything
    ["*", "anything.example", 80, true],
    ["*", "127.0.0.1", 8080, true],
    ["*", "::1", 443, true],
    ["other.example, *", "anything.example", 80, true],
    // a plain domain: itself and its subdomains, never a longer name that merely ends the same
    ["example.com", "example.com", 80, true],
    ["example.com", "www.example.com", 443, true],
    ["example.com", "a.b.example.com", 8080, true],
    ["example.com", "badexample.com", 80, false],
    ["example.com", "example.com.evil.example", 80, false],
    ["example.com", "example.org", 80, false],
    ["example.com", "com", 80, false],
    // entries are case-insensitive; a trailing dot is ignored
    ["EXAMPLE.com", "www.example.com", 80, true],
    ["example.com.", "example.com", 80, true],
    // `.example.com`: subdomains and (like curl) the domain itself
    [".example.com", "www.example.com", 80, true],
    [".example.com", "example.com", 80, true],
    [".example.com", "badexample.com", 80, false],
    // `*.example.com`: subdomains, never a longer name
    ["*.example.com", "www.example.com", 80, true],
    ["*.example.com", "a.b.example.com", 80, true],
    ["*.example.com", "badexample.com", 80, false],
    // `name:port`: only that port
    ["example.com:8080", "example.com", 8080, true],
    ["example.com:8080", "www.example.com", 8080, true],
    ["example.com:8080", "example.com", 80, false],
    ["example.com:8080", "example.com", 443, false],
    // IPv4: exact address, any port; with a port only that port
    ["10.1.2.3", "10.1.2.3", 80, true],
    ["10.1.2.3", "10.1.2.3", 65535, true],
    ["10.1.2.3", "10.1.2.4", 80, false],
    ["10.1.2.3", "10.1.2.30", 80, false],
    ["127.0.0.1:8080", "127.0.0.1", 8080, true],
    ["127.0.0.1:8080", "127.0.0.1", 8081, false],
    // an IP entry never matches a name, and a name entry never matches an IP
    ["127.0.0.1", "localhost", 80, false],
    ["localhost", "127.0.0.1", 80, false],
    // an IPv4-mapped IPv6 host is the IPv4 address
    ["127.0.0.1", "::ffff:127.0.0.1", 80, true],
    // IPv6: bracketed with a port, bare without one, any spelling of the address
    ["[::1]:80", "::1", 80, true],
    ["[::1]:80", "::1", 81, false],
    ["[::1]", "::1", 443, true],
    ["::1", "::1", 80, true],
    ["::1", "::1", 8443, true],
    ["::1", "0:0:0:0:0:0:0:1", 80, true],
    ["0:0:0:0:0:0:0:1", "::1", 80, true],
    ["::1", "::2", 80, false],
    ["::1", "127.0.0.1", 80, false],
    ["fe80::1", "fe80::1", 80, true],
    // CIDR, IPv4 and IPv6; never across families, never a name
    ["127.0.0.0/8", "127.0.0.1", 80, true],
    ["127.0.0.0/8", "127.255.255.254", 9, true],
    ["127.0.0.0/8", "128.0.0.1", 80, false],
    ["127.0.0.0/8", "126.255.255.255", 80, false],
    ["127.0.0.0/8", "::1", 80, false],
    ["127.0.0.0/8", "localhost", 80, false],
    ["127.0.0.0/8", "::ffff:127.0.0.9", 80, true],
    ["10.0.0.0/8", "127.0.0.1", 80, false],
    ["192.168.0.0/16", "192.168.44.1", 80, true],
    ["::1/128", "::1", 80, true],
    ["::1/128", "::2", 80, false],
    ["::1/128", "127.0.0.1", 80, false],
    ["fd00::/8", "fd12:3456::1", 80, true],
    ["fd00::/8", "fe80::1", 80, false],
    // separators: commas, spaces, both, repeated; blanks around entries
    ["a.example,b.example", "b.example", 80, true],
    ["a.example b.example", "b.example", 80, true],
    ["a.example, b.example", "b.example", 80, true],
    ["a.example ,,  b.example\tc.example", "c.example", 80, true],
    ["  a.example  ", "a.example", 80, true],
    ["a.example, 10.0.0.0/8 127.0.0.1:9,.c.example", "x.c.example", 80, true],
    ["a.example, 10.0.0.0/8 127.0.0.1:9,.c.example", "127.0.0.1", 9, true],
    ["a.example, 10.0.0.0/8 127.0.0.1:9,.c.example", "127.0.0.1", 80, false],
    ["a.example, 10.0.0.0/8 127.0.0.1:9,.c.example", "d.example", 80, false],
    // empty: nothing is exempt
    ["", "example.com", 80, false],
    ["", "127.0.0.1", 80, false],
    [" , ,", "example.com", 80, false],
    // unreadable entries are ignored, and do not spoil the others
    ["300.0.0.0/8, b.example", "b.example", 80, true],
    ["300.0.0.0/8", "127.0.0.1", 80, false],
    ["example.com:abc", "example.com", 80, false],
  ];

  it.each(rows)("NO_PROXY=%j: %s port %i bypassed → %s", (noProxy, host, port, bypassed) => {
    expect(bypassesProxy(parseNoProxy(noProxy), host, port)).toBe(bypassed);
  });

  it("parses nothing out of an empty or blank value", () => {
    expect(parseNoProxy("")).toEqual([]);
    expect(parseNoProxy(" ,\t, ")).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// proxyFor
// ---------------------------------------------------------------------------------------------

const P = (name: string): UpstreamProxy => ({ host: "127.0.0.1", port: 3000 + name.length, display: `http://${name}` });
const HTTP = P("http");
const HTTPS = P("https");
const ALL = P("all-proxy");

describe("proxyFor", () => {
  const cases: [label: string, proxies: Omit<UpstreamProxies, "noProxy">, tunnel: UpstreamProxy | undefined, plain: UpstreamProxy | undefined][] = [
    ["all three set", { http: HTTP, https: HTTPS, all: ALL }, HTTPS, HTTP],
    ["only ALL_PROXY", { all: ALL }, ALL, ALL],
    ["HTTP_PROXY and ALL_PROXY", { http: HTTP, all: ALL }, ALL, HTTP],
    ["HTTPS_PROXY and ALL_PROXY", { https: HTTPS, all: ALL }, HTTPS, ALL],
    ["only HTTP_PROXY", { http: HTTP }, undefined, HTTP],
    ["only HTTPS_PROXY", { https: HTTPS }, HTTPS, undefined],
    ["none", {}, undefined, undefined],
  ];

  it.each(cases)("%s: tunnel → HTTPS_PROXY else ALL_PROXY; plain → HTTP_PROXY else ALL_PROXY", (_label, proxies, tunnel, plain) => {
    const p: UpstreamProxies = { ...proxies, noProxy: [] };
    expect(proxyFor(p, "tunnel", "app.example", 443)).toBe(tunnel);
    expect(proxyFor(p, "plain", "app.example", 80)).toBe(plain);
  });

  it("returns undefined for a target NO_PROXY exempts, whichever proxy would apply", () => {
    const p: UpstreamProxies = { http: HTTP, https: HTTPS, all: ALL, noProxy: parseNoProxy("internal.example, 127.0.0.1:8080") };
    expect(proxyFor(p, "tunnel", "git.internal.example", 443)).toBeUndefined();
    expect(proxyFor(p, "plain", "internal.example", 80)).toBeUndefined();
    expect(proxyFor(p, "plain", "127.0.0.1", 8080)).toBeUndefined();
    expect(proxyFor(p, "tunnel", "127.0.0.1", 8080)).toBeUndefined();
    // not exempt: other port, other name
    expect(proxyFor(p, "plain", "127.0.0.1", 8081)).toBe(HTTP);
    expect(proxyFor(p, "tunnel", "external.example", 443)).toBe(HTTPS);
  });

  it("NO_PROXY=* disables chaining entirely", () => {
    const p: UpstreamProxies = { http: HTTP, https: HTTPS, all: ALL, noProxy: parseNoProxy("*") };
    expect(proxyFor(p, "tunnel", "app.example", 443)).toBeUndefined();
    expect(proxyFor(p, "plain", "app.example", 80)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// upstreamProxiesFromEnv
// ---------------------------------------------------------------------------------------------

function fromEnv(vars: Record<string, string>) {
  const warnings: string[] = [];
  const asked: string[] = [];
  const proxies = upstreamProxiesFromEnv(
    (n) => {
      asked.push(n);
      return Object.hasOwn(vars, n) ? vars[n] : undefined;
    },
    (m) => warnings.push(m),
  );
  return { proxies, warnings, asked };
}

describe("upstreamProxiesFromEnv", () => {
  it("reads nothing when no variable is set", () => {
    const { proxies, warnings } = fromEnv({});
    expect(proxies).toEqual({ http: undefined, https: undefined, all: undefined, noProxy: [] });
    expect(warnings).toEqual([]);
  });

  it("prefers the upper-case variable over the lower-case one", () => {
    const { proxies, warnings } = fromEnv({
      HTTP_PROXY: "http://127.0.0.1:1001",
      http_proxy: "http://127.0.0.1:2001",
      HTTPS_PROXY: "http://127.0.0.1:1002",
      https_proxy: "http://127.0.0.1:2002",
      ALL_PROXY: "http://127.0.0.1:1003",
      all_proxy: "http://127.0.0.1:2003",
    });
    expect(proxies.http?.port).toBe(1001);
    expect(proxies.https?.port).toBe(1002);
    expect(proxies.all?.port).toBe(1003);
    expect(warnings).toEqual([]);
  });

  it("uses the lower-case variable when the upper-case one is missing", () => {
    const { proxies } = fromEnv({ http_proxy: "http://127.0.0.1:2001", https_proxy: "http://127.0.0.1:2002", all_proxy: "http://127.0.0.1:2003" });
    expect(proxies.http?.port).toBe(2001);
    expect(proxies.https?.port).toBe(2002);
    expect(proxies.all?.port).toBe(2003);
  });

  it("uses the lower-case variable when the upper-case one is blank", () => {
    const { proxies, warnings } = fromEnv({ HTTP_PROXY: "  ", http_proxy: "http://127.0.0.1:2001" });
    expect(proxies.http?.port).toBe(2001);
    expect(warnings).toEqual([]);
  });

  it("trims surrounding blanks", () => {
    const { proxies } = fromEnv({ HTTP_PROXY: "  http://user:pw@127.0.0.1:1001 \n" });
    expect(proxies.http).toEqual({ host: "127.0.0.1", port: 1001, authorization: `Basic ${b64("user:pw")}`, display: "http://127.0.0.1:1001" });
  });

  it("skips an https:// value with a warning naming the variable, and uses the next candidate", () => {
    const { proxies, warnings } = fromEnv({ HTTPS_PROXY: "https://127.0.0.1:1002", https_proxy: "http://127.0.0.1:2002" });
    expect(proxies.https?.port).toBe(2002);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("HTTPS_PROXY");
    expect(warnings[0]).toContain("https://");
    expect(warnings[0]).toContain("not used as upstream proxy");
  });

  it("skips every unusable candidate with one warning each; the variable is then unset", () => {
    const { proxies, warnings } = fromEnv({ ALL_PROXY: "socks5://127.0.0.1:1080", all_proxy: "http://", HTTP_PROXY: "http://127.0.0.1:1001" });
    expect(proxies.all).toBeUndefined();
    expect(proxies.http?.port).toBe(1001);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^ALL_PROXY: socks5:\/\//);
    expect(warnings[1]).toMatch(/^all_proxy: not a URL/);
  });

  it("warns (instead of throwing) for credentials with a malformed percent-escape, and uses the next candidate", () => {
    let out: ReturnType<typeof fromEnv> | undefined;
    expect(() => (out = fromEnv({ HTTP_PROXY: "http://a%zz:b@127.0.0.1:1001", http_proxy: "http://127.0.0.1:2001" }))).not.toThrow();
    // Either the raw credentials are used, or the value is skipped with a warning: never an exception.
    const http = out!.proxies.http!;
    if (http.port === 2001) expect(out!.warnings).toHaveLength(1);
    else expect(http.port).toBe(1001);
  });

  it("reads NO_PROXY, upper-case first, lower-case when the upper-case one is missing", () => {
    const upper = fromEnv({ HTTP_PROXY: "http://127.0.0.1:1", NO_PROXY: "a.example", no_proxy: "b.example" }).proxies;
    expect(bypassesProxy(upper.noProxy, "a.example", 80)).toBe(true);
    expect(bypassesProxy(upper.noProxy, "b.example", 80)).toBe(false);
    const lower = fromEnv({ HTTP_PROXY: "http://127.0.0.1:1", no_proxy: "b.example" }).proxies;
    expect(bypassesProxy(lower.noProxy, "b.example", 80)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// connectThrough, planned tunnels and the gate's plan over in-memory connections
// ---------------------------------------------------------------------------------------------

const PROXY_AT: NetAddr = { host: "127.0.0.9", port: 3129 };
const TARGET_PORT = 8000;
const OWN_PORT = 3128;

interface FakeUpstream {
  /** Request heads received, in order. */
  heads: string[];
  /** Bytes received after the head, per connection. */
  after: string[];
  handler(conn: Conn): void;
}

/**
 * An in-memory upstream proxy: reads one head, answers `answer` (all at once), then echoes
 * (prefixed with `echo:`) whatever arrives after the head, until FIN.
 */
function fakeUpstream(answer: string, opts: { closeAfterAnswer?: boolean } = {}): FakeUpstream {
  const heads: string[] = [];
  const after: string[] = [];
  return {
    heads,
    after,
    handler(conn) {
      void (async () => {
        let s = "";
        while (!s.includes("\r\n\r\n")) {
          const c = await conn.read();
          if (c === null) return;
          s += latin1(c);
        }
        const end = s.indexOf("\r\n\r\n") + 4;
        heads.push(s.slice(0, end));
        const idx = after.push(s.slice(end)) - 1;
        await conn.write(latin1Bytes(answer));
        if (opts.closeAfterAnswer) {
          conn.close();
          return;
        }
        for (;;) {
          const c = await conn.read();
          if (c === null) break;
          after[idx] += latin1(c);
          await conn.write(latin1Bytes(`echo:${latin1(c)}`));
        }
        await conn.closeWrite();
      })().catch(() => {});
    },
  };
}

function upstreamProxy(authorization?: string, host = PROXY_AT.host): UpstreamProxy {
  return { host, port: PROXY_AT.port, authorization, display: `http://${host}:${PROXY_AT.port}` };
}

function dialCtx(net: Net, extra: Partial<{ upstream: UpstreamProxies }> = {}) {
  return { net, isOwnListener: (a: NetAddr) => a.port === OWN_PORT, ...extra };
}

async function readText(conn: Conn, until: (s: string) => boolean): Promise<string> {
  let s = "";
  while (!until(s)) {
    const c = await conn.read();
    if (c === null) break;
    s += latin1(c);
  }
  return s;
}

describe("connectThrough", () => {
  it("sends CONNECT with Host and Proxy-Authorization, and keeps bytes the proxy sent after its 200", async () => {
    const up = fakeUpstream("HTTP/1.1 200 Connection established\r\nVia: 1.1 fake\r\n\r\nserver-first");
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const tunnel = await connectThrough(dialCtx(net), upstreamProxy(`Basic ${b64("user:p@ss")}`), "127.0.0.1", TARGET_PORT);
    expect(up.heads).toEqual([`CONNECT 127.0.0.1:${TARGET_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nProxy-Authorization: Basic dXNlcjpwQHNz\r\n\r\n`]);
    expect(latin1(tunnel.early)).toBe("server-first");
    await tunnel.conn.write(latin1Bytes("ping"));
    expect(await readText(tunnel.conn, (s) => s.includes("echo:ping"))).toBe("echo:ping");
    tunnel.conn.close();
    expect(log.dials).toEqual([PROXY_AT]);
    expect(log.resolves).toEqual([]);
    expect(log.violations).toEqual([]);
  });

  it("brackets an IPv6 target and sends no Proxy-Authorization without credentials", async () => {
    const up = fakeUpstream("HTTP/1.0 200 OK\r\n\r\n");
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const tunnel = await connectThrough(dialCtx(net), upstreamProxy(), "::1", 443);
    expect(up.heads).toEqual(["CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"]);
    expect(tunnel.early).toHaveLength(0);
    tunnel.conn.close();
  });

  it("sends the target name, not an address: the upstream proxy resolves it", async () => {
    const up = fakeUpstream("HTTP/1.1 200 OK\r\n\r\n");
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const tunnel = await connectThrough(dialCtx(net), upstreamProxy(), "app.example", 443);
    expect(up.heads[0]).toBe("CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n");
    expect(log.resolves).toEqual([]);
    tunnel.conn.close();
  });

  it("resolves a proxy given by name and dials the address", async () => {
    const up = fakeUpstream("HTTP/1.1 200 OK\r\n\r\n");
    const { net, log } = tripwireNet({ hosts: { "proxy.example": [PROXY_AT.host] }, origins: { [PROXY_AT.port]: up.handler } });
    const tunnel = await connectThrough(dialCtx(net), upstreamProxy(undefined, "proxy.example"), "127.0.0.1", TARGET_PORT);
    expect(log.resolves).toEqual(["proxy.example"]);
    expect(log.dials).toEqual([PROXY_AT]);
    tunnel.conn.close();
  });

  it.each([
    ["407 Proxy Authentication Required", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n", /answered CONNECT with 407/],
    ["403", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", /answered CONNECT with 403/],
    ["502", "HTTP/1.1 502 Bad Gateway\r\n\r\n", /answered CONNECT with 502/],
    ["garbage", "SSH-2.0-OpenSSH_9.6\r\n\r\n", /malformed response/],
  ])("a %s answer is a DialError and closes the connection", async (_label, answer, message) => {
    const up = fakeUpstream(answer);
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const err = await connectThrough(dialCtx(net), upstreamProxy(), "127.0.0.1", TARGET_PORT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DialError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain("http://127.0.0.9:3129");
  });

  it("a proxy that closes before answering is a DialError", async () => {
    const up = fakeUpstream("HTTP/1.1 20", { closeAfterAnswer: true });
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const err = await connectThrough(dialCtx(net), upstreamProxy(), "127.0.0.1", TARGET_PORT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DialError);
    expect((err as Error).message).toMatch(/closed during CONNECT/);
  });

  it("an answer head that grows past 16 KiB without ending is a DialError", async () => {
    const up = fakeUpstream(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(20_000)}`);
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const err = await connectThrough(dialCtx(net), upstreamProxy(), "127.0.0.1", TARGET_PORT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DialError);
    expect((err as Error).message).toMatch(/oversized/);
  });

  it("an unreachable proxy is the dial's error", async () => {
    const { net } = tripwireNet({});
    const err = await connectThrough(dialCtx(net), upstreamProxy(), "127.0.0.1", TARGET_PORT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DialError);
    expect((err as DialError).kind).toBe("refused");
  });

  it("refuses a proxy that is one of our own listeners, without dialling (proxy loop)", async () => {
    const { net, log } = tripwireNet({});
    const own: UpstreamProxy = { host: "127.0.0.1", port: OWN_PORT, display: `http://127.0.0.1:${OWN_PORT}` };
    const err = await connectThrough(dialCtx(net), own, "127.0.0.1", TARGET_PORT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyLoopError);
    expect(log.dials).toEqual([]);
  });
});

describe("openPlannedTunnel", () => {
  const target = (dialled: string[]) => (conn: Conn) => {
    dialled.push("target");
    conn.close();
  };

  it("goes through the upstream proxy of an upstream plan", async () => {
    const up = fakeUpstream("HTTP/1.1 200 OK\r\n\r\n");
    const dialled: string[] = [];
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler, [TARGET_PORT]: target(dialled) } });
    const t = await openPlannedTunnel(dialCtx(net), { kind: "upstream", proxy: upstreamProxy(), addresses: [PROXY_AT.host] }, "127.0.0.1", TARGET_PORT);
    t.conn.close();
    expect(up.heads).toHaveLength(1);
    expect(dialled).toEqual([]);
    expect(log.dials).toEqual([PROXY_AT]);
  });

  it("dials a direct plan's addresses", async () => {
    const up = fakeUpstream("HTTP/1.1 200 OK\r\n\r\n");
    const dialled: string[] = [];
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler, [TARGET_PORT]: target(dialled) } });
    const t = await openPlannedTunnel(dialCtx(net), { kind: "direct", addresses: ["127.0.0.1"] }, "127.0.0.1", TARGET_PORT);
    t.conn.close();
    expect(up.heads).toEqual([]);
    expect(log.dials).toEqual([{ host: "127.0.0.1", port: TARGET_PORT }]);
    expect(t.early).toHaveLength(0);
  });
});

describe("the gate's dial plan for a tunnel", () => {
  function gateCtx(net: Net, chaining: boolean, upstream: UpstreamProxies | undefined): SessionContext {
    const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, allowed_domains: ["127.0.0.1"], allow_upstream_proxy: chaining }, { resolve: (h) => net.resolve(h) });
    return { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: (a) => a.port === OWN_PORT, upstream };
  }
  const ask = { protocol: "https_connect" as const, host: "127.0.0.1", port: TARGET_PORT, method: "CONNECT", client: "127.0.0.1:50000" };

  it("goes through HTTPS_PROXY when chaining is on", async () => {
    const { net } = tripwireNet({});
    const verdict = await passGate(gateCtx(net, true, { https: upstreamProxy(), noProxy: [] }), ask);
    expect(verdict).toMatchObject({ kind: "allowed", plan: { kind: "upstream", proxy: { display: upstreamProxy().display }, addresses: [PROXY_AT.host] } });
  });

  it.each([
    ["chaining is off", false, { https: upstreamProxy(), noProxy: [] }],
    ["NO_PROXY exempts the target", true, { https: upstreamProxy(), noProxy: parseNoProxy("127.0.0.0/8") }],
    ["only HTTP_PROXY is set (tunnels use HTTPS_PROXY or ALL_PROXY)", true, { http: upstreamProxy(), noProxy: [] }],
    ["no upstream proxies at all", true, undefined],
  ] as [string, boolean, UpstreamProxies | undefined][])("dials the vetted address directly when %s", async (_label, chaining, upstream) => {
    const { net, log } = tripwireNet({});
    const verdict = await passGate(gateCtx(net, chaining, upstream), ask);
    expect(verdict).toEqual({ kind: "allowed", host: "127.0.0.1", plan: { kind: "direct", addresses: ["127.0.0.1"] } });
    expect(log.dials).toEqual([]);
  });

  it("refuses with proxy_loop, before any dial, when the upstream proxy is one of our own listeners", async () => {
    const { net, log } = tripwireNet({});
    const own = { ...upstreamProxy(), port: OWN_PORT };
    const verdict = await passGate(gateCtx(net, true, { https: own, noProxy: [] }), ask);
    expect(verdict).toMatchObject({ kind: "refused", refusal: { reason: "proxy_loop", scope: "proxy_state" } });
    expect(log.dials).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The HTTP session with an upstream proxy
// ---------------------------------------------------------------------------------------------

function session(net: Net, overrides: Partial<NetworkConfig>, upstream: UpstreamProxies | undefined) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, ...overrides }, { resolve: (h) => net.resolve(h) });
  const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: (a) => a.port === OWN_PORT, upstream };
  const [client, server] = connPair();
  const done = serveHttpConnection(server, ctx);
  return { client, done };
}

const ORIGIN_ANSWER = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

describe("HTTP session chained to an upstream proxy", () => {
  it("absolute-form https:// through an upstream proxy is a 501 before the proxy is looked up or checked", async () => {
    const { net, log } = tripwireNet({});
    net.connectTls = async () => {
      throw new Error("tripwire: no TLS dial expected");
    };
    const own = { ...upstreamProxy(), port: OWN_PORT }; // would be a proxy loop if it were used
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, { https: own, noProxy: [] });
    await client.write(latin1Bytes(`GET https://127.0.0.1:${TARGET_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nConnection: close\r\n\r\n`));
    const reply = await readAllText(client);
    await client.closeWrite();
    await done;
    expect(reply).toMatch(/^HTTP\/1\.1 501 /);
    expect(reply).toContain("absolute-form https:// through an upstream proxy is not supported; use CONNECT");
    expect(log.dials).toEqual([]);
    expect(log.resolves).toEqual([]);
  });

  const creds = `Basic ${b64("user:p@ss")}`;

  it("sends a plain request in absolute-form with the proxy's credentials, never the client's", async () => {
    const up = fakeUpstream(ORIGIN_ANSWER);
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, { http: upstreamProxy(creds), noProxy: [] });
    await client.write(
      latin1Bytes(
        `GET http://127.0.0.1:${TARGET_PORT}/a/b?c=d HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nProxy-Authorization: Basic ${b64("client:secret")}\r\nX-A: 1\r\nConnection: close\r\n\r\n`,
      ),
    );
    const reply = await readAllText(client);
    await done;
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(reply.endsWith("ok")).toBe(true);
    expect(up.heads).toEqual([`GET http://127.0.0.1:${TARGET_PORT}/a/b?c=d HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nX-A: 1\r\nProxy-Authorization: ${creds}\r\n\r\n`]);
    expect(log.dials).toEqual([PROXY_AT]);
    expect(log.violations).toEqual([]);
  });

  it("sends no Proxy-Authorization at all when the proxy URL had no credentials", async () => {
    const up = fakeUpstream(ORIGIN_ANSWER);
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, { all: upstreamProxy(), noProxy: [] });
    await client.write(
      latin1Bytes(`GET http://127.0.0.1:${TARGET_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nProxy-Authorization: Basic ${b64("client:secret")}\r\nConnection: close\r\n\r\n`),
    );
    await readAllText(client);
    await done;
    expect(up.heads).toHaveLength(1);
    expect(up.heads[0]).not.toMatch(/proxy-authorization/i);
    expect(up.heads[0]).toMatch(new RegExp(`^GET http://127\\.0\\.0\\.1:${TARGET_PORT}/ HTTP/1\\.1\\r\\n`));
  });

  it("with local binding allowed, a name target goes to the upstream proxy by name and is never resolved here", async () => {
    const up = fakeUpstream(ORIGIN_ANSWER);
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const { client, done } = session(net, { allowed_domains: ["app.example"], allow_local_binding: true, allow_upstream_proxy: true }, { http: upstreamProxy(), noProxy: [] });
    await client.write(latin1Bytes("GET http://app.example/x HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"));
    expect(await readAllText(client)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await done;
    expect(up.heads[0]).toBe("GET http://app.example:80/x HTTP/1.1\r\nHost: app.example\r\n\r\n");
    expect(log.resolves).toEqual([]);
    expect(log.violations).toEqual([]);
  });

  it("the policy still decides on the target: a refused target never reaches the upstream proxy", async () => {
    const up = fakeUpstream(ORIGIN_ANSWER);
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const upstream: UpstreamProxies = { http: upstreamProxy(), https: upstreamProxy(), noProxy: [] };
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, upstream);
    await client.write(latin1Bytes("GET http://refused.invalid/ HTTP/1.1\r\nHost: refused.invalid\r\n\r\n"));
    const first = await readText(client, (s) => s.endsWith("}"));
    expect(first).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: refused\.invalid is not in the allowlist\r\n/);
    await client.write(latin1Bytes("CONNECT refused.invalid:443 HTTP/1.1\r\nHost: refused.invalid:443\r\nConnection: close\r\n\r\n"));
    const second = await readAllText(client);
    expect(second).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: refused\.invalid is not in the allowlist\r\n/);
    await done;
    expect(up.heads).toEqual([]);
    expect(log.dials).toEqual([]);
    expect(log.resolves).toEqual([]);
  });

  it("the upstream proxy's loopback address is not a target: it is dialled with allow_local_binding = false", async () => {
    // 127.0.0.9 is not in allowed_domains, and local binding is off: only the target is judged.
    const up = fakeUpstream(ORIGIN_ANSWER);
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_local_binding: false, allow_upstream_proxy: true }, { http: upstreamProxy(), noProxy: [] });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${TARGET_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nConnection: close\r\n\r\n`));
    expect(await readAllText(client)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await done;
    expect(up.heads).toHaveLength(1);
  });

  it("CONNECT goes through the upstream proxy; bytes it sent after its 200 reach the client", async () => {
    const up = fakeUpstream("HTTP/1.1 200 Connection established\r\n\r\nserver-first;");
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, { https: upstreamProxy(creds), noProxy: [] });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${TARGET_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nProxy-Authorization: Basic ${b64("client:secret")}\r\n\r\n`));
    const established = await readText(client, (s) => s.includes("server-first;"));
    expect(established).toBe("HTTP/1.1 200 OK\r\n\r\nserver-first;");
    await client.write(latin1Bytes("hello"));
    await client.closeWrite();
    expect(await readAllText(client)).toBe("echo:hello");
    await done;
    expect(up.heads).toEqual([`CONNECT 127.0.0.1:${TARGET_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nProxy-Authorization: ${creds}\r\n\r\n`]);
    expect(up.after).toEqual(["hello"]);
    expect(log.dials).toEqual([PROXY_AT]);
  });

  it("CONNECT answers 502 upstream failure when the upstream proxy refuses (407), then serves the next request", async () => {
    const up = fakeUpstream("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n");
    const { net } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, { https: upstreamProxy(), noProxy: [] });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${TARGET_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\n\r\n`));
    const reply = await readText(client, (s) => s.endsWith("upstream failure"));
    expect(reply).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(reply).not.toMatch(/proxy-authenticate/i);
    await client.write(latin1Bytes("CONNECT refused.invalid:443 HTTP/1.1\r\nHost: refused.invalid:443\r\nConnection: close\r\n\r\n"));
    expect(await readAllText(client)).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: refused\.invalid is not in the allowlist\r\n/);
    await done;
  });

  it("ignores the upstream proxies while allow_upstream_proxy is off", async () => {
    const up = fakeUpstream(ORIGIN_ANSWER);
    let direct = 0;
    const origin = (conn: Conn) => {
      direct++;
      void (async () => {
        await readText(conn, (s) => s.includes("\r\n\r\n"));
        await conn.write(latin1Bytes(ORIGIN_ANSWER));
      })().catch(() => {});
    };
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler, [TARGET_PORT]: origin } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: false }, { http: upstreamProxy(), https: upstreamProxy(), noProxy: [] });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${TARGET_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nConnection: close\r\n\r\n`));
    expect(await readAllText(client)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await done;
    expect(up.heads).toEqual([]);
    expect(direct).toBe(1);
    expect(log.dials).toEqual([{ host: "127.0.0.1", port: TARGET_PORT }]);
  });

  it("goes direct for a target NO_PROXY exempts", async () => {
    const up = fakeUpstream(ORIGIN_ANSWER);
    const origin = (conn: Conn) => {
      void (async () => {
        await readText(conn, (s) => s.includes("\r\n\r\n"));
        await conn.write(latin1Bytes(ORIGIN_ANSWER));
      })().catch(() => {});
    };
    const { net, log } = tripwireNet({ origins: { [PROXY_AT.port]: up.handler, [TARGET_PORT]: origin } });
    const upstream: UpstreamProxies = { http: upstreamProxy(), noProxy: parseNoProxy(`127.0.0.1:${TARGET_PORT}`) };
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"], allow_upstream_proxy: true }, upstream);
    await client.write(latin1Bytes(`GET http://127.0.0.1:${TARGET_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${TARGET_PORT}\r\nConnection: close\r\n\r\n`));
    expect(await readAllText(client)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await done;
    expect(up.heads).toEqual([]);
    expect(log.dials).toEqual([{ host: "127.0.0.1", port: TARGET_PORT }]);
  });
});
