/**
 * Codex permission profiles (issue 14 item 2, docs/behaviour.md §1.8): `default_permissions`
 * selects `[permissions.NAME.network]`, `--profile` another; its `domains` and `unix_sockets`
 * maps stand for the `[network]` lists; every error names the key and its line; both shapes in
 * one file, a missing profile and a list key inside a profile are errors. Also the unix socket
 * rules the profile shape brings (`dangerously_allow_all_unix_sockets`, denied sockets), and
 * that a reload cannot turn unix sockets on while a proxy listener is not on loopback.
 */
import { describe, expect, it } from "vitest";
import { checkConstraints } from "../../src/core/config/constraints.ts";
import { ConfigError } from "../../src/core/config/error.ts";
import { loadConfigFile } from "../../src/core/config/load.ts";
import { planListeners } from "../../src/core/config/listen-url.ts";
import { parseConfigText, redactSecretLines } from "../../src/core/config/parse.ts";
import { defaultNetworkConfig } from "../../src/core/config/types.ts";
import { socketToDial } from "../../src/core/gate/unix-socket.ts";
import { silentLogger } from "../../src/core/log.ts";
import { startProxy } from "../../src/core/server.ts";
import { ProxyState, StateChangeError } from "../../src/core/state.ts";
import { tripwireNet } from "../helpers/memory-net.ts";

const PATH = "/home/u/.codex/config.toml";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

const PROFILE = `default_permissions = "dev"

[permissions.dev.network]
enabled = true
mode = "limited"
proxy_url = "http://127.0.0.1:3999"
allow_local_binding = false
domains = { "github.com:443" = "allow", "**.pypi.org" = "allow", "gist.github.com" = "deny", "example.org" = "none" }
unix_sockets = { "/run/a.sock" = "allow", "/run/b.sock" = "deny" }

[permissions.wide.network]
enabled = true
domains = { "*" = "allow" }
dangerously_allow_all_unix_sockets = true

[permissions.offline]
description = "no network table"
`;

const TWIN = `[network]
enabled = true
mode = "limited"
proxy_url = "http://127.0.0.1:3999"
allow_local_binding = false
allowed_domains = ["github.com:443", "**.pypi.org"]
denied_domains = ["gist.github.com"]
allow_unix_sockets = ["/run/a.sock"]
denied_unix_sockets = ["/run/b.sock"]
`;

