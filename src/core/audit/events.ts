/**
 * One record per policy decision, produced by every session (HTTP, CONNECT, SOCKS5) and fanned
 * out to the blocked-request ring, the audit exporter and the logs.
 *
 * @module
 */
import type { NetworkMode } from "../config/types.ts";
import type { DecisionSource, ProxyProtocol } from "../policy/types.ts";

/** What kind of rule made the decision (the audit `network.policy.scope`). */
export type DecisionScope = "domain_rule" | "mode_guard" | "proxy_state";

/** A decision as it is recorded. Never holds a URL path, a query or a credential. */
export interface DecisionRecord {
  /** When it was decided, milliseconds since the Unix epoch. */
  readonly timestamp: number;
  readonly scope: DecisionScope;
  readonly decision: "allow" | "deny" | "ask";
  readonly source: DecisionSource;
  /** `allowed` for an allow; otherwise the block reason. */
  readonly reason: string;
  /** True only when a decider turned an allowlist miss into an allow. */
  readonly override: boolean;
  readonly protocol: ProxyProtocol;
  /** Normalised host (or the raw host when it could not be parsed). */
  readonly host: string;
  readonly port: number;
  /** HTTP method, or `undefined` for SOCKS5. */
  readonly method?: string;
  /** `ip:port` of the client, when known. */
  readonly client?: string;
  readonly mode: NetworkMode;
}

/** Receives every decision. Must not throw and must not block. */
export type DecisionSink = (record: DecisionRecord) => void;
