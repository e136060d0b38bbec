/**
 * A running proxy: the listeners of a {@link ListenPlan}, one session per accepted connection,
 * and a shutdown that closes listeners and every live connection (client and upstream).
 *
 * @module
 */
import type { ListenPlan } from "./config/types.ts";
import { serveHttpConnection } from "./http/session.ts";
import { TARGET, type Logger } from "./log.ts";
import { formatAddr, type Conn, type Listener, type Net, type NetAddr } from "./net/contract.ts";
import type { SessionContext } from "./session-context.ts";
import type { ProxyState } from "./state.ts";

/** What {@link startProxy} needs. */
export interface ProxyServerOptions {
  readonly net: Net;
  readonly state: ProxyState;
  readonly log: Logger;
  readonly plan: ListenPlan;
}

/** The real bound addresses. */
export interface ProxyAddresses {
  readonly http: NetAddr;
}

/** Handle of a running proxy. */
export interface RunningProxy {
  readonly addresses: ProxyAddresses;
  /** Stop listening, close every live connection, resolve when all sessions ended. */
  shutdown(): Promise<void>;
}

/** Bind the listeners and start serving. Rejects (binding nothing) when a bind fails. */
export async function startProxy(opts: ProxyServerOptions): Promise<RunningProxy> {
  const conns = new Set<Conn>();
  const sessions = new Set<Promise<void>>();
  let stopping = false;
  const ctx: { -readonly [K in keyof SessionContext]: SessionContext[K] } = {
    net: opts.net,
    state: opts.state,
    log: opts.log,
    isOwnListener: () => false,
    track(conn) {
      if (stopping) conn.close();
      conns.add(conn);
      return () => conns.delete(conn);
    },
  };
  const listeners: Listener[] = [];
  const own: NetAddr[] = [];
  ctx.isOwnListener = (addr) => own.some((l) => l.port === addr.port && (isUnspecified(l.host) || sameIp(l.host, addr.host)));
  const http = await opts.net.listenTcp(opts.plan.http, (conn) => {
    if (stopping) return conn.close();
    const s = serveHttpConnection(conn, ctx);
    sessions.add(s);
    void s.finally(() => sessions.delete(s));
  });
  listeners.push(http);
  own.push(http.addr);
  opts.log.log("info", TARGET.main, `HTTP proxy listening on ${formatAddr(http.addr)}`);
  return {
    addresses: { http: http.addr },
    async shutdown() {
      stopping = true;
      // Node's server.close() settles only once its connections are gone: close them too.
      const closing = listeners.map((l) => l.close().catch(() => undefined));
      for (const c of conns) c.close();
      await Promise.allSettled([...closing, ...sessions]);
    },
  };
}

/** `0.0.0.0` or `::`: a listener on every local address. */
function isUnspecified(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** Same IP, treating `::ffff:a.b.c.d` as `a.b.c.d`. */
function sameIp(a: string, b: string): boolean {
  const strip = (h: string) => (h.startsWith("::ffff:") && h.includes(".") ? h.slice(7) : h).toLowerCase();
  return strip(a) === strip(b);
}