describe("reading a Codex permission profile", () => {
  it("default_permissions selects a profile whose maps become the [network] lists: the same config as its [network] twin", () => {
    const profile = parseConfigText(PROFILE, PATH);
    expect(profile.warnings).toEqual([]);
    expect(profile.network).toEqual(parseConfigText(TWIN, PATH).network);
    expect(profile.network.allowed_domains).toEqual(["github.com:443", "**.pypi.org"]);
  });

  it("--profile picks another profile", () => {
    const { network } = parseConfigText(PROFILE, PATH, { profile: "wide" });
    expect(network).toMatchObject({ enabled: true, mode: "full", allowed_domains: ["*"], denied_domains: [], dangerously_allow_all_unix_sockets: true });
  });

  it("a profile without a network table gives the defaults (disabled), with a warning", () => {
    const { network, warnings } = parseConfigText(PROFILE, PATH, { profile: "offline" });
    expect(network).toEqual(defaultNetworkConfig());
    expect(warnings).toEqual([`${PATH}:16: permissions.offline: the profile has no network table; the network defaults apply (the proxy is disabled)`]);
  });

  it("profiles that nothing selects leave [network] in force, or the defaults, and a warning says so", () => {
    const both = parseConfigText(`${TWIN}\n[permissions.other.network]\nenabled = false\n`, PATH);
    expect(both.network.allowed_domains).toEqual(["github.com:443", "**.pypi.org"]);
    expect(both.warnings).toEqual([`${PATH}:11: permissions: "other" has network settings, but neither default_permissions nor --profile selects a profile: [network] is read`]);
    const only = parseConfigText(`[permissions.a.network]\nenabled = true\n[permissions.b.network]\nenabled = true\n`, PATH);
    expect(only.network.enabled).toBe(false);
    expect(only.warnings).toEqual([`${PATH}:1: permissions: "a", "b" have network settings, but neither default_permissions nor --profile selects a profile: the network defaults apply (the proxy is disabled)`]);
  });

  it("an unknown key in a profile is a warning with a suggestion and its line", () => {
    const { warnings } = parseConfigText(`default_permissions = "p"\n[permissions.p.network]\nenabled = true\ndomain = {}\n`, PATH);
    expect(warnings).toEqual([`${PATH}:4: permissions.p.network.domain: unknown key, ignored (did you mean "domains"?)`]);
  });

  it.each<[string, string, string | undefined, string]>([
    ["both shapes", `default_permissions = "dev"\n${TWIN}[permissions.dev.network]\nenabled = true\n`, undefined,
      `${PATH}:2: network: both [network] and the Codex permission profile [permissions.dev.network] (chosen by default_permissions) are present: keep one of the two shapes`],
    ["both shapes, by --profile", `${TWIN}[permissions.dev.network]\nenabled = true\n`, "dev",
      `${PATH}:1: network: both [network] and the Codex permission profile [permissions.dev.network] (chosen by --profile) are present: keep one of the two shapes`],
    ["a missing profile, by default_permissions", PROFILE.replace(`"dev"`, `"prod"`), undefined,
      `${PATH}:1: default_permissions: profile "prod" (chosen by default_permissions) does not exist; the file defines "dev", "wide", "offline"`],
    ["a missing profile, by --profile", PROFILE, "prod", `${PATH}:3: permissions: profile "prod" (chosen by --profile) does not exist; the file defines "dev", "wide", "offline"`],
    ["no profiles at all", `enabled = 1\n`, "dev", `${PATH}: permissions: profile "dev" (chosen by --profile) does not exist; the file defines no [permissions.NAME] table`],
    ["default_permissions not a string", `default_permissions = 3\n`, undefined, `${PATH}:1: default_permissions: expected string, got integer`],
    ["a domain verdict", `default_permissions = "p"\n[permissions.p.network]\ndomains = { "a.example" = "yes" }\n`, undefined,
      `${PATH}:3: permissions.p.network.domains."a.example": expected "allow", "deny" or "none", got "yes"`],
    ["a domain verdict in a [domains] table, on the entry's line", `default_permissions = "p"\n[permissions.p.network.domains]\n"ok.example" = "allow"\n"a.example" = 1\n`, undefined,
      `${PATH}:4: permissions.p.network.domains."a.example": expected "allow", "deny" or "none", got integer`],
    ["--profile on a file with [network] only", TWIN, "dev", `${PATH}: permissions: profile "dev" (chosen by --profile) does not exist; the file defines no [permissions.NAME] table`],
    ["a bad pattern", `default_permissions = "p"\n[permissions.p.network]\ndomains = { "a{b}.example" = "allow" }\n`, undefined,
      `${PATH}:3: permissions.p.network.domains."a{b}.example": invalid domain pattern "a{b}.example": glob syntax "{" is not supported`],
    ["a relative unix socket", `default_permissions = "p"\n[permissions.p.network]\nunix_sockets = { "run/a.sock" = "allow" }\n`, undefined,
      `${PATH}:3: permissions.p.network.unix_sockets."run/a.sock": "run/a.sock" is not an absolute path`],
    ["a unix socket verdict", `default_permissions = "p"\n[permissions.p.network]\nunix_sockets = { "/run/a.sock" = "none" }\n`, undefined,
      `${PATH}:3: permissions.p.network.unix_sockets."/run/a.sock": expected "allow" or "deny", got "none"`],
    ["a list key in a profile", `default_permissions = "p"\n[permissions.p.network]\nallowed_domains = ["a.example"]\n`, undefined,
      `${PATH}:3: permissions.p.network.allowed_domains: a permission profile names domains in its domains map ("pattern" = "allow" | "deny" | "none") and unix sockets in its unix_sockets map ("/path" = "allow" | "deny")`],
    ["a scalar key's type, named in the profile", `default_permissions = "p"\n[permissions.p.network]\nmode = "wide"\n`, undefined,
      `${PATH}:3: permissions.p.network.mode: "wide" is not a valid mode (expected "full" or "limited")`],
    ["a listener URL", `default_permissions = "p"\n[permissions.p.network]\nproxy_url = "http://127.0.0.1:99999"\n`, undefined, `${PATH}:3: permissions.p.network.proxy_url`],
    ["domains not a table", `default_permissions = "p"\n[permissions.p.network]\ndomains = ["a.example"]\n`, undefined,
      `${PATH}:3: permissions.p.network.domains: expected table of "pattern" = "allow" | "deny" | "none", got array`],
  ])("%s is an error naming the key and line", (_what, text, profile, message) => {
    const e = configError(() => parseConfigText(text, PATH, { profile }));
    expect(e.message.startsWith(message), e.message).toBe(true);
  });

  it.each([
    [`3: permissions.dev.network.admin_token = "s3cret" x`, "3: permissions.dev.network.admin_token = <redacted>"],
    [`3: permissions."my prof".network.admin_token = "s3cret`, `3: permissions."my prof".network.admin_token = <redacted>`],
    [`3: permissions.'dev'.network."admin_token" = "s3cret`, `3: permissions.'dev'.network."admin_token" = <redacted>`],
    [`3: network = { mode = "full", admin_token = "s3cret" `, `3: network = { mode = "full", admin_token = <redacted>`],
  ])("a broken file never echoes an admin token: %s", (line, redacted) => {
    expect(redactSecretLines(line)).toBe(redacted);
  });

  it("loadConfigFile passes the profile on, and --profile without a file is an error", async () => {
    const files = { readTextFile: async (p: string) => (p === PATH ? PROFILE : null) };
    expect((await loadConfigFile(files, PATH, true, { profile: "wide" })).network.allowed_domains).toEqual(["*"]);
    await expect(loadConfigFile(files, "/nowhere.toml", false, { profile: "wide" })).rejects.toThrow(`profile "wide" (chosen by --profile) does not exist: there is no config file /nowhere.toml`);
  });
});

