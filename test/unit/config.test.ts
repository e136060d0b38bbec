import { describe, it, expect } from "vitest";
import { parse } from "smol-toml";
import { ConfigError, defaultNetworkConfig, parseConfigText } from "../../src/core/config/index.ts";
import { findKeyLine } from "../../src/core/config/key-line.ts";
import { redactSecretLines } from "../../src/core/config/parse.ts";
import { closestMatch, editDistance } from "../../src/core/config/suggest.ts";

const PATH = "/home/u/.codex/config.toml";

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

describe("parseConfigText defaults", () => {
  it.each([
    ["empty file", ""],
    ["no [network] table", `model = "x"\n[profiles.a]\nname = "b"\n`],
    ["empty [network] table", "[network]\n"],
  ])("returns the defaults for %s", (_name, text) => {
    const loaded = parseConfigText(text, PATH);
    expect(loaded.network).toEqual(defaultNetworkConfig());
    expect(loaded.network.enabled).toBe(false);
    expect(loaded.network.admin_token).toBeUndefined();
    expect(loaded.warnings).toEqual([]);
  });

  it("reads every key", () => {
    const text = `
[network]
enabled = true
proxy_url = "http://127.0.0.1:4000"
admin_url = "127.0.0.1:4001"
enable_socks5 = true
socks_url = "socks5://127.0.0.1:4002"
enable_socks5_udp = true
allow_upstream_proxy = true
dangerously_allow_non_loopback_proxy = true
dangerously_allow_non_loopback_admin = true
mode = "limited"
allowed_domains = ["example.com", "*.example.org"]
denied_domains = ["bad.example.com"]
allow_local_binding = true
allow_unix_sockets = ["/tmp/a.sock"]
limited_mode_allow = [{ host = "github.com", methods = ["post"], path_prefixes = ["pattern:/*/*/git-upload-pack"] }]
dangerously_allow_all_unix_sockets = true
denied_unix_sockets = ["/tmp/b.sock"]
request_body_idle_timeout_secs = 15
max_connections = 100
max_tunnels = 10
max_requests_per_second = 50
max_request_burst = 20
tunnel_idle_timeout = 600
admin_token = "s3cret"
mitm = true
`;
    const { network, warnings } = parseConfigText(text, PATH);
    expect(warnings).toEqual([]);
    expect(network).toEqual({
      enabled: true,
      proxy_url: "http://127.0.0.1:4000",
      admin_url: "127.0.0.1:4001",
      enable_socks5: true,
      socks_url: "socks5://127.0.0.1:4002",
      enable_socks5_udp: true,
      allow_upstream_proxy: true,
      dangerously_allow_non_loopback_proxy: true,
      dangerously_allow_non_loopback_admin: true,
      mode: "limited",
      allowed_domains: ["example.com", "*.example.org"],
      denied_domains: ["bad.example.com"],
      allow_local_binding: true,
      allow_unix_sockets: ["/tmp/a.sock"],
      limited_mode_allow: [{ host: "github.com", methods: ["POST"], path_prefixes: ["pattern:/*/*/git-upload-pack"] }],
      dangerously_allow_all_unix_sockets: true,
      denied_unix_sockets: ["/tmp/b.sock"],
      request_body_idle_timeout_secs: 15,
      max_connections: 100,
      max_tunnels: 10,
      max_requests_per_second: 50,
      max_request_burst: 20,
      tunnel_idle_timeout: 600,
      admin_token: "s3cret",
      mitm: true,
      mitm_hooks: [],
    });
  });

  it("accepts the top-level dotted form", () => {
    const { network } = parseConfigText(`network.enabled = true\nnetwork.mode = "limited"\n`, PATH);
    expect(network.enabled).toBe(true);
    expect(network.mode).toBe("limited");
  });

  it("ignores other top-level tables and keys", () => {
    const text = `
model = 3
[otel]
exporter = 1
[analytics]
enabled = "yes"
[network]
enabled = true
[other]
mode = "nonsense"
`;
    const loaded = parseConfigText(text, PATH);
    expect(loaded.network.enabled).toBe(true);
    expect(loaded.network.mode).toBe("full");
    expect(loaded.warnings).toEqual([]);
  });

  it("does not share arrays between results", () => {
    const a = parseConfigText(`[network]\nallowed_domains = ["a.example"]\n`, PATH);
    a.network.allowed_domains.push("b.example");
    expect(parseConfigText(`[network]\nallowed_domains = ["a.example"]\n`, PATH).network.allowed_domains).toEqual([
      "a.example",
    ]);
    expect(defaultNetworkConfig().allowed_domains).toEqual([]);
  });
});

