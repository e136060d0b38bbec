/**
 * The HTTP session over in-memory connections and a tripwire net: what reaches the origin,
 * what the client gets back, and that refused names are never resolved or dialled.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection, HEADER_TIMEOUT_MS } from "../../src/core/http/session.ts";
import { silentLogger } from "../../src/core/log.ts";
import type { Conn, Net } from "../../src/core/net/contract.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, readAllText, tripwireNet } from "../helpers/memory-net.ts";

const ORIGIN_PORT = 8000;
/** The port the in-memory proxy pretends to listen on (for the loop guard). */
const PROXY_PORT = 3128;

function session(net: Net, overrides: Partial<NetworkConfig>) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, ...overrides }, { resolve: (h) => net.resolve(h) });
  const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: (a) => a.port === PROXY_PORT };
  const [client, server] = connPair();
  const done = serveHttpConnection(server, ctx);
  return { client, done, state };
}

/** Read from `conn` until `text` has been seen (or the stream ends). */
async function readUntil(conn: Conn, predicate: (s: string) => boolean): Promise<string> {
  let s = "";
  while (!predicate(s)) {
    const c = await conn.read();
    if (c === null) break;
    s += latin1(c);
  }
  return s;
}

/** An origin that records the raw request bytes and answers `response` once it saw `until`. */
function recordingOrigin(until: (s: string) => boolean, response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") {
  const seen: string[] = [];
  const handler = (conn: Conn) => {
    void (async () => {
      for (;;) {
        const s = await readUntil(conn, until);
        if (s === "") return;
        seen.push(s);
        await conn.write(latin1Bytes(response));
      }
    })().catch(() => {});
  };
  return { seen, handler };
}

const headDone = (s: string) => s.includes("\r\n\r\n");

afterEach(() => {
  vi.useRealTimers();
});

