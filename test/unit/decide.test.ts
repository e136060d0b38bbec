/**
 * The decision order of docs/behaviour.md §3, table-driven, with a tripwire resolver: every name
 * the policy refuses before the DNS step must never be looked up, and nothing is ever dialled.
 * Address strings here are pure inputs; the injected resolver is the only "DNS".
 */
import { describe, expect, it } from "vitest";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { PolicyEngine, type NetworkDecision, type NetworkPolicyRequest, type PolicyDecider } from "../../src/core/policy/decide.ts";
import type { HostVerdict } from "../../src/core/policy/types.ts";
import { tripwireNet } from "../helpers/memory-net.ts";

/** A globally routable address used only as a resolver answer (never dialled). */
const PUBLIC_V4 = "8.8.4.4";
const PUBLIC_V6 = "2606:4700:4700::1111";

const HOSTS: Record<string, string[]> = {
  "exact.example": [PUBLIC_V4],
  "allowed.example": [PUBLIC_V4],
  "a.allowed.example": [PUBLIC_V6],
  "a.b.sub.example": [PUBLIC_V4],
  "region7.v2.example": [PUBLIC_V4],
  "rebind.example": ["127.0.0.1"],
  "private.example": ["10.1.2.3"],
  "metadata.example": ["169.254.169.254"],
  "mixed.example": [PUBLIC_V4, "192.168.1.1"],
  "mapped.example": ["::ffff:127.0.0.1"],
  "localhost": ["127.0.0.1", "::1"],
  "decided.example": [PUBLIC_V4],
};

const BASE_ALLOWED = ["exact.example", "**.allowed.example", "*.sub.example", "region*.v2.example", "rebind.example", "private.example", "metadata.example", "mixed.example", "mapped.example", "nxdomain.example", "slow.example"];
const BASE_DENIED = ["bad.allowed.example", "*.evil.example"];

function engineFor(overrides: Partial<NetworkConfig>, decider?: PolicyDecider) {
  const { net, log } = tripwireNet({ hosts: HOSTS });
  const resolve = async (host: string): Promise<string[]> => {
    if (host === "nxdomain.example") {
      log.resolves.push(host);
      throw new Error("ENOTFOUND");
    }
    if (host === "slow.example") {
      log.resolves.push(host);
      return new Promise(() => {}); // never answers
    }
    return net.resolve(host);
  };
  const network = { ...defaultNetworkConfig(), allowed_domains: BASE_ALLOWED, denied_domains: BASE_DENIED, ...overrides };
  const engine = PolicyEngine.compile(network, { resolve, decider, dnsTimeoutMs: 50, deciderTimeoutMs: 50 });
  return { engine, log };
}

function ask(engine: PolicyEngine, host: string, extra: Partial<NetworkPolicyRequest> = {}): Promise<HostVerdict> {
  return engine.decide({ protocol: "http", host, port: 80, method: "GET", client_addr: "127.0.0.1:50000", ...extra });
}

type Row = {
  host: string;
  config?: Partial<NetworkConfig>;
  /** `allow` or the block reason. */
  expect: string;
  /** Normalised host reported. */
  reported?: string;
  /** For allows: the addresses to dial (`undefined` = resolved at dial time). */
  addresses?: string[] | "unset";
  /** Names the resolver must have been asked (default: none). */
  resolved?: string[];
};