describe("parseConfigText type errors", () => {
  const cases: [key: string, value: string, expected: string, got: string][] = [
    ["enabled", `"true"`, "boolean", "string"],
    ["proxy_url", "3128", "string", "integer"],
    ["admin_url", "true", "string", "boolean"],
    ["enable_socks5", "1", "boolean", "integer"],
    ["socks_url", "[]", "string", "array"],
    ["enable_socks5_udp", "1.5", "boolean", "float"],
    ["allow_upstream_proxy", "{}", "boolean", "table"],
    ["dangerously_allow_non_loopback_proxy", `"no"`, "boolean", "string"],
    ["dangerously_allow_non_loopback_admin", "0", "boolean", "integer"],
    ["mode", "1", "string", "integer"],
    ["allowed_domains", "1", "array of strings", "integer"],
    ["allowed_domains", `"example.com"`, "array of strings", "string"],
    ["allowed_domains", `["a.example", 2]`, "array of strings", "array containing integer at index 1"],
    ["denied_domains", "{ a = 1 }", "array of strings", "table"],
    ["allow_local_binding", "1979-05-27", "boolean", "datetime"],
    ["allow_unix_sockets", "true", "array of strings", "boolean"],
    ["allow_unix_sockets", `[["/a"]]`, "array of strings", "array containing array at index 0"],
    ["admin_token", "42", "string", "integer"],
    ["request_body_idle_timeout_secs", `"60"`, "a whole number of seconds", "string"],
    ["request_body_idle_timeout_secs", "1.5", "a whole number of seconds", "float"],
  ];

  it.each(cases)("network.%s = %s", (key, value, expected, got) => {
    const text = `# header comment\n[network]\n${key} = ${value}\n`;
    const err = configError(() => parseConfigText(text, PATH));
    expect(err.key).toBe(`network.${key}`);
    expect(err.line).toBe(3);
    expect(err.message).toBe(`${PATH}:3: network.${key}: expected ${expected}, got ${got}`);
  });

  it("reports the line of a dotted top-level key", () => {
    const err = configError(() => parseConfigText(`a = 1\n\nnetwork.allowed_domains = 7\n`, PATH));
    expect(err.line).toBe(3);
    expect(err.message).toBe(`${PATH}:3: network.allowed_domains: expected array of strings, got integer`);
  });

  it("omits the line when the key cannot be located (inline table)", () => {
    const err = configError(() => parseConfigText(`network = { enabled = 1 }\n`, PATH));
    expect(err.key).toBe("network.enabled");
    expect(err.line).toBeUndefined();
    expect(err.message).toBe(`${PATH}: network.enabled: expected boolean, got integer`);
  });

  it.each([
    ["network = 5\n", "integer", 1],
    [`x = 1\nnetwork = "on"\n`, "string", 2],
    ["[[network]]\nenabled = true\n", "array", 1],
  ])("rejects a non-table network: %j", (text, got, line) => {
    const err = configError(() => parseConfigText(text, PATH));
    expect(err.key).toBe("network");
    expect(err.line).toBe(line);
    expect(err.message).toBe(`${PATH}:${line}: network: expected table, got ${got}`);
  });
});

