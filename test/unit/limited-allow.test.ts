/**
 * `limited_mode_allow` (issue 14 item 3, docs/behaviour.md §3.5): the config checks with the
 * rule index, key and line; which requests a rule lets through (host pattern with its port,
 * method, literal and glob prefixes, never an ambiguous path); the gate's mode guard allowing
 * them with their own recorded reason, and never an upgrade or a CONNECT; managed constraints.
 * No socket: the in-memory net with a tripwire dialler.
 */
import { describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { checkConstraints } from "../../src/core/config/constraints.ts";
import { ConfigError } from "../../src/core/config/error.ts";
import { parseConfigText } from "../../src/core/config/parse.ts";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { passGate } from "../../src/core/gate/gate.ts";
import type { GateRequest } from "../../src/core/gate/types.ts";
import { silentLogger } from "../../src/core/log.ts";
import { LimitedModeExceptions, type LimitedModeRule } from "../../src/core/policy/limited-allow.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { tripwireNet } from "../helpers/memory-net.ts";

const PATH = "/etc/codex/config.toml";
const GIT: LimitedModeRule = { host: "127.0.0.1", methods: ["POST"], path_prefixes: ["pattern:/*/*/git-upload-pack"] };
const GRAPHQL: LimitedModeRule = { host: "*.example.com:443", methods: ["POST"], path_prefixes: ["/graphql"] };

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("parsing limited_mode_allow", () => {
  it("reads rules as tables, methods upper-cased", () => {
    const { network } = parseConfigText(`[network]\nlimited_mode_allow = [{ host = "127.0.0.1", methods = ["post"], path_prefixes = ["pattern:/*/*/git-upload-pack"] }]\n`, PATH);
    expect(network.limited_mode_allow).toEqual([GIT]);
  });

  const second = (rule: string) => `[network]\n[[network.limited_mode_allow]]\nhost = "a.example"\nmethods = ["POST"]\npath_prefixes = ["/"]\n[[network.limited_mode_allow]]\n${rule}\n`;
  it.each([
    [`methods = ["POST"]\npath_prefixes = ["/"]`, "[1].host", "missing (required)"],
    [`host = "a{b}"\nmethods = ["POST"]\npath_prefixes = ["/"]`, "[1].host", `invalid domain pattern "a{b}"`],
    [`host = "a.example"\nmethods = []\npath_prefixes = ["/"]`, "[1].methods", "must not be empty"],
    [`host = "a.example"\nmethods = ["CONNECT"]\npath_prefixes = ["/"]`, "[1].methods[0]", "CONNECT is not a request inside limited mode's reach"],
    [`host = "a.example"\nmethods = ["P OST"]\npath_prefixes = ["/"]`, "[1].methods[0]", "is not an HTTP method"],
    [`host = "a.example"\nmethods = ["POST"]`, "[1].path_prefixes", "missing (required)"],
    [`host = "a.example"\nmethods = ["POST"]\npath_prefixes = ["graphql"]`, "[1].path_prefixes[0]", `must start with "/"`],
    [`host = "a.example"\nmethods = ["POST"]\npath_prefixes = ["/"]\nbody = 1`, "[1].body", "unknown key"],
  ])("%j: network.limited_mode_allow%s, on the rule's line", (rule, key, detail) => {
    const e = configError(() => parseConfigText(second(rule), PATH));
    expect(e.message.startsWith(`${PATH}:6: network.limited_mode_allow${key}: `), e.message).toBe(true);
    expect(e.message).toContain(detail);
  });
});

describe("which requests a rule lets through", () => {
  const rules = LimitedModeExceptions.compile([GIT, GRAPHQL]);
  it.each<[string, number, string, string, boolean]>([
    ["127.0.0.1", 8080, "POST", "/org/repo.git/git-upload-pack", true],
    ["127.0.0.1", 8080, "POST", "/org/repo/git-upload-pack?x=1", true],
    ["127.0.0.1", 8080, "POST", "/org/repo.git/git-receive-pack", false], // a push stays refused
    ["127.0.0.1", 8080, "PUT", "/org/repo.git/git-upload-pack", false],
    ["127.0.0.1", 8080, "POST", "/org/sub/repo.git/git-upload-pack", false], // * stays in one segment
    ["127.0.0.1", 8080, "POST", "/org/repo/../x/git-upload-pack", false],
    ["127.0.0.2", 8080, "POST", "/org/repo.git/git-upload-pack", false],
    ["api.example.com", 443, "POST", "/graphql", true],
    ["api.example.com", 8443, "POST", "/graphql", false], // the host pattern's port
    ["example.com", 443, "POST", "/graphql", false], // *. is subdomains only
    ["api.example.com", 443, "POST", "/graphql%2f..%2fadmin", false],
  ])("%s:%i %s %s → %s", (host, port, method, target, expected) => {
    expect(rules.allows(host, port, method, target)).toBe(expected);
  });
});

describe("the mode guard with limited_mode_allow", () => {
  function context(extra: Partial<NetworkConfig> = {}) {
    const { net } = tripwireNet({});
    const network = { ...defaultNetworkConfig(), enabled: true, mode: "limited" as const, allowed_domains: ["127.0.0.1"], limited_mode_allow: [GIT], ...extra };
    const state = new ProxyState(network, { resolve: (h) => net.resolve(h) });
    const records: DecisionRecord[] = [];
    state.addSink((r) => records.push(r));
    const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false };
    return { ctx, state, records };
  }
  const post = (path: string, more: Partial<GateRequest> = {}): GateRequest => ({
    protocol: "http",
    host: "127.0.0.1",
    port: 8080,
    method: "POST",
    client: "127.0.0.1:50000",
    content: { path, headers: [] },
    ...more,
  });

  it("lets a matching POST through, recorded as the mode guard's allow with its own reason", async () => {
    const { ctx, state, records } = context();
    expect(await passGate(ctx, post("/o/r.git/git-upload-pack"))).toMatchObject({ kind: "allowed" });
    expect(records.map((r) => [r.scope, r.decision, r.reason])).toEqual([
      ["domain_rule", "allow", "allowed"],
      ["mode_guard", "allow", "limited_mode_exception"],
    ]);
    expect(state.blocked.list()).toEqual([]);
  });

  it("refuses what no rule names, an upgrade even on a named path, and records it as before", async () => {
    const { ctx, records } = context();
    expect(await passGate(ctx, post("/o/r.git/git-receive-pack"))).toMatchObject({ kind: "refused", refusal: { reason: "method_not_allowed" } });
    expect(await passGate(ctx, post("/o/r.git/git-upload-pack", { upgrade: true }))).toMatchObject({ kind: "refused", refusal: { reason: "method_not_allowed" } });
    expect(records.filter((r) => r.scope === "mode_guard").map((r) => r.reason)).toEqual(["method_not_allowed", "method_not_allowed"]);
  });

  it("never applies to CONNECT, and records nothing extra in full mode", async () => {
    const { ctx } = context({ limited_mode_allow: [{ host: "127.0.0.1", methods: ["POST"], path_prefixes: ["/"] }] });
    expect(await passGate(ctx, { ...post("/"), method: "CONNECT", protocol: "https_connect", content: undefined })).toMatchObject({ kind: "refused", refusal: { reason: "mitm_required" } });
    const full = context({ mode: "full" });
    expect(await passGate(full.ctx, post("/anything"))).toMatchObject({ kind: "allowed" });
    expect(full.records.map((r) => r.scope)).toEqual(["domain_rule"]);
  });

  it("applies inside an intercepted tunnel too (a TLS request)", async () => {
    const { ctx } = context({ mitm: true });
    expect(await passGate(ctx, post("/o/r/git-upload-pack", { tls: true }))).toMatchObject({ kind: "allowed" });
  });
});

