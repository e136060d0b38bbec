/**
 * The decision order of docs/behaviour.md §3, compiled once per configuration: deny list, local
 * literals, allow list (with the optional decider), then fail-closed DNS vetting whose result
 * is the exact set of addresses the session may dial (DNS pinning). Names refused before the
 * DNS step are never resolved.
 *
 * @module
 */
import type { NetworkConfig } from "../config/types.ts";
import { canonicalIp, stripZone } from "../net/ip.ts";
import { withTimeout } from "../net/timeout.ts";
import { isNonPublicIp } from "./address-class.ts";
import { normalizeHost } from "./host.ts";
import { compilePatterns, type CompiledPatterns } from "./patterns.ts";
import type { BlockReason, DecisionSource, HostVerdict, ProxyProtocol } from "./types.ts";

/** How long the DNS vetting step may take before it fails closed (docs/behaviour.md §3 step 5). */
export const DNS_TIMEOUT_MS = 2_000;
/** How long a policy decider may take before its silence counts as a deny. */
export const DECIDER_TIMEOUT_MS = 5_000;

/** What the policy is asked about one connection or request. */
export interface NetworkPolicyRequest {
  readonly protocol: ProxyProtocol;
  /** The host as the client named it (normalised before any decision). */
  readonly host: string;
  readonly port: number;
  /** `ip:port` of the client, when known. */
  readonly client_addr?: string;
  /** HTTP method; absent for SOCKS5. */
  readonly method?: string;
  /** The command that made the request, when the embedding app attributed it. */
  readonly command?: string;
  /** The exec-policy hint the embedding app attached to that command. */
  readonly exec_policy_hint?: string;
}

/** A decider's answer. `ask` blocks the request with `decision: "ask"` so the host app can prompt. */
export type NetworkDecision =
  | { readonly decision: "allow" }
  | { readonly decision: "deny"; readonly reason?: string }
  | { readonly decision: "ask"; readonly reason?: string };

/** The embedding app's hook, consulted only for allowlist misses (`not_allowed`). */
export type PolicyDecider = (request: NetworkPolicyRequest) => NetworkDecision | Promise<NetworkDecision>;

/** Capabilities and hooks the engine needs. */
export interface PolicyOptions {
  /** System resolver (the adapter's `Net.resolve`). */
  resolve(host: string): Promise<string[]>;
  decider?: PolicyDecider;
  /** Override of {@link DNS_TIMEOUT_MS} (tests). */
  dnsTimeoutMs?: number;
  /** Override of {@link DECIDER_TIMEOUT_MS} (tests). */
  deciderTimeoutMs?: number;
  /** Hears how long each DNS vetting took, in ms (the metrics). */
  observeDns?: (ms: number) => void;
}

/** A compiled policy. Immutable: a config change builds a new engine. */
export class PolicyEngine {
  private constructor(
    readonly allowed: CompiledPatterns,
    readonly denied: CompiledPatterns,
    readonly allowLocalBinding: boolean,
    private readonly options: PolicyOptions,
  ) {}

  /** Compile the lists of `network`. Throws `PatternError` naming a bad pattern. */
  static compile(network: NetworkConfig, options: PolicyOptions): PolicyEngine {
    return new PolicyEngine(
      compilePatterns(network.allowed_domains),
      compilePatterns(network.denied_domains),
      network.allow_local_binding,
      options,
    );
  }

  /** Decide whether the host of `req` may be reached, and at which addresses. */
  async decide(req: NetworkPolicyRequest): Promise<HostVerdict> {
    const n = normalizeHost(req.host);
    // 1. unparsable host
    if (!n) return block(req.host, "not_allowed", "baseline_policy");
    const host = n.name;
    // 2. deny list always wins
    const port = req.port;
    // An IP is also denied under its other spellings: without its zone, and an IPv4-mapped
    // IPv6 address (`::ffff:127.0.0.1`) as the IPv4 address it reaches.
    const mapped = n.ip !== undefined ? canonicalIp(n.ip) : undefined;
    if (
      this.denied.matches(host, port) ||
      (n.ip !== undefined && n.ip !== host && this.denied.matches(n.ip, port)) ||
      (mapped !== undefined && mapped !== n.ip && this.denied.matches(mapped, port))
    ) {
      return block(host, "denied", "baseline_policy");
    }
    // 3. local literals need an exact allowlist entry
    const localLiteral = host === "localhost" || (n.ip !== undefined && isNonPublicIp(n.ip));
    let explicitLocal = false;
    if (!this.allowLocalBinding && localLiteral) {
      if (!this.allowed.hasExact(host, port)) return block(host, "not_allowed_local", "baseline_policy");
      explicitLocal = true;
    }
    // 4. allow list, then the decider for misses only
    let source: DecisionSource = "baseline_policy";
    let override = false;
    if (!explicitLocal && !this.allowed.matches(host, port)) {
      const fromDecider = await this.consultDecider({ ...req, host });
      if (fromDecider) return fromDecider;
      source = "decider";
      override = true;
    }
    // 5. DNS vetting (fail closed) and pinning
    if (n.kind !== "name") return { allowed: true, host, addresses: [host], source, override };
    if (this.allowLocalBinding) return { allowed: true, host, source, override };
    const started = performance.now();
    const resolved = await resolveWithin(this.options.resolve, host, this.options.dnsTimeoutMs ?? DNS_TIMEOUT_MS);
    this.options.observeDns?.(performance.now() - started);
    if (resolved.length === 0) return block(host, "not_allowed_local", "baseline_policy");
    if (!explicitLocal && resolved.some((ip) => isNonPublicIp(stripZone(ip)))) {
      return block(host, "not_allowed_local", "baseline_policy");
    }
    return { allowed: true, host, addresses: resolved, source, override };
  }

  /** `undefined` when the decider allowed; otherwise the blocking verdict. */
  private async consultDecider(req: NetworkPolicyRequest): Promise<HostVerdict | undefined> {
    const decider = this.options.decider;
    if (!decider) return block(req.host, "not_allowed", "baseline_policy");
    const ms = this.options.deciderTimeoutMs ?? DECIDER_TIMEOUT_MS;
    try {
      const answer = await withTimeout<NetworkDecision | "timeout">(Promise.resolve().then(() => decider(req)), ms, () => "timeout");
      if (answer === "timeout") return block(req.host, "decider_timeout", "decider");
      if (answer.decision === "allow") return undefined;
      if (answer.decision === "ask") return block(req.host, answer.reason ?? "not_allowed", "decider", "ask");
      if (answer.decision === "deny") return block(req.host, answer.reason ?? "not_allowed", "decider");
      return block(req.host, "decider_error", "decider");
    } catch {
      return block(req.host, "decider_error", "decider");
    }
  }
}

function block(host: string, reason: BlockReason, source: DecisionSource, decision: "deny" | "ask" = "deny"): HostVerdict {
  return { allowed: false, host, reason, decision, source };
}


/** Resolve with a deadline; any failure or timeout yields `[]` (the caller fails closed). */
function resolveWithin(resolve: (host: string) => Promise<string[]>, host: string, ms: number): Promise<string[]> {
  return withTimeout(resolve(host).catch(() => [] as string[]), ms, () => []);
}