describe("parseConfigText value errors", () => {
  it.each(["-1", "86401", "9999999999999999"])("rejects request_body_idle_timeout_secs = %s, naming the range", (value) => {
    const err = configError(() => parseConfigText(`[network]\nrequest_body_idle_timeout_secs = ${value}\n`, PATH));
    expect(err.key).toBe("network.request_body_idle_timeout_secs");
    expect(err.line).toBe(2);
    expect(err.message).toBe(
      `${PATH}:2: network.request_body_idle_timeout_secs: ${Number(value)} is out of range (0 to 86400 seconds; 0 means no limit)`,
    );
  });

  it.each([
    ["0", 0],
    ["86400", 86_400],
    ["60.0", 60],
  ])("accepts request_body_idle_timeout_secs = %s", (value, secs) => {
    expect(parseConfigText(`[network]\nrequest_body_idle_timeout_secs = ${value}\n`, PATH).network.request_body_idle_timeout_secs).toBe(secs);
  });

  it("defaults request_body_idle_timeout_secs to 60", () => {
    expect(defaultNetworkConfig().request_body_idle_timeout_secs).toBe(60);
  });

  it("rejects an unknown mode, naming the value and the allowed values", () => {
    const err = configError(() => parseConfigText(`[network]\nmode = "fast"\n`, PATH));
    expect(err.key).toBe("network.mode");
    expect(err.line).toBe(2);
    expect(err.message).toBe(`${PATH}:2: network.mode: "fast" is not a valid mode (expected "full" or "limited")`);
  });

  it("rejects a relative unix socket path, naming its index", () => {
    const err = configError(() =>
      parseConfigText(`[network]\nallow_unix_sockets = ["/tmp/ok.sock", "rel.sock"]\n`, PATH),
    );
    expect(err.key).toBe("network.allow_unix_sockets");
    expect(err.line).toBe(2);
    expect(err.message).toBe(`${PATH}:2: network.allow_unix_sockets[1]: "rel.sock" is not an absolute path`);
  });

  it.each([`""`, `"   "`])("rejects an empty admin_token %s", (value) => {
    const err = configError(() => parseConfigText(`[network]\nadmin_token = ${value}\n`, PATH));
    expect(err.message).toBe(`${PATH}:2: network.admin_token: must not be empty`);
  });

  it.each([
    [`"two words"`, "it holds whitespace (a space, tab or line break)"],
    [`"=pad-first"`, "= may only end it, as padding"],
    [`"caf\u00e9"`, "it holds a non-ASCII character"],
  ])("rejects an admin_token %s that no request could present, naming key and line but not the token", (value, reason) => {
    const err = configError(() => parseConfigText(`[network]\nenabled = true\nadmin_token = ${value}\n`, PATH));
    expect(err.key).toBe("network.admin_token");
    expect(err.line).toBe(3);
    expect(err.message).toContain(`${PATH}:3: network.admin_token: is not a bearer token: ${reason}`);
    expect(err.message).not.toContain(JSON.parse(value) as string);
  });

  it("accepts an admin_token in RFC 6750 b64token syntax", () => {
    const { network } = parseConfigText(`[network]\nadmin_token = "Ab0-._~+/xyz=="\n`, PATH);
    expect(network.admin_token).toBe("Ab0-._~+/xyz==");
  });

  it("rejects an unparsable listener URL with the file location", () => {
    const err = configError(() => parseConfigText(`[network]\n\nadmin_url = "127.0.0.1"\n`, PATH));
    expect(err.key).toBe("network.admin_url");
    expect(err.line).toBe(3);
    expect(err.message).toMatch(new RegExp(`^${PATH}:3: network\\.admin_url: "127\\.0\\.0\\.1": missing port`));
  });

  it("validates domain patterns, naming the key, index, line and pattern", () => {
    const err = configError(() => parseConfigText(`[network]\nallowed_domains = ["ok.example", "{x}"]\n`, PATH));
    expect(err.message).toMatch(new RegExp(`^${PATH.replace(/[.]/g, "\\.")}:2: network\\.allowed_domains\\[1\\]: .*"\\{x\\}"`));
    expect(err.key).toBe("network.allowed_domains");
    expect(err.line).toBe(2);
    const denied = configError(() => parseConfigText(`[network]\ndenied_domains = ["a[b"]\n`, PATH));
    expect(denied.message).toContain("network.denied_domains[0]");
  });
});

describe("parseConfigText syntax errors", () => {
  function parseError(text: string): unknown {
    try {
      parse(text);
    } catch (e) {
      return e;
    }
    throw new Error("expected a TOML error");
  }

  it("reports smol-toml's message with the path, line and column", () => {
    const text = `[network]\nenabled = tru\n`;
    const err = configError(() => parseConfigText(text, PATH));
    let tomlMessage = "";
    try {
      parse(text);
    } catch (e) {
      tomlMessage = (e as Error).message;
    }
    expect(tomlMessage).not.toBe("");
    const [first, ...excerpt] = tomlMessage.split("\n");
    expect(err.message).toBe(`failed to parse ${PATH}: line 2, column ${(parseError(text) as { column: number }).column}: ${first!.trim()}\n${excerpt.join("\n").trimEnd()}`);
    expect(err.message).toMatch(/^failed to parse \S+: line 2, column \d+: /);
    expect(err.line).toBe(2);
    expect(err.key).toBeUndefined();
  });

  it("rejects duplicate keys", () => {
    const err = configError(() => parseConfigText(`[network]\nenabled = true\nenabled = false\n`, PATH));
    expect(err.message.startsWith(`failed to parse ${PATH}: `)).toBe(true);
    expect(err.line).toBe(3);
  });
});

