import { describe, expect, it } from "vitest";
import { isLoopbackIp, isNonPublicIp } from "../../src/core/policy/address-class.ts";

// Pure-function inputs: nothing here is dialled or resolved.

describe("isNonPublicIp: IPv4 ranges of docs/behaviour.md §4 (inside, edges, outside)", () => {
  it.each<[string, string, string[], string[]]>([
    ["0.0.0.0/8", "this network", ["0.0.0.0", "0.255.255.255"], ["1.0.0.0"]],
    ["10/8", "private", ["10.0.0.0", "10.255.255.255"], ["9.255.255.255", "11.0.0.0"]],
    ["100.64/10", "CGNAT", ["100.64.0.0", "100.127.255.255"], ["100.63.255.255", "100.128.0.0"]],
    ["127/8", "loopback", ["127.0.0.1", "127.255.255.255"], ["126.255.255.255", "128.0.0.0"]],
    ["169.254/16", "link-local", ["169.254.0.0", "169.254.169.254"], ["169.253.255.255", "169.255.0.0"]],
    ["172.16/12", "private", ["172.16.0.0", "172.31.255.255"], ["172.15.255.255", "172.32.0.0"]],
    ["192.0.0/24", "IETF", ["192.0.0.0", "192.0.0.255"], ["192.0.1.0"]],
    ["192.0.2/24", "TEST-NET-1", ["192.0.2.0", "192.0.2.255"], ["192.0.3.0"]],
    ["192.88.99/24", "6to4 relay", ["192.88.99.1"], ["192.88.98.255", "192.88.100.0"]],
    ["192.168/16", "private", ["192.168.0.0", "192.168.255.255"], ["192.167.255.255", "192.169.0.0"]],
    ["198.18/15", "benchmarking", ["198.18.0.0", "198.19.255.255"], ["198.17.255.255", "198.20.0.0"]],
    ["198.51.100/24", "TEST-NET-2", ["198.51.100.7"], ["198.51.101.0"]],
    ["203.0.113/24", "TEST-NET-3", ["203.0.113.7"], ["203.0.114.0", "203.0.112.255"]],
    ["224/4", "multicast", ["224.0.0.1", "239.255.255.255"], ["223.255.255.255"]],
    ["240/4", "reserved", ["240.0.0.0", "255.255.255.255"], []],
  ])("%s (%s)", (_range, _name, inside, outside) => {
    for (const ip of inside) expect(isNonPublicIp(ip), ip).toBe(true);
    for (const ip of outside) expect(isNonPublicIp(ip), ip).toBe(false);
  });

  it.each(["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "172.32.0.1", "223.255.255.254"])(
    "public: %s",
    (ip) => {
      expect(isNonPublicIp(ip)).toBe(false);
    },
  );
});

describe("isNonPublicIp: IPv6 ranges of docs/behaviour.md §4", () => {
  it.each<[string, string[], string[]]>([
    // Ranges outside 2000::/3 have no public neighbour (the safe default covers them); the
    // outside samples of `::` and `::1` are public only through the embedded-IPv4 rule.
    ["::", ["::"], ["::808:808"]],
    ["::1", ["::1"], ["::808:809"]],
    ["fc00::/7", ["fc00::1", "fdff:ffff::1"], []],
    ["fe80::/10", ["fe80::1", "febf::1"], []],
    ["fec0::/10", ["fec0::1", "feff::1"], []],
    ["ff00::/8", ["ff02::1", "ff0e::1"], []],
    ["2001:db8::/32", ["2001:db8::1", "2001:db8:ffff::1"], ["2001:db9::1"]],
    ["100::/64", ["100::1", "100::ffff:ffff:ffff:ffff"], []],
    ["2001::/32 Teredo", ["2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"], ["2001:1::1"]],
    ["2001:2::/48 benchmarking (ours)", ["2001:2::1"], ["2001:3::1"]],
    ["3fff::/20 documentation (ours)", ["3fff::1", "3fff:fff::1"], ["3fff:1000::1"]],
  ])("%s", (_range, inside, outside) => {
    for (const ip of inside) expect(isNonPublicIp(ip), ip).toBe(true);
    for (const ip of outside) expect(isNonPublicIp(ip), ip).toBe(false);
  });

  it.each(["2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1", "2c0f::1"])("public: %s", (ip) => {
    expect(isNonPublicIp(ip)).toBe(false);
  });

  it.each(["1::1", "400::1", "4000::1", "8000::1", "e000::1", "::2:0:0:1", "64:ff9b:1::1", "::ffff:0:808:808"])(
    "outside 2000::/3 and no embedded-IPv4 rule → non-public (safe default): %s",
    (ip) => {
      expect(isNonPublicIp(ip)).toBe(true);
    },
  );
});

describe("isNonPublicIp: embedded IPv4", () => {
  it.each<[string, string, boolean]>([
    // IPv4-mapped ::ffff:0:0/96
    ["mapped loopback", "::ffff:7f00:1", true],
    ["mapped loopback, dotted", "::ffff:127.0.0.1", true],
    ["mapped private", "::ffff:c0a8:101", true],
    ["mapped metadata", "::ffff:a9fe:a9fe", true],
    ["mapped public", "::ffff:808:808", false],
    ["mapped public, dotted", "::ffff:8.8.8.8", false],
    // IPv4-compatible ::/96
    ["compatible loopback", "::7f00:1", true],
    ["compatible private", "::10.0.0.1", true],
    ["compatible public", "::808:808", false],
    // NAT64 64:ff9b::/96
    ["NAT64 loopback", "64:ff9b::7f00:1", true],
    ["NAT64 private", "64:ff9b::192.168.1.1", true],
    ["NAT64 public", "64:ff9b::808:808", false],
    // 6to4 2002::/16, IPv4 in bits 16–47
    ["6to4 loopback", "2002:7f00:1::", true],
    ["6to4 private", "2002:c0a8:101::1", true],
    ["6to4 this-network", "2002::1", true],
    ["6to4 public", "2002:808:808::1", false],
    ["6to4 public, interface id of a private v4", "2002:808:808::c0a8:101", false],
  ])("%s (%s) → %s", (_label, ip, expected) => {
    expect(isNonPublicIp(ip)).toBe(expected);
  });
});

describe("isNonPublicIp: fail closed", () => {
  it.each([
    "",
    "garbage",
    "example.com",
    "localhost",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "010.0.0.1",
    "8.8.8.8.8",
    "256.1.1.1",
    "1::2::3",
    "::ffff:0x7f.0.0.1",
    "::ffff:8.8.8",
    "[2606:4700::1]",
    " 8.8.8.8",
    "gggg::1",
  ])("%j → non-public", (ip) => {
    expect(isNonPublicIp(ip)).toBe(true);
  });

  it("ignores a zone id", () => {
    expect(isNonPublicIp("fe80::1%lo0")).toBe(true);
  });
});

describe("isLoopbackIp", () => {
  it.each<[string, boolean]>([
    ["127.0.0.1", true],
    ["127.255.255.254", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["::ffff:7f00:1", true],
    ["::7f00:1", true],
    ["::127.0.0.2", true],
    ["128.0.0.1", false],
    ["10.0.0.1", false],
    ["0.0.0.0", false],
    ["::", false],
    ["::2", false],
    ["fe80::1", false],
    ["64:ff9b::7f00:1", false],
    ["2002:7f00:1::", false],
    ["::ffff:808:808", false],
    ["localhost", false],
    ["127.1", false],
    ["garbage", false],
  ])("%j → %s", (ip, expected) => {
    expect(isLoopbackIp(ip)).toBe(expected);
  });
});