const TABLE: Row[] = [
  // exact, case, trailing dots, ports
  { host: "exact.example", expect: "allow", addresses: [PUBLIC_V4], resolved: ["exact.example"] },
  { host: "EXACT.Example.", expect: "allow", reported: "exact.example", addresses: [PUBLIC_V4], resolved: ["exact.example"] },
  { host: "other.example", expect: "not_allowed" },
  { host: "exact.example.evil", expect: "not_allowed" },
  // deny wins, before any lookup
  { host: "bad.allowed.example", expect: "denied" },
  { host: "x.y.evil.example", expect: "denied" },
  { host: "evil.example", expect: "not_allowed" },
  // ** covers the apex, *. does not
  { host: "allowed.example", expect: "allow", addresses: [PUBLIC_V4], resolved: ["allowed.example"] },
  { host: "a.allowed.example", expect: "allow", addresses: [PUBLIC_V6], resolved: ["a.allowed.example"] },
  { host: "sub.example", expect: "not_allowed" },
  { host: "a.b.sub.example", expect: "allow", addresses: [PUBLIC_V4], resolved: ["a.b.sub.example"] },
  { host: "evilsub.example", expect: "not_allowed" },
  { host: "region7.v2.example", expect: "allow", addresses: [PUBLIC_V4], resolved: ["region7.v2.example"] },
  { host: "x.region7.v2.example", expect: "not_allowed" },
  // local literals need an exact allowlist entry; wildcards never count
  { host: "127.0.0.1", config: { allowed_domains: ["127.0.0.1"] }, expect: "allow", addresses: ["127.0.0.1"] },
  { host: "2130706433", config: { allowed_domains: ["127.0.0.1"] }, expect: "allow", reported: "127.0.0.1", addresses: ["127.0.0.1"] },
  { host: "127.0.0.2", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "2130706433", config: { allowed_domains: ["*"] }, expect: "not_allowed_local", reported: "127.0.0.1" },
  { host: "0x7f.1", config: { allowed_domains: ["*"] }, expect: "not_allowed_local", reported: "127.0.0.1" },
  { host: "0177.0.0.1", config: { allowed_domains: ["*"] }, expect: "not_allowed_local", reported: "127.0.0.1" },
  { host: "[::1]", config: { allowed_domains: ["*"] }, expect: "not_allowed_local", reported: "::1" },
  { host: "[::ffff:127.0.0.1]", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "0.0.0.0", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "169.254.169.254", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "10.0.0.1", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "[fd00::1]", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "[fe80::1%eth0]", config: { allowed_domains: ["fe80::1"] }, expect: "not_allowed_local" },
  { host: "[fe80::1%25eth0]", config: { allowed_domains: ["fe80::1%eth0"] }, expect: "allow", addresses: ["fe80::1%eth0"] },
  { host: "127.0.0.1", config: { allowed_domains: ["*", "localhost"] }, expect: "not_allowed_local" },
  { host: "localhost", config: { allowed_domains: ["127.0.0.1"] }, expect: "not_allowed_local" },
  { host: "localhost", config: { allowed_domains: ["*"] }, expect: "not_allowed_local" },
  { host: "localhost", config: { allowed_domains: ["localhost"] }, expect: "allow", addresses: ["127.0.0.1", "::1"], resolved: ["localhost"] },
  { host: "LOCALHOST.", config: { allowed_domains: ["localhost"] }, expect: "allow", reported: "localhost", addresses: ["127.0.0.1", "::1"], resolved: ["localhost"] },
  { host: "127.0.0.1", config: { allowed_domains: ["localhost"] }, expect: "not_allowed_local" },
  { host: "127.0.0.1", config: { allowed_domains: ["127.0.0.1"], denied_domains: ["127.0.0.1"] }, expect: "denied" },
  // names resolving to non-public addresses fail closed, even when allowlisted
  { host: "rebind.example", expect: "not_allowed_local", resolved: ["rebind.example"] },
  { host: "private.example", expect: "not_allowed_local", resolved: ["private.example"] },
  { host: "metadata.example", expect: "not_allowed_local", resolved: ["metadata.example"] },
  { host: "mixed.example", expect: "not_allowed_local", resolved: ["mixed.example"] },
  { host: "mapped.example", expect: "not_allowed_local", resolved: ["mapped.example"] },
  { host: "nxdomain.example", expect: "not_allowed_local", resolved: ["nxdomain.example"] },
  { host: "slow.example", expect: "not_allowed_local", resolved: ["slow.example"] },
  // unparsable hosts
  { host: "exa mple.example", expect: "not_allowed", reported: "exa mple.example" },
  { host: "a/b.example", expect: "not_allowed", reported: "a/b.example" },
  { host: "", expect: "not_allowed" },
  // empty allowlist blocks everything
  { host: "exact.example", config: { allowed_domains: [] }, expect: "not_allowed" },
  // allow_local_binding = true: no local checks, no vetting lookup (resolved at dial time)
  { host: "127.0.0.2", config: { allowed_domains: ["*"], allow_local_binding: true }, expect: "allow", addresses: ["127.0.0.2"] },
  { host: "rebind.example", config: { allow_local_binding: true }, expect: "allow", addresses: "unset" },
  { host: "other.example", config: { allow_local_binding: true }, expect: "not_allowed" },
  { host: "bad.allowed.example", config: { allow_local_binding: true }, expect: "denied" },
];

