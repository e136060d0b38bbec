/**
 * The proxy's live state: configuration, compiled policy and mode as one immutable snapshot
 * that sessions read once per request, so a change is atomic (a request sees the old policy or
 * the new one, never a mix), plus the decision fan-out (blocked ring and sinks). Reloads and
 * mode changes are checked against the managed constraints and change nothing when refused.
 *
 * @module
 */
import { BlockedLog } from "./audit/blocked.ts";
import type { ConnectionRecord, ConnectionSink } from "./audit/connection.ts";
import type { DecisionRecord, DecisionSink } from "./audit/events.ts";
import { checkConstraints, type NetworkConstraints } from "./config/constraints.ts";
import type { NetworkConfig, NetworkMode } from "./config/types.ts";
import { silentLogger, TARGET, type Logger } from "./log.ts";
import type { HookSecrets } from "./mitm/hook-secrets.ts";
import { HookTable } from "./mitm/hooks.ts";
import { LimitedModeExceptions } from "./policy/limited-allow.ts";
import { ProxyMetrics } from "./metrics/metrics.ts";
import { PolicyEngine, type PolicyOptions } from "./policy/decide.ts";

/** What one request is decided against. */
export interface ProxySnapshot {
  readonly network: Readonly<NetworkConfig>;
  readonly policy: PolicyEngine;
  readonly mode: NetworkMode;
  /** `network.mitm_hooks` compiled, with their secrets. */
  readonly hooks: HookTable;
  /** `network.limited_mode_allow` compiled. */
  readonly limitedAllow: LimitedModeExceptions;
}

/** Where a reload reads the configuration from (the config file, or the embedding app). */
export type ConfigSource = () => Promise<NetworkConfig> | NetworkConfig;

/** A reload or mode change that was refused; the previous state stays in force. */
export class StateChangeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StateChangeError";
  }
}

/** Optional parts of {@link ProxyState}. */
export interface ProxyStateOptions {
  /** Re-read by {@link ProxyState.reload}. Without one, reload re-applies the current config. */
  source?: ConfigSource;
  /** Limits no configuration, reload or mode change may widen. */
  constraints?: NetworkConstraints;
  /** The secrets the first configuration's hooks inject (`readHookSecrets`). */
  secrets?: HookSecrets;
  /** Reads the secrets of a reloaded configuration's hooks (again, so a rotated one is picked up). */
  readSecrets?: (network: NetworkConfig) => Promise<HookSecrets>;
  log?: Logger;
}

/** Live, swappable state shared by every session. */
export class ProxyState {
  private current: ProxySnapshot;
  /** Recent refusals (`GET /blocked`). */
  readonly blocked: BlockedLog = new BlockedLog();
  /** Decisions, open connections, bytes and latencies (`GET /metrics`). */
  readonly metrics: ProxyMetrics = new ProxyMetrics();
  private readonly sinks: DecisionSink[] = [];
  private readonly connectionSinks: ConnectionSink[] = [];
  private readonly subscribers = new Set<DecisionSink>();
  private readonly changeListeners = new Set<() => void>();
  private readonly checks = new Set<(network: Readonly<NetworkConfig>) => string | undefined>();
  private readonly log: Logger;
  /** The secrets the configuration in force was compiled with. */
  private secrets: HookSecrets;

  /**
   * Compiles `network`; throws (PatternError, StateChangeError for a constraint, ConfigError for
   * a hook secret missing from `options.secrets`) when invalid.
   */
  constructor(
    network: NetworkConfig,
    private readonly policyOptions: PolicyOptions,
    private readonly options: ProxyStateOptions = {},
  ) {
    this.log = options.log ?? silentLogger;
    this.secrets = options.secrets ?? new Map();
    this.addSink((r) => this.metrics.decision(r));
    this.current = this.compile(network, this.secrets);
  }

  /** The snapshot in force now. */
  snapshot(): ProxySnapshot {
    return this.current;
  }

  /** The managed constraints, if any. */
  get constraints(): NetworkConstraints | undefined {
    return this.options.constraints;
  }

  /**
   * Replace the configuration. On error (bad pattern, constraint violation) nothing changes and
   * the error is thrown. Logs what each list gained and lost.
   */
  replaceConfig(network: NetworkConfig, secrets: HookSecrets = this.secrets): void {
    const next = this.compile(network, secrets);
    this.secrets = secrets;
    const before = this.current.network;
    this.current = next;
    for (const line of describeChanges(before, next.network)) this.log.log("info", TARGET.config, line);
    this.changed();
  }

