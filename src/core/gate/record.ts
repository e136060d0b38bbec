/**
 * The records the gate makes (the audit schema: one domain-policy event per host evaluation,
 * one block event per mode or state refusal). Only the gate calls these.
 *
 * @module
 */
import type { HostVerdict } from "../policy/types.ts";
import type { RequestFacts, SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";

/**
 * Every record is built as one object literal with all fields in the same order (no spreads): one
 * runs per request, and a single shape keeps the property stores cheap for the sinks too.
 */

/** Record a host verdict (domain rule scope). */
export function recordVerdict(ctx: SessionContext, snap: ProxySnapshot, verdict: HostVerdict, facts: RequestFacts): void {
  const allowed = verdict.allowed;
  ctx.state.record({
    timestamp: Date.now(),
    scope: "domain_rule",
    decision: allowed ? "allow" : verdict.decision,
    source: verdict.source,
    reason: allowed ? "allowed" : verdict.reason,
    override: allowed ? verdict.override : false,
    protocol: facts.protocol,
    host: verdict.host,
    port: facts.port,
    method: facts.method,
    client: facts.client,
    mode: snap.mode,
  });
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
  ctx.state.record({
    timestamp: Date.now(),
    scope,
    decision: "deny",
    source: scope,
    reason,
    override: false,
    protocol: facts.protocol,
    host,
    port: facts.port,
    method: facts.method,
    client: facts.client,
    mode: snap.mode,
  });
}

/** Record the allow of an `x-unix-socket` request (domain rule scope, host `unix-socket`). */
export function recordUnixAllow(ctx: SessionContext, snap: ProxySnapshot, host: string, facts: RequestFacts): void {
  ctx.state.record({
    timestamp: Date.now(),
    scope: "domain_rule",
    decision: "allow",
    source: "baseline_policy",
    reason: "allowed",
    override: false,
    protocol: facts.protocol,
    host,
    port: facts.port,
    method: facts.method,
    client: facts.client,
    mode: snap.mode,
  });
}
