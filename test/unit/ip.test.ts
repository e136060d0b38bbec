import { describe, expect, it } from "vitest";
import { canonicalIp, reachesListener } from "../../src/core/net/ip.ts";

describe("canonicalIp", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["::ffff:7f00:1", "127.0.0.1"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["::1%lo", "::1"],
    ["FE80::1%eth0", "fe80::1"],
    ["localhost", "localhost"],
  ])("%s → %s", (input, out) => {
    expect(canonicalIp(input)).toBe(out);
  });
});

describe("reachesListener (the proxy-loop guard)", () => {
  const loopback = [{ host: "127.0.0.1", port: 3128 }];
  it.each([
    ["127.0.0.1", 3128, true],
    ["::ffff:127.0.0.1", 3128, true],
    ["::ffff:7f00:1", 3128, true],
    ["0.0.0.0", 3128, true],
    ["127.0.0.1", 3129, false],
    ["127.0.0.2", 3128, false],
    ["::1", 3128, false],
  ] as const)("listener 127.0.0.1:3128, target %s:%i → %s", (host, port, expected) => {
    expect(reachesListener(loopback, { host, port })).toBe(expected);
  });

  it("a ::1 listener is reached through :: and zone spellings", () => {
    const v6 = [{ host: "::1", port: 8081 }];
    expect(reachesListener(v6, { host: "::", port: 8081 })).toBe(true);
    expect(reachesListener(v6, { host: "::1%lo", port: 8081 })).toBe(true);
    expect(reachesListener(v6, { host: "0:0:0:0:0:0:0:1", port: 8081 })).toBe(true);
  });

  it("a wildcard listener is reached by loopback targets only, not by every host on that port", () => {
    const wildcard = [{ host: "0.0.0.0", port: 3128 }];
    expect(reachesListener(wildcard, { host: "127.0.0.5", port: 3128 })).toBe(true);
    expect(reachesListener(wildcard, { host: "::ffff:127.0.0.1", port: 3128 })).toBe(true);
    expect(reachesListener(wildcard, { host: "2606:4700:4700::1111", port: 3128 })).toBe(false);
  });
});