  /** Re-read the source and apply it; refused or failed reloads keep the old state and throw. */
  async reload(): Promise<void> {
    const source = this.options.source;
    let network: NetworkConfig;
    let secrets: HookSecrets | undefined;
    try {
      network = source ? await source() : structuredClone(this.current.network as NetworkConfig);
      secrets = await this.options.readSecrets?.(network);
    } catch (e) {
      throw new StateChangeError(`reload failed: ${(e as Error).message}`, { cause: e });
    }
    try {
      this.replaceConfig(network, secrets);
    } catch (e) {
      throw new StateChangeError(`reload refused: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Switch mode; the lists stay as they are. A mode the constraints forbid is refused. */
  setMode(mode: NetworkMode): void {
    const s = this.current;
    const network = { ...s.network, mode } as NetworkConfig;
    const violation = this.options.constraints ? checkConstraints(network, this.options.constraints)[0] : undefined;
    if (violation) throw new StateChangeError(violation);
    this.current = { ...s, mode, network };
    if (s.mode !== mode) this.log.log("info", TARGET.config, `mode changed from ${s.mode} to ${mode}`);
    this.changed();
  }

  /**
   * Call `listener` right after every applied reload or mode change (a new snapshot is in
   * force). Returns the function that stops it. A listener that throws is ignored.
   */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.changeListeners) {
      try {
        listener();
      } catch {
        // A failing listener must never undo or block a state change.
      }
    }
  }

  /**
   * Refuse every later configuration `check` objects to (it answers why, or `undefined`): what
   * the running proxy cannot take without a restart. Returns the function that removes it.
   */
  addCheck(check: (network: Readonly<NetworkConfig>) => string | undefined): () => void {
    this.checks.add(check);
    return () => this.checks.delete(check);
  }

  /** Add a receiver of every connection record (a tunnel or client connection that ended). */
  addConnectionSink(sink: ConnectionSink): void {
    this.connectionSinks.push(sink);
  }

  /** Record an ended tunnel or client connection. Sinks that throw are ignored. */
  recordConnection(r: ConnectionRecord): void {
    for (const s of this.connectionSinks) {
      try {
        s(r);
      } catch {
        // A failing sink must never affect proxying.
      }
    }
  }

  /** Add a receiver of every decision. */
  addSink(sink: DecisionSink): void {
    this.sinks.push(sink);
  }

  /** Receive every decision until the returned function is called (a live feed, `GET /events`). */
  subscribe(sink: DecisionSink): () => void {
    this.subscribers.add(sink);
    return () => this.subscribers.delete(sink);
  }

  /** Live feeds open now. */
  get subscriberCount(): number {
    return this.subscribers.size;
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
    if (this.subscribers.size > 0) {
      for (const s of this.subscribers) {
        try {
          s(r);
        } catch {
          // nor a failing feed
        }
      }
    }
  }

  private compile(network: NetworkConfig, secrets: HookSecrets): ProxySnapshot {
    const copy: NetworkConfig = structuredClone(network);
    copy.mitm_hooks ??= [];
    copy.limited_mode_allow ??= [];
    const violation = this.options.constraints ? checkConstraints(copy, this.options.constraints)[0] : undefined;
    if (violation) throw new StateChangeError(violation);
    if (copy.mitm_hooks.length > 0 && !copy.mitm) throw new StateChangeError("network.mitm_hooks need network.mitm = true");
    for (const check of this.checks) {
      const refusal = check(copy);
      if (refusal !== undefined) throw new StateChangeError(refusal);
    }
    const hooks = HookTable.compile(copy.mitm_hooks, secrets);
    const limitedAllow = LimitedModeExceptions.compile(copy.limited_mode_allow);
    const policy = PolicyEngine.compile(copy, { ...this.policyOptions, observeDns: (ms) => this.metrics.latency("dns", ms) });
    return Object.freeze({ network: Object.freeze(copy), policy, mode: copy.mode, hooks, limitedAllow });
  }
}

/** One line per list that changed: what was added and removed. */
export function describeChanges(before: Readonly<NetworkConfig>, after: Readonly<NetworkConfig>): string[] {
  const lines: string[] = [];
  for (const key of ["allowed_domains", "denied_domains", "allow_unix_sockets", "denied_unix_sockets"] as const) {
    const was = new Set(before[key]);
    const now = new Set(after[key]);
    const added = [...now].filter((x) => !was.has(x));
    const removed = [...was].filter((x) => !now.has(x));
    if (added.length || removed.length) {
      lines.push(`config reloaded: network.${key} added ${JSON.stringify(added)}, removed ${JSON.stringify(removed)}`);
    }
  }
  if (before.mode !== after.mode) lines.push(`config reloaded: network.mode ${before.mode} -> ${after.mode}`);
  if (before.dangerously_allow_all_unix_sockets !== after.dangerously_allow_all_unix_sockets) {
    lines.push(`config reloaded: network.dangerously_allow_all_unix_sockets ${before.dangerously_allow_all_unix_sockets} -> ${after.dangerously_allow_all_unix_sockets}`);
  }
  if (JSON.stringify(before.limited_mode_allow ?? []) !== JSON.stringify(after.limited_mode_allow ?? [])) {
    lines.push(`config reloaded: network.limited_mode_allow now ${(after.limited_mode_allow ?? []).length} rules`);
  }
  const hosts = (n: Readonly<NetworkConfig>) => [...new Set((n.mitm_hooks ?? []).map((h) => h.host))];
  if (JSON.stringify(before.mitm_hooks ?? []) !== JSON.stringify(after.mitm_hooks ?? [])) {
    lines.push(`config reloaded: network.mitm_hooks now ${after.mitm_hooks.length} hooks for ${JSON.stringify(hosts(after))}`);
  }
  return lines;
}
