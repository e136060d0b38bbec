/**
 * `[[network.mitm_hooks]]` (docs/behaviour.md §5.19): the config checks and their messages
 * (hook index, key, line), reading secrets without ever echoing one, matching (methods, literal
 * and glob path prefixes, query and header values, paths an origin could read otherwise), the
 * header actions, and the gate's step 5b: interception of a hooked host's CONNECT in full mode,
 * `mitm_hook_denied` for what matches no hook, for a secret that would leave without TLS, and for
 * SOCKS5. No socket: the in-memory net with a tripwire dialler.
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/core/config/error.ts";
import { parseConfigText } from "../../src/core/config/parse.ts";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { passGate } from "../../src/core/gate/gate.ts";
import type { GateRequest } from "../../src/core/gate/types.ts";
import type { HttpHeader } from "../../src/core/http/parser.ts";
import { endToEndHeaders } from "../../src/core/http/headers.ts";
import { headBytes } from "../../src/core/http/head-bytes.ts";
import { latin1 } from "../../src/core/net/bytes.ts";
import { parseMitmHooks, type MitmHookConfig } from "../../src/core/mitm/hook-config.ts";
import { readHookSecrets } from "../../src/core/mitm/hook-secrets.ts";
import { applyHook, HookTable, matchHook } from "../../src/core/mitm/hooks.ts";
import { silentLogger } from "../../src/core/log.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState, StateChangeError } from "../../src/core/state.ts";
import { tripwireNet } from "../helpers/memory-net.ts";

const PATH = "/etc/codex/config.toml";
const SECRET = "s3cr3t-t0ken-value";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

const GOOD = `
[network]
enabled = true
mitm = true

[[network.mitm_hooks]]
host = "API.Example.COM."
match = { methods = ["get", "POST"], path_prefixes = ["/v1/", "pattern:/repos/*/issues"], query = { state = ["open", "closed"], page = [] }, headers = { "X-Api-Version" = ["2"] } }
actions.strip_request_headers = ["Cookie"]
actions.inject_request_headers = [{ name = "Authorization", secret_env_var = "API_TOKEN", prefix = "Bearer " }]