describe("managed constraints on limited_mode_allow", () => {
  const network = (rules: LimitedModeRule[]): NetworkConfig => ({ ...defaultNetworkConfig(), mode: "limited", limited_mode_allow: rules });

  it("a managed limited mode without managed exceptions allows none", () => {
    expect(checkConstraints(network([GIT]), { mode: "limited" })).toEqual([
      `network.limited_mode_allow: the managed mode is "limited" and the constraints allow no exception to it (1 configured)`,
    ]);
    expect(checkConstraints(network([]), { mode: "limited" })).toEqual([]);
  });

  it.each<[LimitedModeRule, boolean]>([
    [GIT, true],
    [{ ...GIT, host: "127.0.0.2" }, false],
    [{ ...GIT, methods: ["POST", "PUT"] }, false],
    [{ host: "127.0.0.1", methods: ["POST"], path_prefixes: ["/api/v2/"] }, true], // a longer literal prefix
    [{ host: "127.0.0.1", methods: ["POST"], path_prefixes: ["/"] }, false],
  ])("configured %j inside managed [GIT, 127.0.0.1 POST /api/]: %s", (rule, ok) => {
    const managed = { mode: "limited" as const, limited_mode_allow: [GIT, { host: "127.0.0.1", methods: ["POST"], path_prefixes: ["/api/"] }] };
    expect(checkConstraints(network([rule]), managed).length === 0).toBe(ok);
  });
});
