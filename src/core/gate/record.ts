/**
 * The records the gate makes (the audit schema: one domain-policy event per host evaluation,
 * one block event per mode or state refusal). Only the gate calls these.
 *
 * @module
 */
import type { DecisionRecord } from "../audit/events.ts";
import type { HostVerdict } from "../policy/types.ts";
import type { RequestFacts, SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";

/** Record a host verdict (domain rule scope). */
export function recordVerdict(ctx: SessionContext, snap: ProxySnapshot, verdict: HostVerdict, facts: RequestFacts): void {
  if (verdict.allowed) record(ctx, snap, verdict.host, facts, "domain_rule", "allow", verdict.source, "allowed", verdict.override);
  else record(ctx, snap, verdict.host, facts, "domain_rule", verdict.decision, verdict.source, verdict.reason, false);
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
  record(ctx, snap, host, facts, scope, "deny", scope, reason, false);
}

/** Record a request the limited-mode guard let through by a `limited_mode_allow` rule. */
export function recordModeException(ctx: SessionContext, snap: ProxySnapshot, host: string, facts: RequestFacts, reason: string): void {
  record(ctx, snap, host, facts, "mode_guard", "allow", "mode_guard", reason, false);
}

/** Record the allow of an `x-unix-socket` request (domain rule scope, host `unix-socket`). */
export function recordUnixAllow(ctx: SessionContext, snap: ProxySnapshot, host: string, facts: RequestFacts): void {
  record(ctx, snap, host, facts, "domain_rule", "allow", "baseline_policy", "allowed", false);
}

/**
 * Every record is built here, as one object literal with all fields in the same order (no
 * spreads): one runs per request, and a single shape keeps the property stores cheap for the
 * sinks too.
 */
function record(
  ctx: SessionContext,
  snap: ProxySnapshot,
  host: string,
  facts: RequestFacts,
  scope: DecisionRecord["scope"],
  decision: DecisionRecord["decision"],
  source: DecisionRecord["source"],
  reason: string,
  override: boolean,
): void {
  ctx.state.record({
    timestamp: Date.now(),
    scope,
    decision,
    source,
    reason,
    override,
    protocol: facts.protocol,
    host,
    port: facts.port,
    method: facts.method,
    client: facts.client,
    mode: snap.mode,
  });
}
