/**
 * What every protocol session gets from the server that accepted its connection.
 *
 * @module
 */
import type { Attribution, AttributionRegistry } from "./attribution.ts";
import type { Limits } from "./limits.ts";
import type { Logger } from "./log.ts";
import type { LocalCa } from "./mitm/ca.ts";
import type { Conn, Net, NetAddr } from "./net/contract.ts";
import type { UpstreamProxies } from "./net/upstream-proxy.ts";
import type { ProxyProtocol } from "./policy/types.ts";
import type { ProxyState } from "./state.ts";
import type { UpstreamPool } from "./http/upstream-pool.ts";

/** Capabilities shared by the sessions of one running proxy. */
export interface SessionContext {
  readonly net: Net;
  readonly state: ProxyState;
  readonly log: Logger;
  /**
   * Register a connection so shutdown can close it; {@link untrack} it when done. (Two methods
   * rather than a returned closure: an idle tunnel keeps two tracked connections.)
   */
  track(conn: Conn): void;
  /** Forget a connection registered by {@link track} (nothing for one that is not). */
  untrack(conn: Conn): void;
  /** True when `addr` is one of this proxy's own listeners (never a forwarding target). */
  isOwnListener(addr: NetAddr): boolean;
  /** Aborted when the proxy shuts down. */
  readonly closing?: AbortSignal;
  /** PEM roots trusted, beyond the system's, when originating TLS (`CODEX_CA_CERTIFICATE`, `SSL_CERT_FILE`). */
  readonly extraCa?: string;
  /** The process's upstream proxies; used when `allow_upstream_proxy` is on. */
  readonly upstream?: UpstreamProxies;
  /** Idle upstream connections shared by the sessions (absent: each session keeps its own only). */
  readonly pool?: UpstreamPool;
  /** Credentials minted by `envFor`; requests presenting one are attributed to its command. */
  readonly attribution?: AttributionRegistry;
  /** The local CA for TLS interception (`mitm`), loaded or made on first need. */
  readonly mitmCa?: () => Promise<LocalCa>;
  /** Open connections and tunnels, and the clients' request rates (`max_*` keys). */
  readonly limits?: Limits;
  /** Hears how long each successful upstream connect took, in ms (the metrics). */
  readonly observeConnect?: (ms: number) => void;
}

/** The request facts a decision record carries. */
export interface RequestFacts {
  readonly protocol: ProxyProtocol;
  readonly port: number;
  readonly method?: string;
  readonly client?: string;
}

/** The attribution fields of a policy request for a presented credential (none when unknown). */
export function attributed(ctx: SessionContext, credential: string | undefined): Attribution {
  const a = ctx.attribution?.lookup(credential);
  return a ? { command: a.command, exec_policy_hint: a.exec_policy_hint } : {};
}