[[network.mitm_hooks]]
host = "127.0.0.1"
match.methods = ["GET"]
match.path_prefixes = ["/"]
`;

describe("parsing [[network.mitm_hooks]]", () => {
  it("reads hooks with normalised host, upper-case methods, lower-case header names", () => {
    const { network } = parseConfigText(GOOD, PATH);
    expect(network.mitm_hooks).toEqual([
      {
        host: "api.example.com",
        match: { methods: ["GET", "POST"], path_prefixes: ["/v1/", "pattern:/repos/*/issues"], query: { state: ["open", "closed"], page: [] }, headers: { "x-api-version": ["2"] } },
        actions: { strip_request_headers: ["cookie"], inject_request_headers: [{ name: "authorization", secret_env_var: "API_TOKEN", prefix: "Bearer " }] },
      },
      { host: "127.0.0.1", match: { methods: ["GET"], path_prefixes: ["/"] }, actions: { strip_request_headers: [], inject_request_headers: [] } },
    ]);
  });

  const okMatch = `match = { methods = ["GET"], path_prefixes = ["/"] }`;
  /** The second hook of a file, with `body` as its contents; its header is on line 7. */
  const second = (body: string) => `[network]\nenabled = true\nmitm = true\n[[network.mitm_hooks]]\nhost = "a.example"\n${okMatch}\n[[network.mitm_hooks]]\n${body}\n`;
  it.each([
    [`host = "*.example.com"\n${okMatch}`, "[1].host", "wildcards are not accepted"],
    [`host = "b.example:443"\n${okMatch}`, "[1].host", "without a port"],
    [`host = "bad host"\n${okMatch}`, "[1].host", "is not a host name or IP address"],
    [okMatch, "[1].host", "missing"],
    [`host = 7\n${okMatch}`, "[1].host", "expected string, got integer"],
    [`host = "b.example"`, "[1].match", "missing (required)"],
    [`host = "b.example"\nmatch = { path_prefixes = ["/"] }`, "[1].match.methods", "missing (required)"],
    [`host = "b.example"\nmatch = { methods = [], path_prefixes = ["/"] }`, "[1].match.methods", "must not be empty"],
    [`host = "b.example"\nmatch = { methods = ["G ET"], path_prefixes = ["/"] }`, "[1].match.methods[0]", "is not an HTTP method"],
    [`host = "b.example"\nmatch = { methods = ["GET"] }`, "[1].match.path_prefixes", "missing (required)"],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["v1/"] }`, "[1].match.path_prefixes[0]", `must start with "/"`],
    [`host = "b.example"\nmatch = { methods = ["GET", "trace"], path_prefixes = ["/"] }`, "[1].match.methods[1]", "TRACE is not accepted (TRACE echoes injected secrets"],
    [`host = "b.example"\nmatch = { methods = ["CONNECT"], path_prefixes = ["/"] }`, "[1].match.methods[0]", "CONNECT is not accepted"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key", secret_env_var = "A" }, { name = "X-Key", secret_env_var = "B" }]`, "[1].actions.inject_request_headers[1].name", `"x-key" is injected twice`],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key", secret_env_var = "CODEX_NETWORK_PROXY_ADMIN_TOKEN" }]`, "[1].actions.inject_request_headers[0].secret_env_var", "holds the proxy's own admin token"],
    [`host = "b.example"\n${okMatch}\nactions.strip_request_headers = ["Expect"]`, "[1].actions.strip_request_headers[0]", "set by the proxy itself"],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["pattern:*/x"] }`, "[1].match.path_prefixes[0]", `must start with "/"`],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["/a?b"] }`, "[1].match.path_prefixes[0]", "holds a character"],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"], body = {} }`, "[1].match.body", "is reserved"],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"], query = { q = "x" } }`, "[1].match.query.q", "expected array of strings"],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"], headers = { "a b" = [] } }`, "[1].match.headers.a b", "is not a header name"],
    [`host = "b.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"], verb = 1 }`, "[1].match.verb", "unknown key"],
    [`host = "b.example"\n${okMatch}\nextra = 1`, "[1].extra", "unknown key"],
    [`host = "b.example"\n${okMatch}\nactions.strip_request_headers = ["Host"]`, "[1].actions.strip_request_headers[0]", "set by the proxy itself"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "content-length", secret_env_var = "X" }]`, "[1].actions.inject_request_headers[0].name", "set by the proxy itself"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key" }]`, "[1].actions.inject_request_headers[0]", "exactly one of secret_env_var and secret_file"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key", secret_env_var = "A", secret_file = "/k" }]`, "[1].actions.inject_request_headers[0]", "exactly one of"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key", secret_file = "keys/k" }]`, "[1].actions.inject_request_headers[0].secret_file", "is not an absolute path"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key", secret_env_var = "A-B" }]`, "[1].actions.inject_request_headers[0].secret_env_var", "is not an environment variable name"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = [{ name = "x-key", secret_env_var = "A", prefix = "a\\nb" }]`, "[1].actions.inject_request_headers[0].prefix", "control character"],
    [`host = "b.example"\n${okMatch}\nactions.inject_request_headers = { name = "x-key", secret_env_var = "A" }`, "[1].actions.inject_request_headers", "expected an array of tables"],
  ])("%j: network.mitm_hooks%s, on the hook's line", (body, key, detail) => {
    const e = configError(() => parseConfigText(second(body), PATH));
    expect(e.message.startsWith(`${PATH}:7: network.mitm_hooks${key}: `), e.message).toBe(true);
    expect(e.message).toContain(detail);
    expect(e.key).toBe("network.mitm_hooks");
    expect(e.line).toBe(7);
  });

  it("hooks without mitm = true are an error naming both keys", () => {
    const e = configError(() => parseConfigText(`[network]\n[[network.mitm_hooks]]\nhost = "a.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"] }\n`, PATH));
    expect(e.message).toBe(`${PATH}:2: network.mitm_hooks: hooks act on intercepted requests: they need network.mitm = true`);
  });

  it("a value that is not an array of tables names the list", () => {
    const e = configError(() => parseConfigText(`[network]\nmitm = true\nmitm_hooks = "x"\n`, PATH));
    expect(e.message).toBe(`${PATH}:3: network.mitm_hooks: expected an array of tables ([[network.mitm_hooks]]), got string`);
  });
});

function hooks(text: string): MitmHookConfig[] {
  return parseConfigText(`[network]\nmitm = true\n${text}`, PATH).network.mitm_hooks;
}

