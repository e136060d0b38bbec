/**
 * The counts behind the load limits (src/core/limits.ts, docs/behaviour.md §5.20): connections
 * and tunnels counted and released, the per-client token bucket (burst, refill, the rate as the
 * default burst), the bounded set of clients remembered, and the client address taken from
 * `ip:port`. A fake clock; no socket.
 */
import { describe, expect, it } from "vitest";
import { clientAddress, Limits, MAX_RATE_CLIENTS, rateClient } from "../../src/core/limits.ts";
import { refusalStatus } from "../../src/core/policy/types.ts";

describe("Limits", () => {
  it("counts connections up to the limit; 0 means none", () => {
    const l = new Limits();
    expect(l.openConnection(2)).toBe(true);
    expect(l.openConnection(2)).toBe(true);
    expect(l.openConnection(2)).toBe(false);
    expect(l.openConnections).toBe(2);
    l.closeConnection();
    expect(l.openConnection(2)).toBe(true);
    expect(l.openConnection(0)).toBe(true);
  });

  it("reserves tunnels; a release counts once", () => {
    const l = new Limits();
    const a = l.openTunnel(1)!;
    expect(l.openTunnel(1)).toBeUndefined();
    a();
    a();
    expect(l.openTunnels).toBe(0);
    expect(l.openTunnel(1)).toBeDefined();
    expect(l.openTunnel(0)).toBeDefined();
  });

  it("a token bucket per client: the burst at once, then the rate", () => {
    let now = 0;
    const l = new Limits(() => now);
    const take = (client = "127.0.0.1") => l.takeToken(client, 2, 3);
    expect([take(), take(), take(), take()]).toEqual([true, true, true, false]);
    expect(take("127.0.0.2")).toBe(true); // another client has its own bucket
    now = 499;
    expect(take()).toBe(false);
    now = 500; // one token back at 2 per second
    expect([take(), take()]).toEqual([true, false]);
    now = 100_000; // never more than the burst
    expect([take(), take(), take(), take()]).toEqual([true, true, true, false]);
  });

  it("without a burst the rate is the burst; a rate of 0 limits nothing", () => {
    const l = new Limits(() => 0);
    expect(Array.from({ length: 6 }, () => l.takeToken("c", 5, 0))).toEqual([true, true, true, true, true, false]);
    expect(l.takeToken("c", 0, 0)).toBe(true);
  });

  it("remembers at most MAX_RATE_CLIENTS clients, forgetting the least recent", () => {
    const l = new Limits(() => 0);
    expect(l.takeToken("first", 1, 1)).toBe(true);
    expect(l.takeToken("first", 1, 1)).toBe(false);
    for (let i = 0; i < MAX_RATE_CLIENTS; i++) l.takeToken(`c${i}`, 1, 1);
    expect(l.takeToken("first", 1, 1)).toBe(true); // forgotten: a fresh bucket
  });

  it.each([
    ["127.0.0.1:50000", "127.0.0.1"],
    ["[::1]:50000", "::1"],
    ["[fe80::1%lo]:1", "fe80::1%lo"],
    ["unknown", "unknown"],
    ["::1", "::1"],
  ])("clientAddress(%j) is %j", (client, address) => {
    expect(clientAddress(client)).toBe(address);
  });

  it.each([
    ["127.0.0.1:50000", "loopback"],
    ["127.0.0.2:1", "loopback"], // any local process can bind all of 127/8: one client
    ["[::1]:1", "loopback"],
    ["[::ffff:127.0.0.9]:1", "loopback"],
    ["[2001:db8:1:2:aaaa::1]:1", "2001:db8:1:2::/64"],
    ["[2001:db8:1:2:bbbb::9]:1", "2001:db8:1:2::/64"], // one /64, one client
    ["198.51.100.7:1", "198.51.100.7"],
    ["unknown", "unknown"],
  ])("the rate of %j is kept for %j", (client, key) => {
    expect(rateClient(client)).toBe(key);
  });

  it("refusals for a limit are 503 (no room) or 429 (a client over its share)", () => {
    expect(refusalStatus("too_many_connections")).toBe(503);
    expect(refusalStatus("too_many_tunnels")).toBe(429);
    expect(refusalStatus("rate_limited")).toBe(429);
    expect(refusalStatus("denied")).toBe(403);
  });
});