describe("HTTP session", () => {
  it("dials exactly the vetted address and resolves the name once (DNS pinning)", async () => {
    let answers = 0;
    const origin = recordingOrigin(headDone);
    const { net, log } = tripwireNet({
      hosts: { localhost: () => (answers++ === 0 ? ["127.0.0.1"] : ["127.0.0.9"]) },
      origins: { [ORIGIN_PORT]: origin.handler },
    });
    const { client, done } = session(net, { allowed_domains: ["localhost"] });
    await client.write(latin1Bytes(`GET http://localhost:${ORIGIN_PORT}/a HTTP/1.1\r\nHost: localhost:${ORIGIN_PORT}\r\n\r\n`));
    const reply = await readUntil(client, (s) => s.endsWith("ok"));
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await client.closeWrite();
    await done;
    expect(log.resolves).toEqual(["localhost"]);
    expect(log.dials).toEqual([{ host: "127.0.0.1", port: ORIGIN_PORT }]);
    expect(log.violations).toEqual([]);
    expect(origin.seen[0]).toBe(`GET /a HTTP/1.1\r\nHost: localhost:${ORIGIN_PORT}\r\n\r\n`);
  });

  it("never resolves or dials a refused name, and keeps the connection for the next request", async () => {
    const { net, log } = tripwireNet({});
    const { client, done } = session(net, { allowed_domains: ["allowed.example"], denied_domains: ["denied.example"] });
    await client.write(latin1Bytes("GET http://denied.example/ HTTP/1.1\r\nHost: denied.example\r\n\r\n"));
    const first = await readUntil(client, (s) => s.endsWith("}"));
    expect(first).toContain("x-proxy-error: blocked-by-denylist");
    expect(first).toContain("connection: keep-alive");
    await client.write(latin1Bytes("GET http://other.example/ HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"));
    const second = await readAllText(client);
    expect(second).toContain("x-proxy-error: blocked-by-allowlist");
    expect(second).toContain("connection: close");
    await done;
    expect(log.resolves).toEqual([]);
    expect(log.dials).toEqual([]);
  });

  it(`closes a client that sends no complete head within ${HEADER_TIMEOUT_MS} ms`, async () => {
    vi.useFakeTimers();
    const { net } = tripwireNet({});
    const { client, done } = session(net, {});
    await client.write(latin1Bytes("GET / HTTP/1.1\r\nHost: slow"));
    let finished = false;
    void done.then(() => (finished = true));
    await vi.advanceTimersByTimeAsync(HEADER_TIMEOUT_MS - 1000);
    expect(finished).toBe(false);
    await vi.advanceTimersByTimeAsync(2000);
    expect(finished).toBe(true);
    expect(await readAllText(client)).toBe("");
  });

  it("re-frames a chunked body (extensions and trailers dropped) and strips hop-by-hop headers", async () => {
    const origin = recordingOrigin((s) => s.includes("0\r\n\r\n"));
    const { net, log } = tripwireNet({ origins: { [ORIGIN_PORT]: origin.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(
      latin1Bytes(
        `POST http://127.0.0.1:${ORIGIN_PORT}/up HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n` +
          "Keep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\n" +
          "X-Forwarded-For: 127.0.0.5\r\nTransfer-Encoding: chunked\r\n\r\n",
      ),
    );
    await client.write(latin1Bytes("5;ext=1\r\nhello\r\n"));
    await client.write(latin1Bytes("6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"));
    const reply = await readUntil(client, (s) => s.endsWith("ok"));
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    await client.closeWrite();
    await done;
    expect(origin.seen[0]).toBe(
      `POST /up HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\nX-Forwarded-For: 127.0.0.5\r\nTransfer-Encoding: chunked\r\n\r\n` +
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    expect(log.violations).toEqual([]);
  });

  it("answers 400 for a malformed chunked body without leaving the origin waiting", async () => {
    const origin = recordingOrigin(() => false);
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: origin.handler } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`POST http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`));
    const reply = await readAllText(client);
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(reply).toContain("malformed chunk-size line");
    await done;
  });

  it("re-frames a close-delimited response as chunked for HTTP/1.1 clients and keeps them", async () => {
    const { net } = tripwireNet({
      origins: {
        [ORIGIN_PORT]: (conn) => {
          void (async () => {
            await readUntil(conn, headDone);
            await conn.write(latin1Bytes("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nstream"));
            await conn.write(latin1Bytes("ed"));
            await conn.closeWrite();
          })();
        },
      },
    });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    const reply = await readUntil(client, (s) => s.endsWith("0\r\n\r\n"));
    expect(reply).toBe("HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n6\r\nstream\r\n2\r\ned\r\n0\r\n\r\n");
    await client.closeWrite();
    await done;
  });

  it("CONNECT dials first and answers 502 when the upstream refuses, then serves the next request", async () => {
    const { net, log } = tripwireNet({});
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${ORIGIN_PORT + 1} HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT + 1}\r\n\r\n`));
    const reply = await readUntil(client, (s) => s.endsWith("upstream failure"));
    expect(reply).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(reply).not.toContain("200 OK");
    await client.write(latin1Bytes("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n"));
    const second = await readUntil(client, (s) => s.endsWith("Domain not in allowlist."));
    expect(second).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: evil\.example is not in the allowlist\r\n/);
    await client.closeWrite();
    await done;
    expect(log.dials).toEqual([{ host: "127.0.0.1", port: ORIGIN_PORT + 1 }]);
  });

  it("CONNECT carries half-close both ways through the core relay", async () => {
    let upstreamSaw = "";
    const { net } = tripwireNet({
      origins: {
        [ORIGIN_PORT]: (conn) => {
          void (async () => {
            upstreamSaw = await readAllText(conn); // until the client's FIN arrives through the tunnel
            await conn.write(latin1Bytes(`echo:${upstreamSaw}`));
            await conn.closeWrite();
          })();
        },
      },
    });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${ORIGIN_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\nearly`));
    const established = await readUntil(client, headDone);
    expect(established).toBe("HTTP/1.1 200 OK\r\n\r\n");
    await client.write(latin1Bytes("+late"));
    await client.closeWrite();
    expect(await readAllText(client)).toBe("echo:early+late");
    await done;
    expect(upstreamSaw).toBe("early+late");
  });

  it("a CONNECT tunnel keeps no deadline timer while it is open (an idle tunnel costs no timer)", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    let upstreamConn: import("../../src/core/net/contract.ts").Conn | undefined;
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: (conn) => void (upstreamConn = conn) } });
    const { client, done } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${ORIGIN_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    expect(await readUntil(client, headDone)).toBe("HTTP/1.1 200 OK\r\n\r\n");
    expect(vi.getTimerCount()).toBe(0);
    await client.closeWrite();
    upstreamConn!.close();
    await done;
  });

  it("limited mode refuses POST after the host check and lets GET through", async () => {
    const origin = recordingOrigin(headDone);
    const { net } = tripwireNet({ origins: { [ORIGIN_PORT]: origin.handler } });
    const { client, done, state } = session(net, { allowed_domains: ["127.0.0.1"], mode: "limited" });
    const records: string[] = [];
    state.addSink((r) => records.push(`${r.scope}:${r.decision}:${r.reason}`));
    await client.write(latin1Bytes(`POST http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    const refused = await readUntil(client, (s) => s.endsWith("}"));
    expect(refused).toContain("x-proxy-error: blocked-by-method-policy");
    expect(JSON.parse(refused.slice(refused.indexOf("{")))).toMatchObject({ reason: "method_not_allowed", source: "mode_guard", decision: "deny" });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    expect(await readUntil(client, (s) => s.endsWith("ok"))).toMatch(/^HTTP\/1\.1 200 OK/);
    await client.closeWrite();
    await done;
    expect(records).toEqual(["domain_rule:allow:allowed", "mode_guard:deny:method_not_allowed", "domain_rule:allow:allowed"]);
    expect(state.blocked.list()).toHaveLength(1);
  });

  it("never forwards to its own listener, whatever the policy allows (proxy_loop)", async () => {
    const { net, log } = tripwireNet({});
    const { client, done, state } = session(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${PROXY_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${PROXY_PORT}\r\n\r\n`));
    const plain = await readUntil(client, (s) => s.endsWith("}"));
    expect(plain).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: 127\.0\.0\.1 is this proxy itself\r\n/);
    expect(plain).toContain("x-proxy-error: blocked-by-policy");
    expect(JSON.parse(plain.slice(plain.indexOf("{")))).toMatchObject({ reason: "proxy_loop", source: "proxy_state", decision: "deny", port: PROXY_PORT });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${PROXY_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${PROXY_PORT}\r\n\r\n`));
    const tunnel = await readUntil(client, (s) => s.endsWith("Request blocked by network policy."));
    expect(tunnel).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: 127\.0\.0\.1 is this proxy itself\r\n/);
    await client.closeWrite();
    await done;
    expect(log.dials).toEqual([]);
    expect(state.blocked.list().map((b) => [b.reason, b.source, b.protocol])).toEqual([
      ["proxy_loop", "proxy_state", "http"],
      ["proxy_loop", "proxy_state", "https_connect"],
    ]);
  });
});

describe("a disabled proxy", () => {
  it("refuses an x-unix-socket request too, before any socket is looked at or dialled", async () => {
    const { net } = tripwireNet({});
    const touched: string[] = [];
    net.connectUnix = async (path) => {
      touched.push(`dial ${path}`);
      throw new Error("tripwire: a disabled proxy dialled a unix socket");
    };
    net.realPath = async (path) => {
      touched.push(`realpath ${path}`);
      return path;
    };
    const { client, done, state } = session(net, { enabled: false, allow_unix_sockets: ["/tmp/cnp-allowed.sock"] });
    const records: string[] = [];
    state.addSink((r) => records.push(`${r.scope}/${r.reason}`));
    await client.write(latin1Bytes("GET /v1/info HTTP/1.1\r\nHost: localhost\r\nx-unix-socket: /tmp/cnp-allowed.sock\r\nConnection: close\r\n\r\n"));
    const reply = await readAllText(client);
    await client.closeWrite();
    await done;
    expect(reply).toMatch(/^HTTP\/1\.1 403 /);
    expect(reply).toContain('"reason":"proxy_disabled"');
    expect(records).toEqual(["proxy_state/proxy_disabled"]);
    expect(touched).toEqual([]);
  });
});

describe("names left to dial time (allow_local_binding = true)", () => {
  it("are resolved when dialled, once: the kept-alive upstream serves the next request without a lookup", async () => {
    const origin = recordingOrigin(headDone);
    const { net, log } = tripwireNet({ hosts: { "dev.example": ["127.0.0.1"] }, origins: { [ORIGIN_PORT]: origin.handler } });
    const { client, done } = session(net, { allowed_domains: ["dev.example"], allow_local_binding: true });
    const get = (path: string) => latin1Bytes(`GET http://dev.example:${ORIGIN_PORT}${path} HTTP/1.1\r\nHost: dev.example:${ORIGIN_PORT}\r\n\r\n`);
    await client.write(get("/one"));
    await readUntil(client, (s) => s.endsWith("ok"));
    await client.write(get("/two"));
    await readUntil(client, (s) => s.endsWith("ok"));
    await client.closeWrite();
    await done;
    expect(log.resolves).toEqual(["dev.example"]);
    expect(log.dials).toEqual([{ host: "127.0.0.1", port: ORIGIN_PORT }]);
    expect(origin.seen).toHaveLength(2);
  });

  it("a kept-alive connection keeps one timer per connection for its deadlines, and leaves none when it ends", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const origin = recordingOrigin(headDone);
    const { net } = tripwireNet({ hosts: { "dev.example": ["127.0.0.1"] }, origins: { [ORIGIN_PORT]: origin.handler } });
    const { client, done } = session(net, { allowed_domains: ["dev.example"], allow_local_binding: true });
    const get = (path: string) => latin1Bytes(`GET http://dev.example:${ORIGIN_PORT}${path} HTTP/1.1\r\nHost: dev.example:${ORIGIN_PORT}\r\n\r\n`);
    for (const path of ["/one", "/two", "/three"]) {
      await client.write(get(path));
      expect(await readUntil(client, (s) => s.endsWith("ok"))).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      // the client's next-head deadline and the upstream's response-head deadline: one timer each
      expect(vi.getTimerCount()).toBe(2);
    }
    await client.closeWrite();
    await done;
    expect(origin.seen).toHaveLength(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a name that resolves to the proxy's own listener is refused with proxy_loop when dialled, recorded by the gate", async () => {
    const { net, log } = tripwireNet({ hosts: { "self.example": ["127.0.0.1"] } });
    const { client, done, state } = session(net, { allowed_domains: ["self.example"], allow_local_binding: true });
    const records: string[] = [];
    state.addSink((r) => records.push(`${r.scope} ${r.decision} ${r.reason}`));
    await client.write(latin1Bytes(`GET http://self.example:${PROXY_PORT}/ HTTP/1.1\r\nHost: self.example:${PROXY_PORT}\r\nConnection: close\r\n\r\n`));
    const reply = await readAllText(client);
    await client.closeWrite();
    await done;
    expect(reply).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: self\.example is this proxy itself\r\n/);
    expect(records).toEqual(["domain_rule allow allowed", "proxy_state deny proxy_loop"]);
    expect(log.dials).toEqual([]);
  });
});
