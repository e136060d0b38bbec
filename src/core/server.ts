/**
 * A running proxy: the listeners of a {@link ListenPlan}, one session per accepted connection,
 * and a shutdown that closes listeners and every live connection (client and upstream).
 *
 * @module
 */
import { isLoopbackHost } from "./config/listen-url.ts";
import { refuseConnection } from "./gate/gate.ts";
import type { Refusal } from "./gate/types.ts";
import { Limits } from "./limits.ts";
import type { ConnectionEnd } from "./audit/connection.ts";
import { MAX_EARLY_EVENTS, type ByteCounts } from "./metrics/metrics.ts";
import type { ListenPlan } from "./config/types.ts";
import { serveHttpConnection } from "./http/session.ts";
import { serveSocks5Connection } from "./socks5/session.ts";
import { TARGET, type Logger } from "./log.ts";
import type { AttributionRegistry } from "./attribution.ts";
import type { UpstreamProxies } from "./net/upstream-proxy.ts";
import { formatAddr, type Conn, type FetchHandler, type Listener, type ListenOptions, type Net, type NetAddr } from "./net/contract.ts";
import { reachesListener } from "./net/ip.ts";
import { serveAsAdminListener, type AdminFetch } from "./admin/browser-guard.ts";
import type { SessionContext } from "./session-context.ts";
import type { LocalCa } from "./mitm/ca.ts";
import type { ProxyState } from "./state.ts";
import { UpstreamPool } from "./http/upstream-pool.ts";

/** How long shutdown waits for sessions still deciding after their connections were closed. */
export const SHUTDOWN_GRACE_MS = 1_000;

/**
 * Listener options that log accept trouble of `what` (bound at `where()`): one warning when a
 * burst of failed accepts starts, one with the count when accepting works again.
 */
function logAcceptErrors(log: Logger, what: string, where: () => NetAddr): ListenOptions {
  return {
    burst: true,
    onAcceptError(e) {
      const at = `${what} listener on ${formatAddr(where())}`;
      if (e.kind === "limited") {
        log.log("warn", TARGET.main, `${at}: ${e.error.message}`);
      } else if (e.kind === "failing") {
        log.log("warn", TARGET.main, `${at}: accepting a connection failed (${e.error.message}); retrying with backoff, further failures are counted`);
      } else {
        log.log("warn", TARGET.main, `${at}: accepting again after ${e.failures} failed accept${e.failures === 1 ? "" : "s"} in ${e.durationMs} ms`);
      }
    },
  };
}

/** Connections over `max_connections` answered at once; more are closed unanswered. */
export const MAX_REFUSING = 64;
/** At most one `too_many_connections` record (log line, audit event, `/blocked` entry) per this many ms. */
export const REFUSAL_RECORD_INTERVAL_MS = 1_000;

/** How a listener serves its connections, and refuses one over `max_connections`. */
interface Front {
  readonly protocol: "http" | "socks5_tcp";
  /** The `protocol` attribute of its byte counts. */
  readonly metricsProtocol: "http" | "socks5";
  serve(conn: Conn, ctx: SessionContext): Promise<ConnectionEnd>;
  refuse(conn: Conn, ctx: SessionContext, refusal: Refusal): Promise<unknown>;
}

const HTTP_FRONT: Front = {
  protocol: "http",
  metricsProtocol: "http",
  serve: (conn, ctx) => serveHttpConnection(conn, ctx),
  refuse: (conn, ctx, refusal) => serveHttpConnection(conn, ctx, refusal),
};

const SOCKS5_FRONT: Front = {
  protocol: "socks5_tcp",
  metricsProtocol: "socks5",
  serve: (conn, ctx) => serveSocks5Connection(conn, ctx),
  refuse: (conn, ctx) => serveSocks5Connection(conn, ctx, true),
};

/** What {@link startProxy} needs. */
export interface ProxyServerOptions {
  readonly net: Net;
  readonly state: ProxyState;
  readonly log: Logger;
  readonly plan: ListenPlan;
  /**
   * The admin API handler (an admin app's `fetch`); served at `plan.admin` when given. It gets,
   * as its Hono env, the listener's bound host so the admin app's browser guard accepts `Host:
   * <that address>` when `dangerously_allow_non_loopback_admin` is on (loopback always is).
   */
  readonly admin?: AdminFetch;
  /** Credentials minted for per-command attribution. */
  readonly attribution?: AttributionRegistry;
  /** The process's upstream proxies (used while `allow_upstream_proxy` is on). */
  readonly upstream?: UpstreamProxies;
  /** Extra PEM roots for TLS origination. */
  readonly extraCa?: string;
  /** The local CA for TLS interception (`mitm`), loaded or made on first need. */
  readonly mitmCa?: () => Promise<LocalCa>;
}

