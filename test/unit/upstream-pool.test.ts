/**
 * The shared upstream pool: only an exact destination key takes a parked connection; the key
 * tells apart pinned addresses, TLS names, upstream proxies and kinds; an origin that closes or
 * speaks while idle, a policy change, the idle limit and shutdown each drop what is parked; the
 * bounds hold.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { POOL_IDLE_MS, POOL_MAX_IDLE_PER_KEY, UpstreamPool, releaseUpstream } from "../../src/core/http/upstream-pool.ts";
import { destinationKey, Upstream, type UpstreamSlot } from "../../src/core/http/upstream.ts";
import type { Conn } from "../../src/core/net/contract.ts";
import { latin1Bytes } from "../../src/core/net/bytes.ts";
import type { ProxySnapshot } from "../../src/core/state.ts";
import { connPair } from "../helpers/memory-net.ts";

afterEach(() => {
  vi.useRealTimers();
});

/** A state stand-in whose snapshot the test replaces, telling the pool as ProxyState does. */
function fakeState() {
  let snap = {} as ProxySnapshot;
  generation = snap;
  const listeners = new Set<() => void>();
  return {
    snapshot: () => snap,
    onChange(l: () => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    change() {
      snap = {} as ProxySnapshot;
      generation = snap;
      for (const l of listeners) l();
    },
    listeners,
  };
}

/** The policy snapshot every upstream below was opened under (the pool's at its start). */
let generation: object = {};

/** An upstream with its origin end, and whether the proxy side was closed. */
function upstream(key: string, openedUnder: object = generation): { up: Upstream; origin: Conn; closed(): boolean } {
  const [proxySide, origin] = connPair();
  let untracked = false;
  const up = new Upstream(key, proxySide, () => (untracked = true), openedUnder);
  up.used = true;
  return { up, origin, closed: () => untracked };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe("destinationKey", () => {
  it("differs for every part that makes a connection what it is", () => {
    const keys = [
      destinationKey.direct("example.com", 80, ["127.0.0.1"]),
      destinationKey.direct("example.com", 80, ["127.0.0.2"]), // another pinned address
      destinationKey.direct("example.com", 80, ["127.0.0.1", "::1"]),
      destinationKey.direct("example.com", 80, undefined), // resolved when dialling
      destinationKey.direct("example.com", 8080, ["127.0.0.1"]),
      destinationKey.direct("other.example", 80, ["127.0.0.1"]), // another host name, same address
      destinationKey.tls("example.com", 80, ["127.0.0.1"]), // TLS, same host and address
      destinationKey.tls("other.example", 80, ["127.0.0.1"]), // another TLS server name
      destinationKey.proxy("http://127.0.0.1:3129", ["127.0.0.1"]),
      destinationKey.proxy("http://127.0.0.1:3130", ["127.0.0.1"]), // another upstream proxy
      destinationKey.proxy("http://127.0.0.1:3129", ["127.0.0.2"]),
      destinationKey.unix("/tmp/a.sock"),
      destinationKey.unix("/tmp/b.sock"),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe("UpstreamPool", () => {
  it("hands a parked connection only to a request of the same key", () => {
    const pool = new UpstreamPool(fakeState());
    const a = upstream(destinationKey.direct("example.com", 80, ["127.0.0.1"]));
    pool.put(a.up);
    expect(pool.take(destinationKey.direct("example.com", 80, ["127.0.0.2"]))).toBeUndefined();
    expect(pool.take(destinationKey.tls("example.com", 80, ["127.0.0.1"]))).toBeUndefined();
    expect(pool.take(destinationKey.direct("other.example", 80, ["127.0.0.1"]))).toBeUndefined();
    expect(pool.take(a.up.key)).toBe(a.up);
    expect(pool.take(a.up.key)).toBeUndefined(); // taken: gone
    pool.close();
  });

  it("a taken connection reads what the origin sends next, from the new owner's read", async () => {
    const pool = new UpstreamPool(fakeState());
    const a = upstream("k");
    pool.put(a.up);
    const up = pool.take("k")!;
    await a.origin.write(latin1Bytes("HTTP/1.1 200 OK\r\n"));
    expect(await up.reader.fill()).toBe(true);
    expect(new TextDecoder().decode(up.reader.buffered)).toBe("HTTP/1.1 200 OK\r\n");
    expect(a.closed()).toBe(false);
    pool.close();
  });

  it("drops a parked connection the origin closes, or speaks on, while it is idle", async () => {
    const pool = new UpstreamPool(fakeState());
    const quiet = upstream("k");
    const closing = upstream("k");
    const talking = upstream("k");
    for (const u of [quiet, closing, talking]) pool.put(u.up);
    closing.origin.close();
    await talking.origin.write(latin1Bytes("unsolicited"));
    await settle();
    expect(closing.closed()).toBe(true);
    expect(talking.closed()).toBe(true);
    expect(pool.size).toBe(1);
    expect(pool.take("k")).toBe(quiet.up);
    pool.close();
  });

  it("closes every parked connection when the policy changes (reload or mode change)", () => {
    const state = fakeState();
    const pool = new UpstreamPool(state);
    const a = upstream("k1");
    const b = upstream("k2");
    pool.put(a.up);
    pool.put(b.up);
    state.change();
    expect(a.closed() && b.closed()).toBe(true);
    expect(pool.size).toBe(0);
    expect(pool.take("k1")).toBeUndefined();
    pool.close();
    expect(state.listeners.size).toBe(0); // closing the pool unsubscribes
  });

  it("closes a connection idle for POOL_IDLE_MS", () => {
    vi.useFakeTimers();
    const pool = new UpstreamPool(fakeState());
    const a = upstream("k");
    pool.put(a.up);
    vi.advanceTimersByTime(POOL_IDLE_MS - 1);
    expect(a.closed()).toBe(false);
    vi.advanceTimersByTime(1);
    expect(a.closed()).toBe(true);
    expect(pool.size).toBe(0);
    pool.close();
  });

  it(`keeps at most ${POOL_MAX_IDLE_PER_KEY} per destination and closes the rest`, () => {
    const pool = new UpstreamPool(fakeState());
    const all = Array.from({ length: POOL_MAX_IDLE_PER_KEY + 3 }, () => upstream("k"));
    for (const u of all) pool.put(u.up);
    expect(pool.size).toBe(POOL_MAX_IDLE_PER_KEY);
    expect(all.filter((u) => u.closed())).toHaveLength(3);
    pool.close();
    expect(all.every((u) => u.closed())).toBe(true);
  });

  it("keeps nothing with unread bytes, and nothing once closed (shutdown)", async () => {
    const pool = new UpstreamPool(fakeState());
    const dirty = upstream("k");
    await dirty.origin.write(latin1Bytes("x"));
    await dirty.up.reader.fill();
    pool.put(dirty.up);
    expect(dirty.closed()).toBe(true);
    pool.close();
    const late = upstream("k");
    pool.put(late.up);
    expect(late.closed()).toBe(true);
    expect(pool.size).toBe(0);
  });

  it("never parks a connection opened under an older policy, one pinned to its client, or a closed one", () => {
    const state = fakeState();
    const pool = new UpstreamPool(state);
    const old = upstream("k");
    state.change(); // a reload while old's exchange ran
    pool.put(old.up);
    expect(old.closed()).toBe(true);
    const pinned = upstream("k");
    pinned.up.private = true; // carried NTLM or Negotiate
    pool.put(pinned.up);
    expect(pinned.closed()).toBe(true);
    const dropped = upstream("k");
    dropped.up.abort(); // e.g. its client left
    pool.put(dropped.up);
    expect(pool.size).toBe(0);
    const fresh = upstream("k");
    pool.put(fresh.up);
    expect(pool.take("k")).toBe(fresh.up);
    pool.close();
  });

  it("take() passes over a parked connection that has unread bytes or ended", async () => {
    const pool = new UpstreamPool(fakeState());
    const good = upstream("k");
    const stray = upstream("k");
    pool.put(good.up);
    pool.put(stray.up);
    // Bytes the idle read got but had not yet reported when take() ran.
    (stray.up.reader as unknown as { append(c: Uint8Array): void }).append(latin1Bytes("HTTP/1.1 408 Request Timeout\r\n\r\n"));
    expect(pool.take("k")).toBe(good.up);
    expect(stray.closed()).toBe(true);
    expect(pool.size).toBe(0);
    pool.close();
  });

  it("releaseUpstream parks the slot's upstream, or closes it without a pool", () => {
    const pool = new UpstreamPool(fakeState());
    const a = upstream("k");
    const slot: UpstreamSlot = { current: a.up };
    releaseUpstream(slot, pool);
    expect(slot.current).toBeUndefined();
    expect(pool.take("k")).toBe(a.up);
    const b = upstream("k");
    const bare: UpstreamSlot = { current: b.up };
    releaseUpstream(bare, undefined);
    expect(b.closed()).toBe(true);
    pool.close();
  });
});
