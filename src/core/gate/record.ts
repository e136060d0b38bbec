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

/** Record the allow of an `x-unix-socket` request (domain rule scope, host `unix-socket`). */
export function recordUnixAllow(ctx: SessionContext, snap: ProxySnapshot, host: string, facts: RequestFacts): void {
  ctx.state.record({ timestamp: Date.now(), scope: "domain_rule", decision: "allow", source: "baseline_policy", reason: "allowed", override: false, host, mode: snap.mode, ...facts });
}