/** The real bound addresses. */
export interface ProxyAddresses {
  readonly http: NetAddr;
  /** Present when SOCKS5 is enabled. */
  readonly socks5?: NetAddr;
  /** Present when the admin API is served. */
  readonly admin?: NetAddr;
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
  const listeners: Listener[] = [];
  /** Bound addresses of our listeners: never a forwarding target. */
  const own: NetAddr[] = [];
  const shutdownSignal = new AbortController();
  const pool = new UpstreamPool(opts.state);
  const limits = new Limits();
  const metrics = opts.state.metrics;
  metrics.observeOpen(() => ({ connections: limits.openConnections, tunnels: limits.openTunnels }));
  /** The client connections open now, with their listener's protocol: their bytes as they go. */
  const liveClients = new Map<Conn, string>();
  metrics.observeLiveBytes(() => {
    const totals = new Map<string, ByteCounts>();
    for (const [conn, protocol] of liveClients) {
      const t = totals.get(protocol) ?? { toOrigin: 0, toClient: 0 };
      t.toOrigin += conn.bytesRead?.() ?? 0;
      t.toClient += conn.bytesWritten?.() ?? 0;
      totals.set(protocol, t);
    }
    return totals;
  });
  const ctx: SessionContext = {
    limits,
    observeConnect: (ms) => metrics.latency("connect", ms),
    pool,
    closing: shutdownSignal.signal,
    attribution: opts.attribution,
    upstream: opts.upstream,
    extraCa: opts.extraCa,
    mitmCa: opts.mitmCa,
    net: opts.net,
    state: opts.state,
    log: opts.log,
    isOwnListener: (addr) => reachesListener(own, addr),
    track(conn) {
      if (stopping) conn.close();
      conns.add(conn);
    },
    untrack(conn) {
      conns.delete(conn);
    },
  };
  /**
   * Each accepted connection is counted (`max_connections`, across listeners); one over the
   * limit is recorded and answered by its front (`503`, SOCKS5 `0x01`), then closed. A refused
   * connection is counted while it is being answered too: a flood of them still holds sockets.
   */
  const serve = (front: Front, listener: () => NetAddr) => (conn: Conn) => {
    if (stopping) return conn.close();
    let s: Promise<void>;
    if (limits.openConnection(opts.state.snapshot().network.max_connections)) {
      const accepted = Date.now();
      liveClients.set(conn, front.metricsProtocol);
      // Let go of the session here, in its handlers, not in a `finally()`, which would add three
      // closures per connection. One that failed (it should not: it catches its own failures)
      // is let go of all the same, and its failure stays unhandled, as it was.
      const letGo = (): void => {
        sessions.delete(s);
        liveClients.delete(conn);
        limits.closeConnection();
      };
      const failed = (e: unknown): never => {
        letGo();
        throw e;
      };
      s = front.serve(conn, ctx).then((ended) => {
        letGo();
        // what the client sent went on towards origins; what it got came from them
        const toOrigin = conn.bytesRead?.() ?? 0;
        const toClient = conn.bytesWritten?.() ?? 0;
        metrics.bytes(front.metricsProtocol, "to_origin", toOrigin);
        metrics.bytes(front.metricsProtocol, "to_client", toClient);
        const at = listener();
        opts.state.recordConnection({
          timestamp: Date.now(),
          kind: "connection",
          protocol: front.protocol,
          host: at.host,
          port: at.port,
          client: formatAddr(conn.remote),
          bytesToOrigin: toOrigin,
          bytesToClient: toClient,
          durationMs: Date.now() - accepted,
          ended: stopping ? "shutdown" : ended,
        });
      }, failed);
    } else {
      // Refused: answered within a short deadline, not counted against the cap; past
      // MAX_REFUSING at once, closed unanswered. Records are kept to one a second.
      if (refusing >= MAX_REFUSING) {
        refuseConnection(ctx, front.protocol, listener(), formatAddr(conn.remote), false); // counted, not recorded
        return conn.close();
      }
      refusing++;
      const now = Date.now();
      const record = now - lastRefusalRecord >= REFUSAL_RECORD_INTERVAL_MS;
      if (record) lastRefusalRecord = now;
      const refusal = refuseConnection(ctx, front.protocol, listener(), formatAddr(conn.remote), record);
      const done = (): void => {
        sessions.delete(s);
        refusing--;
      };
      s = front.refuse(conn, ctx, refusal).then(done, (e: unknown) => {
        done();
        throw e;
      });
    }
    sessions.add(s);
  };
  let refusing = 0;
  let lastRefusalRecord = -Infinity;
  const bind = async (what: string, addr: NetAddr, front: Front): Promise<NetAddr> => {
    let l: Listener;
    try {
      l = await opts.net.listenTcp(addr, serve(front, () => l?.addr ?? addr), logAcceptErrors(opts.log, what, () => l?.addr ?? addr));
    } catch (e) {
      await Promise.allSettled(listeners.map((x) => x.close()));
      throw new Error(`cannot listen for ${what} on ${formatAddr(addr)}: ${(e as Error).message}`, { cause: e });
    }
    listeners.push(l);
    own.push(l.addr);
    opts.log.log("info", TARGET.main, `${what} listening on ${formatAddr(l.addr)}`);
    return l.addr;
  };
  const bindAdmin = async (handler: AdminFetch): Promise<NetAddr> => {
    let l: Listener;
    try {
      if (!opts.net.serveHttp) throw new Error("this runtime adapter cannot serve HTTP");
      const nonLoopback = opts.state.snapshot().network.dangerously_allow_non_loopback_admin;
      const served: FetchHandler = serveAsAdminListener(handler, opts.plan.admin.host, nonLoopback);
      l = await opts.net.serveHttp(opts.plan.admin, served, logAcceptErrors(opts.log, "admin API", () => l?.addr ?? opts.plan.admin));
    } catch (e) {
      await Promise.allSettled(listeners.map((x) => x.close()));
      throw new Error(`cannot listen for the admin API on ${formatAddr(opts.plan.admin)}: ${(e as Error).message}`, { cause: e });
    }
    listeners.push(l);
    own.push(l.addr);
    opts.log.log("info", TARGET.main, `admin API listening on ${formatAddr(l.addr)}`);
    return l.addr;
  };
  let http: NetAddr;
  let socks5: NetAddr | undefined;
  let admin: NetAddr | undefined;
  try {
    http = await bind("HTTP proxy", opts.plan.http, HTTP_FRONT);
    socks5 = opts.plan.socks5 ? await bind("SOCKS5 proxy", opts.plan.socks5, SOCKS5_FRONT) : undefined;
    admin = opts.admin ? await bindAdmin(opts.admin) : undefined;
  } catch (e) {
    pool.close(); // nothing will run: stop following the state, close what was parked
    throw e;
  }
  metrics.onDropped = (n) => opts.log.log("warn", TARGET.main, `${n} metric events made while the metrics loaded were dropped (more than ${MAX_EARLY_EVENTS})`);
  // The metrics SDK loads now that the listeners are up (what happened meanwhile is kept).
  void metrics.start().catch((e: Error) => opts.log.log("warn", TARGET.main, `metrics unavailable: ${e.message}`));
  // Unix socket proxying is loopback-only (docs/behaviour.md §1.5): a reload may not turn it on
  // while a proxy listener is bound elsewhere; only a restart re-plans the listeners.
  const exposed = [http, socks5].find((a) => a !== undefined && !isLoopbackHost(a.host));
  const removeCheck = exposed
    ? opts.state.addCheck((n) =>
        n.allow_unix_sockets.length > 0 || n.dangerously_allow_all_unix_sockets
          ? `unix socket proxying needs loopback listeners, and a proxy listener is bound on ${formatAddr(exposed)}: restart the proxy to apply this configuration`
          : undefined,
      )
    : undefined;
  return {
    addresses: { http, ...(socks5 && { socks5 }), ...(admin && { admin }) },
    async shutdown() {
      removeCheck?.();
      stopping = true;
      shutdownSignal.abort(new Error("proxy shutting down"));
      pool.close();
      // Node's server.close() settles only once its connections are gone: close them too.
      const closing = listeners.map((l) => l.close().catch(() => undefined));
      for (const c of conns) c.close();
      await Promise.allSettled(closing);
      // A session can still be waiting for a decider or a DNS answer; it can no longer open a
      // connection (track() closes it, dials are aborted), so it is given a grace period only.
      await Promise.race([Promise.allSettled([...sessions]), new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS))]);
    },
  };
}

