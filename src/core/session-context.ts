/**
 * What every protocol session gets from the server that accepted its connection.
 *
 * @module
 */
import type { Attribution, AttributionRegistry } from "./attribution.ts";
import type { DecisionRecord } from "./audit/events.ts";
import type { Logger } from "./log.ts";
import type { Conn, Net, NetAddr } from "./net/contract.ts";
import type { UpstreamProxies } from "./net/upstream-proxy.ts";
import type { HostVerdict, ProxyProtocol } from "./policy/types.ts";
import type { ProxySnapshot, ProxyState } from "./state.ts";

/** Capabilities shared by the sessions of one running proxy. */
export interface SessionContext {
  readonly net: Net;
  readonly state: ProxyState;
  readonly log: Logger;
  /** Register a connection so shutdown can close it; call the returned function when done. */
  track(conn: Conn): () => void;
  /** True when `addr` is one of this proxy's own listeners (never a forwarding target). */
  isOwnListener(addr: NetAddr): boolean;
  /** Aborted when the proxy shuts down. */
  readonly closing?: AbortSignal;
  /** PEM roots trusted, beyond the system's, when originating TLS (`CODEX_CA_CERTIFICATE`, `SSL_CERT_FILE`). */
  readonly extraCa?: string;
  /** The process's upstream proxies; used when `allow_upstream_proxy` is on. */
  readonly upstream?: UpstreamProxies;
  /** Credentials minted by `envFor`; requests presenting one are attributed to its command. */
  readonly attribution?: AttributionRegistry;
}

/** The request facts a decision record carries. */
export interface RequestFacts {
  readonly protocol: ProxyProtocol;
  readonly port: number;
  readonly method?: string;
  readonly client?: string;
}

/** Record a host verdict (domain rule scope). */
export function recordVerdict(ctx: SessionContext, snap: ProxySnapshot, verdict: HostVerdict, facts: RequestFacts): void {
  const base = { timestamp: Date.now(), host: verdict.host, mode: snap.mode, ...facts, scope: "domain_rule" as const };
  const record: DecisionRecord = verdict.allowed
    ? { ...base, decision: "allow", source: verdict.source, reason: "allowed", override: verdict.override }
    : { ...base, decision: verdict.decision, source: verdict.source, reason: verdict.reason, override: false };
  ctx.state.record(record);
}

/** Record a refusal that is not about the domain: limited mode or the proxy's own state. */
export function recordStateBlock(
  ctx: SessionContext,
  snap: ProxySnapshot,
  host: string,
  facts: RequestFacts,
  scope: "mode_guard" | "proxy_state",
  reason: string,
): void {
  ctx.state.record({ timestamp: Date.now(), scope, decision: "deny", source: scope, reason, override: false, host, mode: snap.mode, ...facts });
}

/** The attribution fields of a policy request for a presented credential (none when unknown). */
export function attributed(ctx: SessionContext, credential: string | undefined): Attribution {
  const a = ctx.attribution?.lookup(credential);
  return a ? { command: a.command, exec_policy_hint: a.exec_policy_hint } : {};
}