describe("unknown keys", () => {
  it("warns with a suggestion for a near miss", () => {
    const loaded = parseConfigText(`[network]\nenabled = true\nallowed_domain = ["example.com"]\n`, PATH);
    expect(loaded.network.enabled).toBe(true);
    expect(loaded.network.allowed_domains).toEqual([]);
    expect(loaded.warnings).toEqual([
      `${PATH}:3: network.allowed_domain: unknown key, ignored (did you mean "allowed_domains"?)`,
    ]);
  });

  it("warns without a suggestion when nothing is close", () => {
    const loaded = parseConfigText(`[network]\ncompletely_unrelated = 1\n`, PATH);
    expect(loaded.warnings).toEqual([`${PATH}:2: network.completely_unrelated: unknown key, ignored`]);
  });

  it("warns about a nested table under [network]", () => {
    const loaded = parseConfigText(`[network.mdoe]\nx = 1\n`, PATH);
    expect(loaded.warnings).toEqual([`${PATH}:1: network.mdoe: unknown key, ignored (did you mean "mode"?)`]);
  });

  it("warns in the dotted form", () => {
    const loaded = parseConfigText(`network.enabeld = true\n`, PATH);
    expect(loaded.warnings).toEqual([`${PATH}:1: network.enabeld: unknown key, ignored (did you mean "enabled"?)`]);
  });
});

describe("findKeyLine", () => {
  const text = [
    `# network.mode = "x" in a comment`, // 1
    `mode = "top"`, // 2
    `[other]`, // 3
    `mode = "other"`, // 4
    `[network]`, // 5
    `note = """`, // 6
    `mode = "inside a string"`, // 7
    `"""`, // 8
    `  "mode" = "full" # trailing`, // 9
    `[ network . sub ]`, // 10
    `key = 1`, // 11
    `[[arr]]`, // 12
    `proxy_url = "a"`, // 13
  ].join("\n");

  it.each([
    ["network", "mode", 9],
    ["", "mode", 2],
    ["other", "mode", 4],
    ["network", "sub", 10],
    ["network.sub", "key", 11],
    ["network", "proxy_url", undefined],
    ["arr", "proxy_url", 13],
    ["", "network", 5],
    ["network", "missing", undefined],
  ] as const)("[%s] %s → %s", (table, key, line) => {
    expect(findKeyLine(text, table, key)).toBe(line);
  });

  it("handles the top-level dotted form and CRLF line endings", () => {
    expect(findKeyLine(`a = 1\r\n network . "mode" = "full"\r\n`, "network", "mode")).toBe(2);
  });
});

describe("suggestions", () => {
  it("computes edit distance", () => {
    expect(editDistance("mode", "mode")).toBe(0);
    expect(editDistance("mdoe", "mode")).toBe(2);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
  });

  it("suggests only within distance 3", () => {
    expect(closestMatch("enabeld", ["enabled", "mode"])).toBe("enabled");
    expect(closestMatch("abcdefgh", ["enabled", "mode"])).toBeUndefined();
  });
});

describe("secrets in parse errors", () => {
  it("never quotes the admin token of a broken file", () => {
    const text = `[network]\nenabled = true\nadmin_token = "s3cret-token\n`;
    const err = configError(() => parseConfigText(text, PATH));
    expect(err.message).not.toContain("s3cret");
    expect(err.message).toContain("admin_token = <redacted>");
  });

  it("redacts only the assignment line, keeping the rest of the excerpt", () => {
    expect(redactSecretLines('4:  mode = "x"\n5:  admin_token = "abc" # c\n   ^')).toBe('4:  mode = "x"\n5:  admin_token = <redacted>\n   ^');
    expect(redactSecretLines("network.admin_token = 'abc'")).toBe("network.admin_token = <redacted>");
  });
});