describe("reading hook secrets", () => {
  const inject = (src: string) => hooks(`[[network.mitm_hooks]]\nhost = "a.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"] }\nactions.inject_request_headers = [{ name = "x-key", ${src} }]\n`);

  it("reads a variable and a file (its trailing line break dropped), each once", async () => {
    let reads = 0;
    const reader = { env: (n: string) => (n === "API_TOKEN" ? SECRET : undefined), readTextFile: async (p: string) => (reads++, p === "/run/key" ? `${SECRET}-file\n` : null) };
    const both = [...inject(`secret_env_var = "API_TOKEN"`), ...inject(`secret_file = "/run/key"`), ...inject(`secret_file = "/run/key"`)];
    const secrets = await readHookSecrets(both, reader);
    expect([...secrets]).toEqual([["env:API_TOKEN", SECRET], ["file:/run/key", `${SECRET}-file`]]);
    expect(reads).toBe(1);
  });

  it.each([
    ["an unset variable", `secret_env_var = "NOPE"`, "secret_env_var: environment variable NOPE is not set or empty"],
    ["an empty variable", `secret_env_var = "EMPTY"`, "secret_env_var: environment variable EMPTY is not set or empty"],
    ["a missing file", `secret_file = "/run/missing"`, "secret_file: /run/missing does not exist"],
    ["an empty file", `secret_file = "/run/empty"`, "secret_file: /run/empty is empty"],
    ["a value with a line break", `secret_env_var = "MULTILINE"`, "the secret holds a line break or control character a header cannot carry"],
    ["an unreadable file", `secret_file = "/run/denied"`, "secret_file: cannot read /run/denied: permission denied"],
  ])("%s is a ConfigError naming the hook and key, never the value", async (_what, src, detail) => {
    const reader = {
      env: (n: string) => ({ EMPTY: "", MULTILINE: `${SECRET}\r\nx-evil: 1` })[n],
      readTextFile: async (p: string) => {
        if (p === "/run/denied") throw new Error("permission denied");
        return p === "/run/empty" ? "\n" : null;
      },
    };
    const e = await readHookSecrets(inject(src), reader).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toBe(`network.mitm_hooks[0].actions.inject_request_headers[0]${detail.startsWith("the") ? ": " : "."}${detail}`);
    expect((e as Error).message).not.toContain(SECRET);
  });
});

function h(name: string, value: string): HttpHeader {
  return { name, value, lower: name.toLowerCase() };
}

