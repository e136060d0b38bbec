import { describe, expect, it } from "vitest";
import {
  checkConstraints,
  CONSTRAINT_KEYS,
  MAX_LISTED_ENTRIES,
  NON_CONSTRAINT_KEYS,
  parseConstraintsText,
  validateConstraints,
  type NetworkConstraints,
} from "../../src/core/config/constraints.ts";
import { ConfigError, defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/index.ts";

const PATH = "/etc/codex/constraints.toml";

/** The defaults with `patch` applied. */
function net(patch: Partial<NetworkConfig> = {}): NetworkConfig {
  return { ...defaultNetworkConfig(), ...patch };
}

/** True when `config` (one allowed entry) falls inside `managed`. */
function allowedCovered(managed: string[], config: string): boolean {
  return checkConstraints(net({ allowed_domains: [config] }), { allowed_domains: managed }).length === 0;
}

/** Runs `fn`, expecting a ConfigError, and returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("checkConstraints: no constraints", () => {
  it("an empty constraint object constrains nothing", () => {
    const wide = net({
      enabled: true,
      mode: "full",
      allow_upstream_proxy: true,
      allow_local_binding: true,
      dangerously_allow_non_loopback_proxy: true,
      dangerously_allow_non_loopback_admin: true,
      allowed_domains: ["*"],
      allow_unix_sockets: ["/tmp/a.sock"],
    });
    expect(checkConstraints(wide, {})).toEqual([]);
  });

  it("defaults satisfy the strictest constraints", () => {
    const strictest: NetworkConstraints = {
      enabled: false,
      mode: "limited",
      allow_upstream_proxy: false,
      allow_local_binding: false,
      dangerously_allow_non_loopback_proxy: false,
      dangerously_allow_non_loopback_admin: false,
      allowed_domains: [],
      denied_domains: [],
      allow_unix_sockets: [],
    };
    expect(checkConstraints(net({ mode: "limited" }), strictest)).toEqual([]);
  });
});

describe("checkConstraints: booleans", () => {
  const keys = [
    "enabled",
    "allow_upstream_proxy",
    "allow_local_binding",
    "dangerously_allow_non_loopback_proxy",
    "dangerously_allow_non_loopback_admin",
  ] as const;

  it.each(keys)("%s: constraint false forbids true", (key) => {
    const v = checkConstraints(net({ [key]: true }), { [key]: false });
    expect(v).toEqual([`network.${key}: true is not allowed by the managed constraints (must stay false)`]);
  });

  it.each(keys)("%s: constraint false allows false", (key) => {
    expect(checkConstraints(net({ [key]: false }), { [key]: false })).toEqual([]);
  });

  it.each(keys)("%s: constraint true constrains nothing", (key) => {
    expect(checkConstraints(net({ [key]: true }), { [key]: true })).toEqual([]);
    expect(checkConstraints(net({ [key]: false }), { [key]: true })).toEqual([]);
  });
});

describe("checkConstraints: mode", () => {
  it.each<[NetworkConfig["mode"], NetworkConfig["mode"], boolean]>([
    ["limited", "limited", true],
    ["limited", "full", false],
    ["full", "full", true],
    ["full", "limited", true],
  ])("managed %s, config %s → ok=%s", (managed, config, ok) => {
    const v = checkConstraints(net({ mode: config }), { mode: managed });
    expect(v.length === 0).toBe(ok);
  });

  it("names the value and the managed mode", () => {
    expect(checkConstraints(net({ mode: "full" }), { mode: "limited" })).toEqual([
      'network.mode: "full" is wider than the managed mode "limited"',
    ]);
  });
});

describe("checkConstraints: allowed_domains coverage", () => {
  it.each<[string, string, boolean]>([
    // managed `*` covers everything, a config `*` only by managed `*`
    ["*", "*", true],
    ["*", "**", true],
    ["*", "example.com", true],
    ["*", "**.example.com", true],
    ["*", "127.0.0.1", true],
    ["**", "*", true],
    ["**.example.com", "*", false],
    ["*.example.com", "*", false],
    ["example.com", "*", false],
    ["*.example.com", "**", false],
    // managed exact covers only itself
    ["example.com", "example.com", true],
    ["example.com", "EXAMPLE.com.", true],
    ["example.com", "example.com:443", true],
    // ports (issue 14): a managed entry for every port covers any port; a port-scoped one only its port
    ["example.com:8443", "example.com", false],
    ["example.com:8443", "example.com:8443", true],
    ["example.com:8443", "example.com:443", false],
    ["127.0.0.1:3000", "2130706433:3000", true],
    ["127.0.0.1:3000", "127.0.0.1", false],
    ["[::1]:8080", "[::1]:8080", true],
    ["**.example.com:443", "a.example.com:443", true],
    ["**.example.com:443", "example.com:443", true],
    ["*:443", "anything.example:443", true],
    ["*:443", "anything.example", false],
    ["example.com", "a.example.com", false],
    ["example.com", "*.example.com", false],
    ["example.com", "**.example.com", false],
    ["example.com", "evilexample.com", false],
    // IP spellings are canonical
    ["127.0.0.1", "2130706433", true],
    ["127.0.0.1", "0x7f.1", true],
    ["127.0.0.1", "127.1", true],
    ["127.0.0.1", "127.0.0.2", false],
    ["::1", "[::1]:443", true],
    ["::1", "0:0:0:0:0:0:0:1", true],
    ["::1", "127.0.0.1", false],
    // `*.d`: strictly under d
    ["*.example.com", "a.example.com", true],
    ["*.example.com", "a.b.example.com", true],
    ["*.example.com", "*.example.com", true],
    ["*.example.com", "*.a.example.com", true],
    ["*.example.com", "**.a.example.com", true],
    ["*.example.com", "*.EXAMPLE.COM.", true],
    ["*.example.com:443", "a.example.com", false],
    ["*.example.com:443", "a.example.com:443", true],
    ["*.example.com:443", "*.a.example.com:443", true],
    ["*.example.com:443", "a.example.com:80", false],
    ["*.example.com", "example.com", false],
    ["*.example.com", "**.example.com", false],
    ["*.example.com", "evilexample.com", false],
    ["*.example.com", "*.evilexample.com", false],
    ["*.example.com", "*.com", false],
    ["*.example.com", "127.0.0.1", false],
    // `**.d`: d and strictly under d
    ["**.example.com", "example.com", true],
    ["**.example.com", "a.example.com", true],
    ["**.example.com", "a.b.example.com", true],
    ["**.example.com", "*.example.com", true],
    ["**.example.com", "**.example.com", true],
    ["**.example.com", "*.a.example.com", true],
    ["**.example.com", "**.a.example.com", true],
    ["**.example.com", "**.com", false],
    ["**.example.com", "*.com", false],
    ["**.example.com", "com", false],
    ["**.example.com", "evilexample.com", false],
    ["**.example.com", "**.evilexample.com", false],
    // mid-label globs: covered when their fixed suffix is d or under d
    ["*.example.com", "region*.v2.example.com", true],
    ["**.example.com", "region*.v2.example.com", true],
    ["*.example.com", "region*.example.com", true],
    ["**.example.com", "region*.example.com", true],
    ["*.example.com", "api.*.example.com", true],
    ["*.example.com", "*.*.example.com", true],
    ["*.v2.example.com", "region*.example.com", false],
    ["*.example.com", "region*.com", false],
    ["*.example.com", "example.*", false],
    ["*.example.com", "example.com*", false],
    ["example.com", "region*.example.com", false],
    ["region1.example.com", "region*.example.com", false],
    // a managed glob covers the hosts it matches and an identical glob, nothing else (unsure → refuse)
    ["region*.example.com", "region1.example.com", true],
    ["region*.example.com", "other.example.com", false],
    ["region*.example.com", "REGION*.example.com.", true],
    ["region*.example.com", "region1*.example.com", false],
    ["api.*.example.com", "api.a.example.com", true],
    ["api.*.example.com", "*.example.com", false],
    // empty managed list allows nothing
    ["", "example.com", false],
  ])("managed %j covers %j: %s", (managed, config, expected) => {
    expect(allowedCovered(managed === "" ? [] : [managed], config)).toBe(expected);
  });

  it("a wildcard may be covered by several managed entries together", () => {
    expect(allowedCovered(["example.com", "*.example.com"], "**.example.com")).toBe(true);
    expect(allowedCovered(["a.example.com", "*.a.example.com"], "**.a.example.com")).toBe(true);
    expect(allowedCovered(["a.example.com"], "**.a.example.com")).toBe(false);
  });

  it("IDN entries compare in punycode", () => {
    expect(allowedCovered(["**.bücher.example"], "xn--bcher-kva.example")).toBe(true);
    expect(allowedCovered(["*.xn--bcher-kva.example"], "*.a.BÜCHER.example")).toBe(true);
  });

  it("names the entry and the managed allowlist", () => {
    const v = checkConstraints(net({ allowed_domains: ["*.evil.example", "api.example.com"] }), {
      allowed_domains: ["**.example.com", "api.example.com"],
    });
    expect(v).toEqual([
      'network.allowed_domains: "*.evil.example" is outside the managed allowlist (allowed: "**.example.com", "api.example.com")',
    ]);
  });

  it("reports each offending entry once, and an empty managed list as none", () => {
    const v = checkConstraints(net({ allowed_domains: ["a.example", "b.example", "a.example"] }), { allowed_domains: [] });
    expect(v).toEqual([
      'network.allowed_domains: "a.example" is outside the managed allowlist (allowed: none)',
      'network.allowed_domains: "b.example" is outside the managed allowlist (allowed: none)',
    ]);
  });

  it("elides a long managed list", () => {
    const managed = Array.from({ length: MAX_LISTED_ENTRIES + 3 }, (_, i) => `h${i}.example`);
    const [v] = checkConstraints(net({ allowed_domains: ["x.example"] }), { allowed_domains: managed });
    expect(v).toContain(`"h${MAX_LISTED_ENTRIES - 1}.example", … and 3 more)`);
    expect(v).not.toContain(`"h${MAX_LISTED_ENTRIES}.example"`);
  });

  it("refuses an invalid configured pattern, naming it", () => {
    const w = checkConstraints(net({ allowed_domains: ["a[b].example"] }), { allowed_domains: ["**.example"] });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^network\.allowed_domains: invalid domain pattern "a\[b\]\.example"/);
    expect(w[0]).toContain('(allowed: "**.example")');
    // Even under a managed `*`: what cannot be read cannot be checked.
    expect(checkConstraints(net({ allowed_domains: ["a[b].example"] }), { allowed_domains: ["*"] })).toHaveLength(1);
  });

  it("an invalid managed pattern covers nothing", () => {
    expect(allowedCovered(["a{b}.example", "ok.example"], "ok.example")).toBe(true);
    expect(allowedCovered(["a{b}.example"], "a{b}.example")).toBe(false);
  });
});

describe("checkConstraints: denied_domains", () => {
  it.each<[string[], string[], string[]]>([
    [["evil.example"], ["evil.example"], []],
    [["evil.example"], ["EVIL.example.", "other.example"], []],
    // a managed deny for every port needs the config to deny every port; a port-scoped one, that port
    [["evil.example"], ["evil.example:443"], ["evil.example"]],
    [["evil.example:443"], ["evil.example:443"], []],
    [["evil.example:443"], ["evil.example"], []],
    [["evil.example:443"], ["**.evil.example"], []],
    [["evil.example:443"], ["evil.example:80"], ["evil.example:443"]],
    [["127.0.0.1"], ["2130706433"], []],
    [["evil.example"], ["**.evil.example"], []],
    [["*.evil.example"], ["**.evil.example"], []],
    [["*.evil.example"], ["*.evil.example"], []],
    [["evil.example"], ["*"], []],
    [["evil.example"], [], ["evil.example"]],
    [["evil.example"], ["*.evil.example"], ["evil.example"]],
    [["**.evil.example"], ["*.evil.example"], ["**.evil.example"]],
    [["**.evil.example"], ["evil.example", "*.evil.example"], []],
    [["*.evil.example"], ["a.evil.example"], ["*.evil.example"]],
    [["evil.example", "bad.example"], ["other.example"], ["evil.example", "bad.example"]],
  ])("managed %j, config %j → missing %j", (managed, config, missing) => {
    const v = checkConstraints(net({ denied_domains: config }), { denied_domains: managed });
    expect(v).toEqual(missing.map((m) => `network.denied_domains: missing managed entry ${JSON.stringify(m)}`));
  });
});

describe("checkConstraints: allow_unix_sockets", () => {
  it.each<[string[], string[], string[]]>([
    [["/run/a.sock", "/run/b.sock"], ["/run/a.sock"], []],
    [["/run/a.sock"], [], []],
    [["/run/a.sock"], ["/run/a.sock", "/x.sock"], ["/x.sock"]],
    [[], ["/x.sock"], ["/x.sock"]],
  ])("managed %j, config %j → offending %j", (managed, config, offending) => {
    const v = checkConstraints(net({ allow_unix_sockets: config }), { allow_unix_sockets: managed });
    expect(v).toHaveLength(offending.length);
    offending.forEach((path, i) => expect(v[i]).toContain(`network.allow_unix_sockets: ${JSON.stringify(path)} is not in the managed list`));
  });

  it("names what is allowed", () => {
    expect(checkConstraints(net({ allow_unix_sockets: ["/x.sock"] }), { allow_unix_sockets: ["/run/a.sock"] })).toEqual([
      'network.allow_unix_sockets: "/x.sock" is not in the managed list (allowed: "/run/a.sock")',
    ]);
  });
});

describe("checkConstraints: several violations", () => {
  it("reports every violation, in key order", () => {
    const v = checkConstraints(
      net({
        enabled: true,
        mode: "full",
        allow_local_binding: true,
        dangerously_allow_non_loopback_admin: true,
        allowed_domains: ["*.evil.example", "api.example.com"],
        denied_domains: [],
        allow_unix_sockets: ["/x.sock"],
      }),
      {
        enabled: false,
        mode: "limited",
        allow_local_binding: false,
        dangerously_allow_non_loopback_admin: false,
        allowed_domains: ["**.example.com"],
        denied_domains: ["evil.example"],
        allow_unix_sockets: [],
      },
    );
    expect(v).toEqual([
      "network.enabled: true is not allowed by the managed constraints (must stay false)",
      "network.dangerously_allow_non_loopback_admin: true is not allowed by the managed constraints (must stay false)",
      'network.mode: "full" is wider than the managed mode "limited"',
      'network.allowed_domains: "*.evil.example" is outside the managed allowlist (allowed: "**.example.com")',
      'network.denied_domains: missing managed entry "evil.example"',
      "network.allow_local_binding: true is not allowed by the managed constraints (must stay false)",
      'network.allow_unix_sockets: "/x.sock" is not in the managed list (allowed: none)',
    ]);
  });
});

describe("validateConstraints", () => {
  it("accepts sound constraints", () => {
    expect(
      validateConstraints({ enabled: true, mode: "limited", allowed_domains: ["**.example.com"], allow_unix_sockets: ["/run/a.sock"] }),
    ).toEqual([]);
  });

  it("reports bad values", () => {
    const v = validateConstraints({
      mode: "wide" as never,
      enabled: "yes" as never,
      allowed_domains: ["a{b}.example"],
      denied_domains: [1] as never,
      allow_unix_sockets: ["run/a.sock"],
      proxy_url: "x",
    } as NetworkConstraints);
    expect(v).toEqual([
      'network.mode: "wide" is not a valid mode (expected "full" or "limited")',
      "network.enabled: expected boolean, got string",
      'network.allowed_domains[0]: invalid domain pattern "a{b}.example": glob syntax "{" is not supported',
      "network.denied_domains: expected array of strings",
      'network.allow_unix_sockets[0]: "run/a.sock" is not an absolute path',
      expect.stringContaining("network.proxy_url: unknown constraint key"),
    ]);
  });
});

describe("parseConstraintsText", () => {
  it("reads only the keys present", () => {
    const text = `
[network]
enabled = true
mode = "limited"
allow_local_binding = false
allowed_domains = ["**.example.com", "api.example.com"]
denied_domains = ["evil.example"]
allow_unix_sockets = ["/run/a.sock"]
`;
    expect(parseConstraintsText(text, PATH)).toEqual({
      enabled: true,
      mode: "limited",
      allow_local_binding: false,
      allowed_domains: ["**.example.com", "api.example.com"],
      denied_domains: ["evil.example"],
      allow_unix_sockets: ["/run/a.sock"],
    });
  });

  it("reads every constraint key, dotted keys too", () => {
    const text = CONSTRAINT_KEYS.map((k) =>
      k === "mode" ? `network.mode = "full"` : ["allowed_domains", "denied_domains", "allow_unix_sockets", "limited_mode_allow"].includes(k) ? `network.${k} = []` : `network.${k} = false`,
    ).join("\n");
    const c = parseConstraintsText(text, PATH);
    expect(Object.keys(c).sort()).toEqual([...CONSTRAINT_KEYS].sort());
  });

  it.each([
    ["an empty file", ""],
    ["an empty [network] table", "[network]\n"],
  ])("returns no constraints for %s", (_name, text) => {
    expect(parseConstraintsText(text, PATH)).toEqual({});
  });

  it("rejects an unknown key with its line and a suggestion", () => {
    const e = configError(() => parseConstraintsText(`[network]\nenabled = false\nallowed_domain = ["a.example"]\n`, PATH));
    expect(e.message).toMatch(new RegExp(`^${PATH}:3: network\\.allowed_domain: unknown constraint key \\(did you mean "allowed_domains"\\?`));
    expect(e.key).toBe("network.allowed_domain");
    expect(e.line).toBe(3);
  });

  it.each(NON_CONSTRAINT_KEYS.map((k) => [k]))("rejects the non-constraint key %s", (key) => {
    const value = key.startsWith("enable_") ? "true" : `"127.0.0.1:3128"`;
    const e = configError(() => parseConstraintsText(`[network]\n${key} = ${value}\n`, PATH));
    expect(e.message).toMatch(new RegExp(`^${PATH}:2: network\\.${key}: not a constraint`));
    expect(e.key).toBe(`network.${key}`);
  });

  it("lists exactly the documented non-constraint keys", () => {
    expect([...NON_CONSTRAINT_KEYS].sort()).toEqual(
      ["admin_token", "admin_url", "denied_unix_sockets", "enable_socks5", "enable_socks5_udp", "max_connections", "max_request_burst", "max_requests_per_second", "max_tunnels", "mitm_hooks", "proxy_url", "request_body_idle_timeout_secs", "socks_url", "tunnel_idle_timeout"].sort(),
    );
  });

  it.each([
    ["enabled", `"no"`, "expected boolean, got string"],
    ["allow_local_binding", "0", "expected boolean, got integer"],
    ["allowed_domains", `"a.example"`, "expected array of strings, got string"],
    ["denied_domains", `["a.example", 1]`, "expected array of strings, got array containing integer at index 1"],
    ["mode", `"wide"`, `"wide" is not a valid mode (expected "full" or "limited")`],
  ])("rejects a wrong type for %s", (key, value, detail) => {
    const e = configError(() => parseConstraintsText(`[network]\n\n${key} = ${value}\n`, PATH));
    expect(e.message).toBe(`${PATH}:3: network.${key}: ${detail}`);
    expect(e.line).toBe(3);
  });

  it("rejects a relative unix socket path", () => {
    const e = configError(() => parseConstraintsText(`[network]\nallow_unix_sockets = ["run/a.sock"]\n`, PATH));
    expect(e.message).toBe(`${PATH}:2: network.allow_unix_sockets[0]: "run/a.sock" is not an absolute path`);
  });

  it.each(["allowed_domains", "denied_domains"])("rejects an invalid pattern in %s, naming it", (key) => {
    const e = configError(() => parseConstraintsText(`[network]\n${key} = ["ok.example", "a{b}.example"]\n`, PATH));
    expect(e.message).toBe(`${PATH}:2: network.${key}[1]: invalid domain pattern "a{b}.example": glob syntax "{" is not supported`);
    expect(e.key).toBe(`network.${key}`);
  });

  it("rejects other top-level keys (a misspelt table must not drop every constraint)", () => {
    const e = configError(() => parseConstraintsText(`[netwrok]\nenabled = false\n`, PATH));
    expect(e.message).toBe(`${PATH}:1: netwrok: unknown top-level key in a constraints file (only the [network] table is allowed)`);
  });

  it("reports TOML syntax errors like the config", () => {
    const e = configError(() => parseConstraintsText(`[network]\nenabled = \n`, PATH));
    expect(e.message).toMatch(new RegExp(`^failed to parse ${PATH}: line 2`));
    expect(e.line).toBe(2);
  });

  it("rejects a [network] that is not a table", () => {
    const e = configError(() => parseConstraintsText(`network = 1\n`, PATH));
    expect(e.message).toBe(`${PATH}:1: network: expected table, got integer`);
  });

  it("parsed constraints drive checkConstraints", () => {
    const c = parseConstraintsText(`[network]\nmode = "limited"\nallowed_domains = ["*.example.com"]\n`, PATH);
    expect(checkConstraints(net({ mode: "limited", allowed_domains: ["a.example.com"] }), c)).toEqual([]);
    expect(checkConstraints(net({ mode: "full", allowed_domains: ["example.com"] }), c)).toHaveLength(2);
  });
});
