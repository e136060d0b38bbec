/**
 * The proxy's live state: configuration, compiled policy and mode as one immutable snapshot
 * that sessions read once per request, so a change is atomic (a request sees the old policy or
 * the new one, never a mix), plus the decision fan-out (blocked ring and sinks).
 *
 * @module
 */
import { BlockedLog } from "./audit/blocked.ts";
import type { DecisionRecord, DecisionSink } from "./audit/events.ts";
import type { NetworkConfig, NetworkMode } from "./config/types.ts";
import { PolicyEngine, type PolicyOptions } from "./policy/decide.ts";

/** What one request is decided against. */
export interface ProxySnapshot {
  readonly network: Readonly<NetworkConfig>;
  readonly policy: PolicyEngine;
  readonly mode: NetworkMode;
}

/** Live, swappable state shared by every session. */
export class ProxyState {
  private current: ProxySnapshot;
  /** Recent refusals (`GET /blocked`). */
  readonly blocked = new BlockedLog();
  private readonly sinks: DecisionSink[] = [];

  /** Compiles `network`; throws (PatternError) on an invalid pattern. */
  constructor(
    network: NetworkConfig,
    private readonly policyOptions: PolicyOptions,
  ) {
    this.current = compileSnapshot(network, policyOptions);
  }

  /** The snapshot in force now. */
  snapshot(): ProxySnapshot {
    return this.current;
  }

  /** Replace the configuration. On error nothing changes and the error is thrown. */
  replaceConfig(network: NetworkConfig): void {
    this.current = compileSnapshot(network, this.policyOptions);
  }

  /** Switch mode; the lists stay as they are. */
  setMode(mode: NetworkMode): void {
    const s = this.current;
    this.current = { ...s, mode, network: { ...s.network, mode } };
  }

  /** Add a receiver of every decision. */
  addSink(sink: DecisionSink): void {
    this.sinks.push(sink);
  }

  /** Record a decision: blocked ring plus every sink. Sinks that throw are ignored. */
  record(r: DecisionRecord): void {
    this.blocked.record(r);
    for (const s of this.sinks) {
      try {
        s(r);
      } catch {
        // A failing sink must never affect proxying.
      }
    }
  }
}

function compileSnapshot(network: NetworkConfig, options: PolicyOptions): ProxySnapshot {
  const copy: NetworkConfig = structuredClone(network);
  return Object.freeze({ network: Object.freeze(copy), policy: PolicyEngine.compile(copy, options), mode: copy.mode });
}