describe("decision order (docs/behaviour.md §3)", () => {
  it.each(TABLE.map((r) => [`${r.host || "(empty)"} ${JSON.stringify(r.config ?? {})} → ${r.expect}`, r] as const))("%s", async (_name, row) => {
    const { engine, log } = engineFor(row.config ?? {});
    const v = await ask(engine, row.host);
    if (row.expect === "allow") {
      expect(v.allowed).toBe(true);
      if (v.allowed) {
        expect(v.source).toBe("baseline_policy");
        expect(v.override).toBe(false);
        if (row.addresses === "unset") expect(v.addresses).toBeUndefined();
        else expect(v.addresses).toEqual(row.addresses);
      }
    } else {
      expect(v).toMatchObject({ allowed: false, reason: row.expect, decision: "deny", source: "baseline_policy" });
    }
    if (row.reported !== undefined) expect(v.host).toBe(row.reported);
    expect(log.resolves).toEqual(row.resolved ?? []);
    expect(log.dials).toEqual([]);
  });

  it("pins the first resolution: a rebinding resolver is asked once", async () => {
    let calls = 0;
    const engine = PolicyEngine.compile(
      { ...defaultNetworkConfig(), allowed_domains: ["flip.example"] },
      {
        resolve: async () => (calls++ === 0 ? [PUBLIC_V4] : ["127.0.0.1"]),
      },
    );
    const v = await ask(engine, "flip.example");
    expect(v).toMatchObject({ allowed: true, addresses: [PUBLIC_V4] });
    expect(calls).toBe(1);
  });
});

describe("policy decider", () => {
  function withDecider(fn: (req: NetworkPolicyRequest) => NetworkDecision | Promise<NetworkDecision>) {
    const calls: NetworkPolicyRequest[] = [];
    const { engine, log } = engineFor({}, (req) => {
      calls.push(req);
      return fn(req);
    });
    return { engine, log, calls };
  }

  it("may turn not_allowed into an allow, reported as an override by the decider", async () => {
    const { engine, calls } = withDecider(() => ({ decision: "allow" }));
    const v = await ask(engine, "Decided.Example", { method: "POST", command: "curl x" });
    expect(v).toEqual({ allowed: true, host: "decided.example", addresses: [PUBLIC_V4], source: "decider", override: true });
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ host: "decided.example", port: 80, method: "POST", protocol: "http", client_addr: "127.0.0.1:50000", command: "curl x" });
  });

  it("is never consulted for denied or not_allowed_local", async () => {
    const { engine, calls } = withDecider(() => ({ decision: "allow" }));
    expect(await ask(engine, "bad.allowed.example")).toMatchObject({ reason: "denied" });
    expect(await ask(engine, "127.0.0.1")).toMatchObject({ reason: "not_allowed_local" });
    expect(calls).toEqual([]);
  });

  it("cannot lift the DNS vetting that follows it", async () => {
    const engine = PolicyEngine.compile({ ...defaultNetworkConfig() }, { resolve: async () => ["127.0.0.1"], decider: () => ({ decision: "allow" }) });
    expect(await ask(engine, "rebind-unlisted.example")).toMatchObject({ allowed: false, reason: "not_allowed_local" });
  });

  it("deny and ask keep their reason and source", async () => {
    expect(await ask(withDecider(() => ({ decision: "deny", reason: "policy_denied" })).engine, "x.example")).toEqual({
      allowed: false,
      host: "x.example",
      reason: "policy_denied",
      decision: "deny",
      source: "decider",
    });
    expect(await ask(withDecider(() => ({ decision: "ask" })).engine, "x.example")).toMatchObject({ decision: "ask", reason: "not_allowed", source: "decider" });
  });

  it("a throwing decider denies with decider_error, a slow one with decider_timeout", async () => {
    const { engine, log } = withDecider(() => {
      throw new Error("boom");
    });
    expect(await ask(engine, "x.example")).toMatchObject({ allowed: false, reason: "decider_error", source: "decider" });
    expect(await ask(withDecider(() => Promise.reject(new Error("async boom"))).engine, "x.example")).toMatchObject({ reason: "decider_error" });
    expect(await ask(withDecider(() => new Promise(() => {})).engine, "x.example")).toMatchObject({ reason: "decider_timeout" });
    expect(await ask(withDecider(() => ({ decision: "bogus" }) as unknown as NetworkDecision).engine, "x.example")).toMatchObject({ reason: "decider_error" });
    expect(log.resolves).toEqual([]);
  });
});