describe("matching a request against a host's hooks", () => {
  const table = HookTable.compile(parseConfigText(GOOD, PATH).network.mitm_hooks, new Map([["env:API_TOKEN", SECRET]]));
  const api = table.forHost("api.example.com")!;
  const version = [h("X-Api-Version", "2")];

  it("hooks are found by normalised host only", () => {
    expect(api).toHaveLength(1);
    expect(table.forHost("127.0.0.1")).toHaveLength(1);
    expect(table.forHost("other.example.com")).toBeUndefined();
    expect(HookTable.compile([], new Map()).forHost("api.example.com")).toBeUndefined();
  });

  it.each([
    ["GET", "/v1/models?state=open&page=2", version, true],
    ["POST", "/v1/?state=closed&page=", version, true],
    ["GET", "/repos/octo/issues/7?page=1&state=closed", version, true],
    ["GET", "/repos/octo/issues?page=&state=open", version, true],
    ["PUT", "/v1/models?state=open&page=1", version, false], // method
    ["get", "/v1/models?state=open&page=1", version, false], // methods are case-sensitive
    ["GET", "/v2/models?state=open&page=1", version, false], // prefix
    ["GET", "/v1?state=open&page=1", version, false], // "/v1/" is a literal prefix
    ["GET", "/repos/octo/sub/issues?state=open&page=1", version, false], // * does not cross /
    ["GET", "/v1/models?page=1", version, false], // state missing
    ["GET", "/v1/models?state=all&page=1", version, false], // value not allowed
    ["GET", "/v1/models?state=open&state=all&page=1", version, false], // every occurrence must be allowed
    ["GET", "/v1/models?state=open", version, false], // page must be present
    ["GET", "/v1/models?state=op%65n&page=1", version, true], // query values are decoded
    ["GET", "/v1/models?state=open&page=1", [], false], // header missing
    ["GET", "/v1/models?state=open&page=1", [h("x-api-version", "3")], false], // header value
    ["GET", "/v1/models?state=open&page=1", [h("X-API-VERSION", " 2 ")], true], // name case, value trimmed
    ["GET", "/v1/../admin?state=open&page=1", version, false], // dot segments
    ["GET", "/v1/./x?state=open&page=1", version, false],
    ["GET", "/v1/%2e%2e/admin?state=open&page=1", version, false], // encoded dots
    ["GET", "/v1/a%2Fb?state=open&page=1", version, false], // encoded slash
    ["GET", "/v1/a%5cb?state=open&page=1", version, false], // encoded backslash
    ["GET", "/v1/a\\..\\b?state=open&page=1", version, false], // backslash
    ["GET", "/v1/..foo?state=open&page=1", version, true], // ".." inside a segment is a name
    ["GET", "/v1/..#x?state=open&page=1", version, false], // "#": URL parsers cut the path there
    ["GET", "/v1/x#frag?state=open&page=1", version, false],
    ["GET", "/v1/..;/admin?state=open&page=1", version, false], // servlet containers read "..;" as ".."
    ["GET", "/v1//admin?state=open&page=1", version, false], // an empty segment, merged by some servers
    ["GET", "/repos//issues?state=open&page=1", version, false], // a glob's * needs at least one character
    ["GET", "/v1/models?state=open&page=1", [...version, h("Connection", "X-Api-Version")], false], // a condition on a header that is dropped
  ])("%s %s %j → %s", (method, path, headers, matches) => {
    expect(matchHook(api, { method, path, headers }) !== undefined).toBe(matches);
  });

  it("the first matching hook applies", () => {
    const two = HookTable.compile(
      hooks(`[[network.mitm_hooks]]\nhost = "a.example"\nmatch = { methods = ["GET"], path_prefixes = ["/x/"] }\n[[network.mitm_hooks]]\nhost = "a.example"\nmatch = { methods = ["GET"], path_prefixes = ["/"] }\n`),
      new Map(),
    ).forHost("a.example")!;
    expect(matchHook(two, { method: "GET", path: "/x/1", headers: [] })?.index).toBe(0);
    expect(matchHook(two, { method: "GET", path: "/y", headers: [] })?.index).toBe(1);
  });

  it("actions strip headers, replace what the client sent under an injected name, and survive a Connection header naming it", () => {
    const sent = [h("Host", "api.example.com"), h("Cookie", "a=1"), h("authorization", "Bearer client-own"), h("Accept", "*/*"), h("Connection", "keep-alive, Authorization")];
    const out = applyHook(sent, api[0]!);
    expect(out.map((x) => [x.name, x.value])).toEqual([["Host", "api.example.com"], ["Accept", "*/*"], ["authorization", `Bearer ${SECRET}`]]);
    // what the exchange sends: the injected header is end-to-end
    expect(latin1(headBytes("GET / HTTP/1.1", endToEndHeaders(out)))).toContain(`authorization: Bearer ${SECRET}\r\n`);
  });

  it("compiling without a hook's secret is an error naming the hook", () => {
    expect(() => HookTable.compile(parseConfigText(GOOD, PATH).network.mitm_hooks, new Map())).toThrow(/network\.mitm_hooks\[0\]: the secret of header authorization was not read/);
  });
});