describe("dangerously_allow_all_unix_sockets and denied unix sockets", () => {
  const links: Record<string, string> = { "/tmp/link-to-b": "/run/b.sock", "/run/b.sock": "/run/b.sock", "/run/c.sock": "/run/c.sock", "/tmp/link-to-c": "/run/c.sock" };
  const net = { realPath: async (p: string) => links[p] ?? Promise.reject(new Error("ENOENT")) };

  it.each<[string, { allowed: string[]; denied: string[]; allowAll: boolean }, string | undefined]>([
    ["/run/a.sock", { allowed: ["/run/a.sock"], denied: [], allowAll: false }, "/run/a.sock"],
    ["/run/c.sock", { allowed: [], denied: [], allowAll: false }, undefined],
    ["/run/c.sock", { allowed: [], denied: [], allowAll: true }, "/run/c.sock"],
    // the link is resolved: the dial goes to the file checked, not to what the link names later
    ["/tmp/link-to-c", { allowed: [], denied: [], allowAll: true }, "/run/c.sock"],
    ["/run/b.sock", { allowed: [], denied: ["/run/b.sock"], allowAll: true }, undefined],
    // a denied socket reached through a link is still denied, and a deny wins over an allow
    ["/tmp/link-to-b", { allowed: [], denied: ["/run/b.sock"], allowAll: true }, undefined],
    ["/run/b.sock", { allowed: ["/run/b.sock"], denied: ["/run/b.sock"], allowAll: false }, undefined],
    ["relative.sock", { allowed: [], denied: [], allowAll: true }, undefined],
    ["/run/missing.sock", { allowed: [], denied: [], allowAll: true }, undefined],
    // listed and denied: the deny wins
    ["/run/b.sock", { allowed: ["/run/b.sock"], denied: ["/run/b.sock"], allowAll: true }, undefined],
  ])("%s with %j → %s", async (path, lists, expected) => {
    expect(await socketToDial(path, lists, net)).toBe(expected);
  });

  it("a link re-pointed at a denied socket between the check and the dial changes nothing: the path is resolved once", async () => {
    let calls = 0;
    const racing = {
      realPath: async (p: string) => {
        if (p === "/tmp/l") return ++calls === 1 ? "/run/c.sock" : "/run/b.sock"; // re-pointed after the first look
        return links[p] ?? Promise.reject(new Error("ENOENT"));
      },
    };
    expect(await socketToDial("/tmp/l", { allowed: [], denied: ["/run/b.sock"], allowAll: true }, racing)).toBe("/run/c.sock");
    expect(calls).toBe(1);
  });

  it("forces loopback listeners, and a managed allow_unix_sockets list or false forbids it", () => {
    const network = { ...defaultNetworkConfig(), enabled: true, proxy_url: "http://0.0.0.0:3128", dangerously_allow_non_loopback_proxy: true, dangerously_allow_all_unix_sockets: true };
    const { plan, warnings } = planListeners(network);
    expect(plan.http.host).toBe("127.0.0.1");
    expect(warnings[0]).toContain("because network.dangerously_allow_all_unix_sockets is true");
    expect(checkConstraints(network, { allow_unix_sockets: ["/run/a.sock"] })).toEqual([
      `network.dangerously_allow_all_unix_sockets: true would allow unix sockets outside the managed list (allowed: "/run/a.sock")`,
    ]);
    expect(checkConstraints(network, { dangerously_allow_all_unix_sockets: false })).toEqual([
      "network.dangerously_allow_all_unix_sockets: true is not allowed by the managed constraints (must stay false)",
    ]);
  });
});

