/**
 * How forwarding keys the shared upstream pool (src/core/http/forward.ts with
 * src/core/http/upstream-pool.ts), driven through whole HTTP sessions on an in-memory network:
 * a connection parked after a plain request never carries an absolute-form `https://` request
 * to the same host and port (that one is dialled with TLS, verified for the host), and a
 * connection to an upstream proxy never carries a request sent directly, nor the other way
 * round. Each test also shows a request that does take the parked connection, so the pool is
 * in play. (A name's pinned addresses are part of the key as well; the gate pins only
 * addresses that are not local, which a test here may not name, so that part is covered by the
 * key's own unit test in upstream-pool.test.ts.)
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { UpstreamPool } from "../../src/core/http/upstream-pool.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import type { Conn, Net, NetAddr } from "../../src/core/net/contract.ts";
import { parseProxyUrl, type UpstreamProxies } from "../../src/core/net/upstream-proxy.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, tripwireNet } from "../helpers/memory-net.ts";

const ORIGIN_PORT = 8000;
const UPSTREAM_PROXY_PORT = 9000;

/** An in-memory server answering every request head with a kept-alive 200; what it saw, by connection. */
function server(name: string) {
  const seen: { conn: number; line: string }[] = [];
  let conns = 0;
  const handler = (conn: Conn): void => {
    const index = conns++;
    void (async () => {
      let text = "";
      for (;;) {
        const chunk = await conn.read();
        if (chunk === null) return;
        text += latin1(chunk);
        for (let end = text.indexOf("\r\n\r\n"); end >= 0; end = text.indexOf("\r\n\r\n")) {
          seen.push({ conn: index, line: text.slice(0, text.indexOf("\r\n")) });
          text = text.slice(end + 4);
          await conn.write(latin1Bytes(`HTTP/1.1 200 OK\r\nContent-Length: ${name.length}\r\n\r\n${name}`));
        }
      }
    })().catch(() => {});
  };
  return { seen, handler, connections: () => conns };
}

/** Sessions sharing one pool; `upstream()` is read at each request (as the gate reads `ctx.upstream`). */
function proxy(net: Net, overrides: Partial<NetworkConfig>, upstream: () => UpstreamProxies | undefined = () => undefined) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, ...overrides }, { resolve: (h) => net.resolve(h) });
  const pool = new UpstreamPool(state);
  const ctx: SessionContext = {
    net,
    state,
    log: silentLogger,
    track: () => {},
    untrack: () => {},
    isOwnListener: () => false,
    pool,
    get upstream() {
      return upstream();
    },
  };
  /** One request on a client connection of its own that closes after it; the answer. */
  const once = async (target: string): Promise<string> => {
    const [client, end] = connPair();
    const done = serveHttpConnection(end, ctx);
    const host = new URL(target).host;
    await client.write(latin1Bytes(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    let answer = "";
    for (let c = await client.read(); c !== null; c = await client.read()) answer += latin1(c);
    await client.closeWrite(); // the session's lingering close waits for the client's end
    await done;
    return answer;
  };
  return { once, pool };
}

describe("the pool's key, as forwarding builds it", () => {
  it("a plain connection never carries an https:// request to the same host and port; that one goes over TLS for the host", async () => {
    const origin = server("origin");
    const { net, log } = tripwireNet({ hosts: { "svc.test": ["127.0.0.1"] }, origins: { [ORIGIN_PORT]: origin.handler } });
    const tlsDials: { addr: NetAddr; serverName: string }[] = [];
    const withTls: Net = {
      ...net,
      async connectTls(addr, tls, options) {
        tlsDials.push({ addr, serverName: tls.serverName });
        return net.connectTcp(addr, options);
      },
    };
    const p = proxy(withTls, { allowed_domains: ["svc.test"], allow_local_binding: true });
    onTestFinished(() => p.pool.close());
    expect(await p.once(`http://svc.test:${ORIGIN_PORT}/plain`)).toMatch(/^HTTP\/1\.1 200 /);
    expect(p.pool.size).toBe(1);
    expect(await p.once(`https://svc.test:${ORIGIN_PORT}/tls`)).toMatch(/^HTTP\/1\.1 200 /);
    expect(tlsDials).toEqual([{ addr: { host: "127.0.0.1", port: ORIGIN_PORT }, serverName: "svc.test" }]);
    // the plain one is still parked, and serves the next plain request
    expect(await p.once(`http://svc.test:${ORIGIN_PORT}/plain-again`)).toMatch(/^HTTP\/1\.1 200 /);
    expect(origin.seen).toEqual([
      { conn: 0, line: "GET /plain HTTP/1.1" },
      { conn: 1, line: "GET /tls HTTP/1.1" },
      { conn: 0, line: "GET /plain-again HTTP/1.1" },
    ]);
    expect(log.violations).toEqual([]);
  });

  it("a connection to an upstream proxy never carries a request sent directly, nor a direct one a proxied request", async () => {
    const origin = server("origin");
    const upstreamProxy = server("via-proxy");
    const { net, log } = tripwireNet({ hosts: { "svc.test": ["127.0.0.1"] }, origins: { [ORIGIN_PORT]: origin.handler, [UPSTREAM_PROXY_PORT]: upstreamProxy.handler } });
    const through: UpstreamProxies = { http: parseProxyUrl(`http://127.0.0.1:${UPSTREAM_PROXY_PORT}`), noProxy: [] };
    let chained = true;
    const p = proxy(net, { allowed_domains: ["svc.test"], allow_local_binding: true, allow_upstream_proxy: true }, () => (chained ? through : { noProxy: [] }));
    onTestFinished(() => p.pool.close());
    const target = (path: string) => `http://svc.test:${ORIGIN_PORT}${path}`;
    expect(await p.once(target("/via-1"))).toMatch(/via-proxy$/);
    chained = false;
    expect(await p.once(target("/direct-1"))).toMatch(/origin$/);
    chained = true;
    expect(await p.once(target("/via-2"))).toMatch(/via-proxy$/);
    chained = false;
    expect(await p.once(target("/direct-2"))).toMatch(/origin$/);
    // each kind of connection was made once and served only its own kind
    expect(upstreamProxy.seen).toEqual([
      { conn: 0, line: `GET ${target("/via-1")} HTTP/1.1` },
      { conn: 0, line: `GET ${target("/via-2")} HTTP/1.1` },
    ]);
    expect(origin.seen).toEqual([
      { conn: 0, line: "GET /direct-1 HTTP/1.1" },
      { conn: 0, line: "GET /direct-2 HTTP/1.1" },
    ]);
    expect(log.violations).toEqual([]);
  });
});