describe("the gate with hooks (step 5b)", () => {
  const config = (extra: Partial<NetworkConfig> = {}): NetworkConfig => ({
    ...defaultNetworkConfig(),
    enabled: true,
    mitm: true,
    allowed_domains: ["127.0.0.1", "127.0.0.2"],
    mitm_hooks: hooks(
      `[[network.mitm_hooks]]\nhost = "127.0.0.1"\nmatch = { methods = ["GET", "POST"], path_prefixes = ["/api/"] }\nactions.inject_request_headers = [{ name = "authorization", secret_env_var = "API_TOKEN", prefix = "Bearer " }]\n` +
        `[[network.mitm_hooks]]\nhost = "127.0.0.1"\nmatch = { methods = ["GET"], path_prefixes = ["/public/"] }\n`,
    ),
    ...extra,
  });
  function context(network: NetworkConfig) {
    const { net } = tripwireNet({});
    const state = new ProxyState(network, { resolve: (x) => net.resolve(x) }, { secrets: new Map([["env:API_TOKEN", SECRET]]) });
    const records: DecisionRecord[] = [];
    state.addSink((r) => records.push(r));
    const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false };
    return { ctx, state, records };
  }
  const base = { host: "127.0.0.1", port: 8443, client: "127.0.0.1:50000" } as const;
  const request = (method: string, path: string, tls: boolean): GateRequest => ({ ...base, protocol: "http", method, tls, content: { path, headers: [] } });

  it("full mode: a hooked host's CONNECT is intercepted; another host's is an opaque tunnel", async () => {
    const { ctx } = context(config());
    expect(await passGate(ctx, { ...base, protocol: "https_connect", method: "CONNECT" })).toMatchObject({ kind: "allowed", intercept: true });
    const other = await passGate(ctx, { ...base, host: "127.0.0.2", protocol: "https_connect", method: "CONNECT" });
    expect(other.kind).toBe("allowed");
    expect("intercept" in other).toBe(false);
  });

  it("a matching request over TLS is allowed with its hook; one matching none is refused and recorded", async () => {
    const { ctx, state, records } = context(config());
    const ok = await passGate(ctx, request("POST", "/api/items", true));
    expect(ok).toMatchObject({ kind: "allowed", hook: { index: 0 } });
    expect(await passGate(ctx, request("GET", "/public/x", false))).toMatchObject({ kind: "allowed", hook: { index: 1 } });
    const denied = await passGate(ctx, request("DELETE", "/api/items", true));
    expect(denied).toMatchObject({ kind: "refused", refusal: { reason: "mitm_hook_denied", source: "proxy_state", scope: "proxy_state", host: "127.0.0.1", port: 8443 } });
    expect(records.at(-1)).toMatchObject({ scope: "proxy_state", decision: "deny", reason: "mitm_hook_denied", method: "DELETE" });
    expect(state.blocked.list().at(-1)).toMatchObject({ reason: "mitm_hook_denied", host: "127.0.0.1" });
    expect(JSON.stringify(records)).not.toContain(SECRET);
    expect(JSON.stringify(state.blocked.list())).not.toContain(SECRET);
  });

  it("a hook that injects a secret never applies to a request sent without TLS", async () => {
    const { ctx } = context(config());
    expect(await passGate(ctx, request("GET", "/api/items", false))).toMatchObject({ kind: "refused", refusal: { reason: "mitm_hook_denied" } });
  });

  it("SOCKS5 to a hooked host is refused (it cannot be inspected); to another host it is not", async () => {
    const { ctx } = context(config());
    expect(await passGate(ctx, { ...base, protocol: "socks5_tcp" })).toMatchObject({ kind: "refused", refusal: { reason: "mitm_hook_denied" } });
    expect(await passGate(ctx, { ...base, host: "127.0.0.2", protocol: "socks5_tcp" })).toMatchObject({ kind: "allowed" });
  });

  it("limited mode still refuses a write method a hook would match", async () => {
    const { ctx } = context(config({ mode: "limited" }));
    expect(await passGate(ctx, request("POST", "/api/items", true))).toMatchObject({ kind: "refused", refusal: { reason: "method_not_allowed" } });
  });

  it("the secret is in no snapshot field /config could show, and hooks without mitm are refused by the state", () => {
    const { state } = context(config());
    expect(JSON.stringify(state.snapshot().network)).not.toContain(SECRET);
    expect(() => state.replaceConfig(config({ mitm: false }))).toThrow(StateChangeError);
    expect(state.snapshot().network.mitm).toBe(true);
  });

  it("a reload reads the secrets again (a rotated secret is used from then on)", async () => {
    let secret = "first-secret";
    const { net } = tripwireNet({});
    const state = new ProxyState(config(), { resolve: (x) => net.resolve(x) }, {
      secrets: await readHookSecrets(config().mitm_hooks, { env: () => secret }),
      readSecrets: (n) => readHookSecrets(n.mitm_hooks, { env: () => secret }),
    });
    const injected = () => state.snapshot().hooks.forHost("127.0.0.1")![0]!.inject[0]!.value;
    expect(injected()).toBe("Bearer first-secret");
    secret = "second-secret";
    await state.reload();
    expect(injected()).toBe("Bearer second-secret");
  });

  it("parseMitmHooks rejects more than the limit", () => {
    const many = Array.from({ length: 1001 }, () => ({ host: "a.example", match: { methods: ["GET"], path_prefixes: ["/"] } }));
    expect(() => parseMitmHooks(many)).toThrow("mitm_hooks: at most 1000 hooks are accepted, got 1001");
  });
});
