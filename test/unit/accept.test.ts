/**
 * Accepting through failures (src/runtimes/shared/accept.ts, and the Node adapter's guard): the
 * backoff doubles from 10 ms to 1 s, a burst is reported once when it starts and once with its
 * count when an accept succeeds again, and the accept loop never ends on a failed accept. Fake
 * clock and sleep; the Node guard on a real listening `net.Server`.
 */
import { connect, createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { AcceptErrorEvent } from "../../src/core/net/contract.ts";
import {
  ACCEPT_RETRY_INITIAL_MS,
  ACCEPT_RETRY_MAX_MS,
  AcceptBackoff,
  abortableSleep,
  acceptLoop,
  LISTEN_BACKLOG,
} from "../../src/runtimes/shared/accept.ts";
import { surviveAcceptErrors } from "../../src/runtimes/node/net.ts";

const emfile = (): Error => Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });

/** A backoff with a clock the test moves, and the events it reported. */
function backoff(): { b: AcceptBackoff; events: AcceptErrorEvent[]; clock: { now: number } } {
  const events: AcceptErrorEvent[] = [];
  const clock = { now: 1_000 };
  return { b: new AcceptBackoff((e) => events.push(e), () => clock.now), events, clock };
}

describe("AcceptBackoff", () => {
  it("the listen backlog asks for more than Linux's default somaxconn", () => {
    expect(LISTEN_BACKLOG).toBeGreaterThanOrEqual(4096);
  });

  it("waits 10 ms after the first failure, doubling up to 1 s", () => {
    const { b } = backoff();
    const pauses = Array.from({ length: 10 }, () => b.failed(emfile()));
    expect(pauses).toEqual([10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    expect(pauses[0]).toBe(ACCEPT_RETRY_INITIAL_MS);
    expect(Math.max(...pauses)).toBe(ACCEPT_RETRY_MAX_MS);
  });

  it("reports a burst once when it starts and once, with the count, when accepting recovers", () => {
    const { b, events, clock } = backoff();
    for (let i = 0; i < 500; i++) b.failed(emfile());
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "failing" });
    expect((events[0] as { error: Error }).error.message).toContain("Too many open files");
    clock.now += 2_500;
    b.succeeded();
    b.succeeded(); // more successes: nothing more to say
    expect(events).toEqual([events[0], { kind: "recovered", failures: 500, durationMs: 2_500 }]);
  });

  it("a new burst starts over: reported again, and the pause restarts at 10 ms", () => {
    const { b, events } = backoff();
    b.failed(emfile());
    b.failed(emfile());
    b.succeeded();
    expect(b.failed(emfile())).toBe(ACCEPT_RETRY_INITIAL_MS);
    expect(events.map((e) => e.kind)).toEqual(["failing", "recovered", "failing"]);
  });

  it("success without a failure reports nothing", () => {
    const { b, events } = backoff();
    b.succeeded();
    expect(events).toEqual([]);
  });

  it("a non-Error failure is reported as an Error, and a reporter that throws changes nothing", () => {
    const b = new AcceptBackoff(() => {
      throw new Error("reporter broke");
    });
    expect(b.failed("EMFILE")).toBe(ACCEPT_RETRY_INITIAL_MS);
    expect(() => b.succeeded()).not.toThrow();
    const events: AcceptErrorEvent[] = [];
    new AcceptBackoff((e) => events.push(e)).failed("EMFILE");
    expect((events[0] as { error: Error }).error).toBeInstanceOf(Error);
  });
});

describe("acceptLoop", () => {
  /** An accept that fails `failures` times, then hands out numbered connections. */
  function scripted(failures: number): { accept: () => Promise<number>; calls: () => number } {
    let n = 0;
    return {
      accept: async () => {
        n++;
        if (n <= failures) throw emfile();
        return n;
      },
      calls: () => n,
    };
  }

  it("keeps accepting through failures, pausing as the backoff says, and reports the burst once", async () => {
    const events: AcceptErrorEvent[] = [];
    const pauses: number[] = [];
    const stop = new AbortController();
    const got: number[] = [];
    const { accept } = scripted(12);
    await acceptLoop(
      accept,
      (c) => {
        got.push(c);
        if (got.length === 3) stop.abort();
      },
      { backoff: new AcceptBackoff((e) => events.push(e)), signal: stop.signal, sleep: async (ms) => void pauses.push(ms) },
    );
    expect(pauses).toEqual([10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000, 1000]);
    expect(got).toEqual([13, 14, 15]);
    expect(events.map((e) => e.kind)).toEqual(["failing", "recovered"]);
    expect(events[1]).toMatchObject({ failures: 12 });
  });

  it("ends when closed, also while an accept is pending (its failure is not a burst)", async () => {
    const events: AcceptErrorEvent[] = [];
    const stop = new AbortController();
    let rejectPending!: (e: Error) => void;
    const done = acceptLoop(
      () => new Promise<never>((_, reject) => (rejectPending = reject)),
      () => {},
      { backoff: new AcceptBackoff((e) => events.push(e)), signal: stop.signal },
    );
    await Promise.resolve();
    stop.abort();
    rejectPending(new Error("listener closed"));
    await done;
    expect(events).toEqual([]);
  });

  it("ends during a pause when closed (the default sleep wakes on abort)", async () => {
    const stop = new AbortController();
    const { accept, calls } = scripted(Infinity);
    const done = acceptLoop(accept, () => {}, { backoff: new AcceptBackoff(), signal: stop.signal });
    await new Promise((r) => setTimeout(r, 30)); // a few retries at 10, 20 ms
    stop.abort();
    await done;
    const after = calls();
    await new Promise((r) => setTimeout(r, 50));
    expect(calls()).toBe(after);
  });

  it("a connection handler that throws does not stop the loop", async () => {
    const stop = new AbortController();
    const got: number[] = [];
    const { accept } = scripted(0);
    await acceptLoop(
      accept,
      (c) => {
        got.push(c);
        if (c === 3) stop.abort();
        else throw new Error("handler broke");
      },
      { backoff: new AcceptBackoff(), signal: stop.signal },
    );
    expect(got).toEqual([1, 2, 3]);
  });

  it("abortableSleep resolves at once when aborted", async () => {
    const stop = new AbortController();
    const slept = abortableSleep(60_000, stop.signal);
    stop.abort();
    await slept; // would time the test out otherwise
    await abortableSleep(60_000, stop.signal); // already aborted
  });
});

describe("Node listener guard (surviveAcceptErrors)", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  function listening(): Promise<Server> {
    const s = createServer((socket) => socket.destroy());
    server = s;
    return new Promise((resolve) => s.listen(0, "127.0.0.1", () => resolve(s)));
  }

  it("without it, an accept error on a net.Server is an uncaught exception", async () => {
    const s = await listening();
    expect(() => s.emit("error", Object.assign(new Error("accept EMFILE"), { code: "EMFILE", syscall: "accept" }))).toThrow("accept EMFILE");
  });

  it("with it, accept errors are reported once per burst and a connection ends the burst", async () => {
    const s = await listening();
    const events: AcceptErrorEvent[] = [];
    surviveAcceptErrors(s, { onAcceptError: (e) => events.push(e) });
    for (let i = 0; i < 50; i++) s.emit("error", Object.assign(new Error("accept EMFILE"), { code: "EMFILE", syscall: "accept" }));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "failing" });
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((resolve, reject) => {
      const c = connect(port, "127.0.0.1");
      c.on("error", reject);
      c.on("close", () => resolve());
      c.resume();
    });
    expect(events[1]).toMatchObject({ kind: "recovered", failures: 50 });
  });
});
