import { describe, it, expect } from "vitest";
import {
  ConfigError,
  defaultNetworkConfig,
  isLoopbackHost,
  parseListenUrl,
  planListeners,
  type NetworkConfig,
} from "../../src/core/config/index.ts";

const KEY = "network.proxy_url";

describe("parseListenUrl", () => {
  it.each([
    ["127.0.0.1:3128", "127.0.0.1", 3128],
    ["localhost:3128", "127.0.0.1", 3128],
    ["LOCALHOST:1", "127.0.0.1", 1],
    ["http://127.0.0.1:3128", "127.0.0.1", 3128],
    ["http://127.0.0.1:3128/", "127.0.0.1", 3128],
    ["http://localhost:8080/some/path?q=1#f", "127.0.0.1", 8080],
    ["HTTP://LocalHost", "127.0.0.1", 80],
    ["http://127.0.0.1", "127.0.0.1", 80],
    ["https://127.0.0.1", "127.0.0.1", 443],
    ["socks5://127.0.0.1", "127.0.0.1", 1080],
    ["socks5h://127.0.0.1", "127.0.0.1", 1080],
    ["socks://127.0.0.1", "127.0.0.1", 1080],
    ["socks5://127.0.0.1:9050", "127.0.0.1", 9050],
    ["[::1]:3128", "::1", 3128],
    ["http://[::1]:3128/x", "::1", 3128],
    ["http://[::1]", "::1", 80],
    ["[0:0:0:0:0:0:0:1]:5", "::1", 5],
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["127.0.0.1:65535", "127.0.0.1", 65535],
    ["  127.0.0.1:7  ", "127.0.0.1", 7],
    ["127.1:7", "127.0.0.1", 7],
    ["0.0.0.0:7", "0.0.0.0", 7],
    ["example.invalid:7", "example.invalid", 7],
    ["tcp://Example.Invalid:7", "example.invalid", 7],
  ] as const)("%j → %s:%d", (value, host, port) => {
    expect(parseListenUrl(value, KEY)).toEqual({ host, port });
  });

  it.each([
    ["127.0.0.1", "missing port"],
    ["localhost", "missing port"],
    ["[::1]", "missing port"],
    ["ftp://127.0.0.1", 'scheme "ftp" has no default port'],
    ["127.0.0.1:", "invalid port"],
    ["127.0.0.1:abc", "invalid port"],
    ["127.0.0.1:-1", "invalid port"],
    ["127.0.0.1:1.5", "invalid port"],
    ["127.0.0.1:65536", "out of range"],
    ["127.0.0.1:99999999999", "out of range"],
    ["user@127.0.0.1:3128", "user credentials"],
    ["http://user:pw@127.0.0.1:3128", "user credentials"],
    ["::1", "must be in brackets"],
    ["[::1", "missing ']'"],
    ["[::1]x:3128", "after ']'"],
    ["[example.invalid]:3128", "not an IPv6 address"],
    ["", "invalid host"],
    [":3128", "invalid host"],
    ["http://:3128", "invalid host"],
    ["bad host:3128", "invalid host"],
  ])("rejects %j (%s)", (value, detail) => {
    let err: unknown;
    try {
      parseListenUrl(value, KEY);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const ce = err as ConfigError;
    expect(ce.key).toBe(KEY);
    expect(ce.message.startsWith(`${KEY}: ${JSON.stringify(value)}: `)).toBe(true);
    expect(ce.message).toContain(detail);
  });
});

describe("isLoopbackHost", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.255.255.254", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["0.0.0.0", false],
    ["localhost", false],
    ["example.invalid", false],
  ] as const)("%s → %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

/** Defaults overridden by `over`. */
function config(over: Partial<NetworkConfig>): NetworkConfig {
  return { ...defaultNetworkConfig(), ...over };
}

describe("planListeners", () => {
  it("plans the defaults on loopback without warnings", () => {
    expect(planListeners(defaultNetworkConfig())).toEqual({
      plan: { http: { host: "127.0.0.1", port: 3128 }, admin: { host: "127.0.0.1", port: 8080 } },
      warnings: [],
    });
  });

  it("adds SOCKS5 only when enabled", () => {
    const { plan } = planListeners(config({ enable_socks5: true }));
    expect(plan.socks5).toEqual({ host: "127.0.0.1", port: 8081 });
    expect(planListeners(config({ socks_url: "not a url" })).plan.socks5).toBeUndefined();
  });

  it("keeps loopback binds, including IPv6 and localhost", () => {
    const { plan, warnings } = planListeners(
      config({ proxy_url: "[::1]:1", admin_url: "localhost:2", enable_socks5: true, socks_url: "127.0.0.2:3" }),
    );
    expect(plan).toEqual({
      http: { host: "::1", port: 1 },
      admin: { host: "127.0.0.1", port: 2 },
      socks5: { host: "127.0.0.2", port: 3 },
    });
    expect(warnings).toEqual([]);
  });

  const listeners = [
    ["proxy_url", "http", "dangerously_allow_non_loopback_proxy"],
    ["admin_url", "admin", "dangerously_allow_non_loopback_admin"],
    ["socks_url", "socks5", "dangerously_allow_non_loopback_proxy"],
  ] as const;

  describe.each(listeners)("%s", (key, planKey, flag) => {
    it.each(["0.0.0.0:4000", "http://example.invalid:4000"])(
      "clamps %s to loopback with a warning",
      (value) => {
        const { plan, warnings } = planListeners(config({ [key]: value, enable_socks5: true }));
        expect(plan[planKey]).toEqual({ host: "127.0.0.1", port: 4000 });
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toContain(`network.${key}`);
        expect(warnings[0]).toContain(JSON.stringify(value));
        expect(warnings[0]).toContain("127.0.0.1:4000");
        expect(warnings[0]).toContain(flag);
      },
    );

    it(`keeps the bind when ${flag} is true`, () => {
      const { plan, warnings } = planListeners(config({ [key]: "0.0.0.0:4000", enable_socks5: true, [flag]: true }));
      expect(plan[planKey]).toEqual({ host: "0.0.0.0", port: 4000 });
      expect(warnings).toEqual([]);
    });

    it("forces loopback when allow_unix_sockets is non-empty, whatever the flags", () => {
      const { plan, warnings } = planListeners(
        config({
          [key]: "example.invalid:4000",
          enable_socks5: true,
          dangerously_allow_non_loopback_proxy: true,
          dangerously_allow_non_loopback_admin: true,
          allow_unix_sockets: ["/tmp/a.sock"],
        }),
      );
      expect(plan[planKey]).toEqual({ host: "127.0.0.1", port: 4000 });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`network.${key}`);
      expect(warnings[0]).toContain('"example.invalid:4000"');
      expect(warnings[0]).toContain("allow_unix_sockets");
    });
  });

  it("does not let the proxy flag open the admin listener", () => {
    const { plan, warnings } = planListeners(
      config({
        proxy_url: "0.0.0.0:1",
        admin_url: "0.0.0.0:2",
        dangerously_allow_non_loopback_proxy: true,
      }),
    );
    expect(plan.http).toEqual({ host: "0.0.0.0", port: 1 });
    expect(plan.admin).toEqual({ host: "127.0.0.1", port: 2 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("network.admin_url");
  });

  it("leaves loopback listeners alone when unix sockets are allowed", () => {
    const { plan, warnings } = planListeners(config({ allow_unix_sockets: ["/tmp/a.sock"], proxy_url: "[::1]:9" }));
    expect(plan.http).toEqual({ host: "::1", port: 9 });
    expect(warnings).toEqual([]);
  });

  it("throws a ConfigError naming the key for a bad URL", () => {
    expect(() => planListeners(config({ admin_url: "127.0.0.1" }))).toThrow(/^network\.admin_url: "127\.0\.0\.1": /);
  });
});
