import { afterEach, describe, expect, it, vi } from "vitest";
import { BufferedReader, LeaveWatch, PeerLeftError, readWithin, ReadTimeoutError, WATCH_READ_AHEAD_BYTES } from "../../src/core/net/reader.ts";
import { connPair } from "../helpers/memory-net.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

describe("BufferedReader", () => {
  it("accumulates trickled bytes in order and consumes from the front", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50);
    for (const ch of text) await a.write(enc(ch));
    await a.closeWrite();
    while (await r.fill()) {
      // byte at a time
    }
    expect(dec(r.buffered)).toBe(text);
    r.consume(4);
    expect(dec(r.buffered)).toBe(text.slice(4));
    expect(dec(await r.readUpTo(10))).toBe(text.slice(4, 14));
    expect(dec(r.takeBuffered())).toBe(text.slice(14));
    expect(r.ended).toBe(true);
    expect(await r.readUpTo(10)).toBeNull();
  });

  it("never writes into a chunk it adopted or handed out", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const first = enc("abc");
    await a.write(first);
    await r.fill();
    const view = r.buffered;
    await a.write(enc("def"));
    await r.fill();
    expect(dec(r.buffered)).toBe("abcdef");
    expect(dec(view)).toBe("abc");
    const handed = await r.readUpTo(2);
    await a.write(enc("ghi"));
    await r.fill();
    expect(dec(handed)).toBe("ab");
    expect(dec(r.buffered)).toBe("cdefghi");
  });

  it("readUpTo splits a large chunk and keeps the rest", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    await a.write(enc("0123456789"));
    expect(dec(await r.readUpTo(4))).toBe("0123");
    expect(dec(await r.readUpTo(100))).toBe("456789");
  });
});

describe("reads with a deadline, or withdrawn", () => {
  it("a read past its deadline throws ReadTimeoutError and loses no byte", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    await expect(r.fill(Date.now() + 20)).rejects.toBeInstanceOf(ReadTimeoutError);
    await a.write(enc("late"));
    expect(await r.fill(Date.now() + 1000)).toBe(true);
    expect(dec(r.buffered)).toBe("late");
  });

  it("a withdrawn read rejects with the given reason; the next read gets the bytes", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const pending = r.readUpTo(100);
    b.cancelRead(new Error("stopped here"));
    await expect(pending).rejects.toThrow("stopped here");
    await a.write(enc("after"));
    expect(dec(await r.readUpTo(100))).toBe("after");
  });

  it("cancelRead with no read pending does nothing", async () => {
    const [a, b] = connPair();
    b.cancelRead(new Error("nobody"));
    await a.write(enc("x"));
    expect(dec(await readWithin(b, Date.now() + 1000))).toBe("x");
  });
});