describe("a reload may not turn unix sockets on while a proxy listener is not on loopback", () => {
  /** The tripwire net, pretending to bind where it is asked (no socket is opened). */
  function bindingNet() {
    const { net } = tripwireNet({});
    return { ...net, listenTcp: async (addr: { host: string; port: number }) => ({ addr: { host: addr.host, port: 3128 }, close: async () => {} }) };
  }
  const base = { ...defaultNetworkConfig(), enabled: true, allowed_domains: ["127.0.0.1"] };

  it.each([
    ["allow_unix_sockets", { allow_unix_sockets: ["/run/a.sock"] }],
    ["dangerously_allow_all_unix_sockets", { dangerously_allow_all_unix_sockets: true }],
  ])("%s on a proxy bound to 0.0.0.0 is refused until a restart; on loopback it applies", async (_key, change) => {
    for (const host of ["0.0.0.0", "127.0.0.1"]) {
      const state = new ProxyState(base, { resolve: async () => [] });
      const running = await startProxy({ net: bindingNet(), state, log: silentLogger, plan: { http: { host, port: 3128 }, admin: { host: "127.0.0.1", port: 0 } } });
      const apply = () => state.replaceConfig({ ...base, ...change });
      if (host === "0.0.0.0") {
        expect(apply).toThrow(StateChangeError);
        expect(apply).toThrow("unix socket proxying needs loopback listeners, and a proxy listener is bound on 0.0.0.0:3128: restart the proxy to apply this configuration");
        expect(state.snapshot().network.allow_unix_sockets).toEqual([]);
      } else {
        apply();
      }
      await running.shutdown();
      apply(); // the check ends with the listeners
    }
  });
});