describe("port-scoped entries in the decision (issue 14 item 1)", () => {
  it.each<[string, Partial<NetworkConfig>, number, string]>([
    // the explicit-local-literal rule: allowing localhost:3000 does not allow localhost:22
    ["localhost", { allowed_domains: ["localhost:3000"] }, 3000, "allow"],
    ["localhost", { allowed_domains: ["localhost:3000"] }, 22, "not_allowed_local"],
    ["127.0.0.1", { allowed_domains: ["127.0.0.1:3000"] }, 3000, "allow"],
    ["127.0.0.1", { allowed_domains: ["127.0.0.1:3000"] }, 3001, "not_allowed_local"],
    ["2130706433", { allowed_domains: ["127.0.0.1:3000"] }, 3000, "allow"],
    ["::1", { allowed_domains: ["[::1]:8080"] }, 8080, "allow"],
    ["::1", { allowed_domains: ["[::1]:8080"] }, 8081, "not_allowed_local"],
    // names: the allowlist
    ["exact.example", { allowed_domains: ["exact.example:443"] }, 443, "allow"],
    ["exact.example", { allowed_domains: ["exact.example:443"] }, 80, "not_allowed"],
    ["a.allowed.example", { allowed_domains: ["*.allowed.example:22"] }, 22, "allow"],
    ["a.allowed.example", { allowed_domains: ["*.allowed.example:22"] }, 443, "not_allowed"],
    // a port-scoped deny refuses that port only; deny still wins over allow
    ["exact.example", { allowed_domains: ["exact.example"], denied_domains: ["exact.example:25"] }, 25, "denied"],
    ["exact.example", { allowed_domains: ["exact.example"], denied_domains: ["exact.example:25"] }, 443, "allow"],
    ["exact.example", { allowed_domains: ["exact.example:25"], denied_domains: ["exact.example:25"] }, 25, "denied"],
    // an IPv4-mapped IPv6 spelling is denied like the IPv4 address it reaches
    ["::ffff:127.0.0.1", { allow_local_binding: true, allowed_domains: ["*"], denied_domains: ["127.0.0.1:22"] }, 22, "denied"],
    ["::ffff:7f00:1", { allow_local_binding: true, allowed_domains: ["*"], denied_domains: ["127.0.0.1"] }, 80, "denied"],
    ["::ffff:127.0.0.1", { allow_local_binding: true, allowed_domains: ["*"], denied_domains: ["127.0.0.1:22"] }, 80, "allow"],
  ])("%s on port %s with %j → %s", async (host, config, port, expected) => {
    const { engine } = engineFor({ denied_domains: [], ...config });
    const v = await ask(engine, host, { port });
    expect(v.allowed ? "allow" : v.reason).toBe(expected);
  });

  it("the decider is asked about the port the allowlist missed", async () => {
    const asked: number[] = [];
    const { engine } = engineFor({ allowed_domains: ["exact.example:443"], denied_domains: [] }, (req) => (asked.push(req.port), { decision: "deny" }));
    expect((await ask(engine, "exact.example", { port: 443 })).allowed).toBe(true);
    expect(await ask(engine, "exact.example", { port: 22 })).toMatchObject({ allowed: false, source: "decider" });
    expect(asked).toEqual([22]);
  });
});