describe("a keepTimer reader: one timer for all its timed reads", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A reader over one end of a pair, the other end to write into, and a count of its withdrawn reads. */
  function setUp() {
    const [a, b] = connPair();
    const withdrawn: Error[] = [];
    const cancel = b.cancelRead.bind(b);
    b.cancelRead = (reason: Error) => {
      withdrawn.push(reason);
      cancel(reason);
    };
    return { a, r: new BufferedReader(b, { keepTimer: true }), withdrawn };
  }

  it("withdraws a read at its deadline, not before and not after, and loses no byte", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { a, r } = setUp();
    const read = r.fill(Date.now() + 30_000);
    const failed = expect(read).rejects.toSatisfy((e) => e instanceof ReadTimeoutError && e.message === "no data within 30000 ms");
    await vi.advanceTimersByTimeAsync(29_999);
    let settled = false;
    void read.catch(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await failed;
    await a.write(enc("late"));
    expect(await r.fill(Date.now() + 1000)).toBe(true);
    expect(dec(r.buffered)).toBe("late");
    r.release();
  });

  it("keeps one timer across reads with later deadlines, and re-arms it for the read in progress", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { a, r, withdrawn } = setUp();
    for (let i = 0; i < 5; i++) {
      const read = r.fill(Date.now() + 30_000);
      await a.write(enc("x"));
      expect(await read).toBe(true);
      expect(vi.getTimerCount()).toBe(1); // the first read's timer, still armed
      await vi.advanceTimersByTimeAsync(10_000);
    }
    // The first timer fired at 30 s with no read in progress: it lapsed, withdrawing nothing.
    expect(withdrawn).toEqual([]);
    // A read started now gets its own full 30 s, although a timer from an earlier read was armed.
    const started = Date.now();
    const read = r.fill(started + 30_000);
    const failed = expect(read).rejects.toBeInstanceOf(ReadTimeoutError);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(withdrawn).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await failed;
    expect(Date.now() - started).toBe(30_000);
    expect(withdrawn).toHaveLength(1);
    r.release();
  });

  it("a read with a nearer deadline than the armed timer fires at its own deadline", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { a, r } = setUp();
    const first = r.fill(Date.now() + 300_000);
    await a.write(enc("x"));
    await first;
    const started = Date.now();
    const read = r.fill(started + 5_000);
    const failed = expect(read).rejects.toBeInstanceOf(ReadTimeoutError);
    await vi.advanceTimersByTimeAsync(5_000);
    await failed;
    expect(Date.now() - started).toBe(5_000);
    r.release();
  });

  it("a wall clock stepped back while a read waits does not extend its deadline", async () => {
    vi.useFakeTimers({ now: 10_000_000 });
    const { r } = setUp();
    const read = r.fill(Date.now() + 30_000);
    const failed = expect(read).rejects.toBeInstanceOf(ReadTimeoutError);
    await vi.advanceTimersByTimeAsync(10_000);
    vi.setSystemTime(Date.now() - 3_600_000); // an NTP step back of an hour; the monotonic clock runs on
    await vi.advanceTimersByTimeAsync(20_000);
    await failed;
    r.release();
  });

  it("release clears the timer; reads without a deadline arm none", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { a, r, withdrawn } = setUp();
    const read = r.fill(Date.now() + 30_000);
    await a.write(enc("x"));
    await read;
    expect(vi.getTimerCount()).toBe(1);
    r.release();
    expect(vi.getTimerCount()).toBe(0);
    r.consume(1);
    const untimed = r.readUpTo(10);
    await a.write(enc("y"));
    expect(dec(await untimed)).toBe("y");
    expect(vi.getTimerCount()).toBe(0);
    expect(withdrawn).toEqual([]);
  });

  it("a timed read after release gets a shared timer again, and times out at its deadline", async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { a, r, withdrawn } = setUp();
    const first = r.fill(Date.now() + 30_000);
    await a.write(enc("x"));
    await first;
    r.release();
    expect(vi.getTimerCount()).toBe(0);
    const started = Date.now();
    const read = r.fill(started + 5_000);
    expect(vi.getTimerCount()).toBe(1);
    const failed = expect(read).rejects.toBeInstanceOf(ReadTimeoutError);
    await vi.advanceTimersByTimeAsync(5_000);
    await failed;
    expect(Date.now() - started).toBe(5_000);
    expect(withdrawn).toHaveLength(1);
    // and it is shared again: later reads re-use it rather than arming one each
    const next = r.fill(Date.now() + 30_000);
    await a.write(enc("y"));
    await next;
    const again = r.fill(Date.now() + 30_000);
    await a.write(enc("z"));
    await again;
    expect(vi.getTimerCount()).toBe(1);
    r.release();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("LeaveWatch", () => {
  it("reads ahead while watching and keeps every byte, in order, for the session", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    await a.write(enc("GET /1 HTTP/1.1\r\n\r\n"));
    await r.fill();
    const watch = new LeaveWatch(r);
    watch.start();
    await a.write(enc("GET /2 HTTP/1.1\r\n\r\n")); // pipelined while the first is served
    await new Promise((resolve) => setTimeout(resolve, 5));
    await watch.pause();
    await a.write(enc("GET /3"));
    await r.fill();
    expect(dec(r.buffered)).toBe("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3");
    expect(watch.reason).toBeUndefined();
  });

  it("pausing with nothing read leaves no read behind: the next read gets the next bytes", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const watch = new LeaveWatch(r);
    watch.start();
    await watch.pause();
    watch.start(); // watching again after a pause
    await watch.pause();
    await a.write(enc("x"));
    expect(dec(await r.readUpTo(10))).toBe("x");
  });

  it("aborts with PeerLeftError when the peer sends FIN", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const watch = new LeaveWatch(r);
    watch.start();
    await a.closeWrite();
    await new Promise<void>((resolve) => watch.onLeave(resolve));
    expect(watch.reason).toBeInstanceOf(PeerLeftError);
    expect(watch.reason!.detail).toBe("the peer closed the connection");
    expect(watch.signal.aborted).toBe(true); // made after the fact: aborted at once
    expect(() => watch.throwIfLeft()).toThrow(PeerLeftError);
    await watch.pause();
    expect(r.ended).toBe(true);
  });

  it("aborts when the connection fails", async () => {
    const [, b] = connPair();
    const r = new BufferedReader(b);
    const watch = new LeaveWatch(r);
    watch.start();
    const signal = watch.signal; // made before: aborted when the peer leaves
    b.close(); // a local close fails the pending read
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
    expect((signal.reason as PeerLeftError).detail).toMatch(/^the connection failed: /);
  });

  it(`stops reading ahead after ${WATCH_READ_AHEAD_BYTES} bytes (flow control holds the peer)`, async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const watch = new LeaveWatch(r);
    watch.start();
    const piece = new Uint8Array(16 * 1024);
    for (let i = 0; i < 8; i++) await a.write(piece);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(r.buffered.length).toBe(WATCH_READ_AHEAD_BYTES);
    await watch.pause();
    expect(watch.reason).toBeUndefined();
    expect((await r.readUpTo(1 << 20))!.length + WATCH_READ_AHEAD_BYTES).toBe(8 * 16 * 1024); // nothing lost
  });

  it("does not watch again once the peer left", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const watch = new LeaveWatch(r);
    watch.start();
    await a.closeWrite();
    await new Promise<void>((resolve) => watch.onLeave(resolve));
    await watch.pause();
    watch.start();
    await watch.pause();
    expect(await r.readUpTo(1)).toBeNull();
  });

  it("race settles with the promise, or fails with PeerLeftError when the peer leaves first", async () => {
    const [a, b] = connPair();
    const watch = new LeaveWatch(new BufferedReader(b));
    watch.start();
    expect(await watch.race(Promise.resolve(7))).toBe(7);
    const never = new Promise<number>(() => {});
    const raced = watch.race(never);
    await a.closeWrite();
    await expect(raced).rejects.toBeInstanceOf(PeerLeftError);
    await expect(watch.race(Promise.resolve(1))).rejects.toBeInstanceOf(PeerLeftError);
  });

  it("onLeave's unregistration keeps a callback from running", async () => {
    const [a, b] = connPair();
    const watch = new LeaveWatch(new BufferedReader(b));
    let called = 0;
    const off = watch.onLeave(() => called++);
    watch.onLeave(() => called++)();
    off();
    watch.start();
    await a.closeWrite();
    await new Promise<void>((resolve) => watch.onLeave(resolve));
    expect(called).toBe(0);
  });
});
