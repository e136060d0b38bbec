/**
 * The signal of one connection attempt: it aborts on its timeout, on shutdown and when the
 * request's client leaves, and once released it is unhooked from all of them (nothing stays
 * attached to the proxy's long-lived shutdown signal, whatever the number of dials).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { attemptSignal, dialScope, stoppedBy, type DialContext } from "../../src/core/net/dial.ts";
import { tripwireNet } from "../helpers/memory-net.ts";

afterEach(() => {
  vi.useRealTimers();
});

function context(): { ctx: DialContext; closing: AbortController } {
  const closing = new AbortController();
  return { ctx: { net: tripwireNet({}).net, isOwnListener: () => false, closing: closing.signal }, closing };
}

describe("attemptSignal", () => {
  it("aborts after its time", async () => {
    vi.useFakeTimers();
    const { ctx } = context();
    const a = attemptSignal(ctx, 100);
    await vi.advanceTimersByTimeAsync(99);
    expect(a.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(2);
    expect(a.signal.aborted).toBe(true);
    a.release();
  });

  it("aborts on shutdown and when the request's client leaves", () => {
    const { ctx, closing } = context();
    const a = attemptSignal(ctx, 10_000);
    closing.abort(new Error("shutting down"));
    expect(a.signal.aborted).toBe(true);
    expect((a.signal.reason as Error).message).toBe("shutting down");
    a.release();
    const left = new AbortController();
    const scoped = dialScope(context().ctx, left.signal);
    const b = attemptSignal(scoped, 10_000);
    left.abort(new Error("client left"));
    expect(b.signal.aborted).toBe(true);
    expect(stoppedBy(scoped)).toBe(left.signal);
    b.release();
  });

  it("is born aborted when a stop signal already aborted", () => {
    const { ctx, closing } = context();
    closing.abort(new Error("gone"));
    const a = attemptSignal(ctx, 10_000);
    expect(a.signal.aborted).toBe(true);
    a.release();
  });

  it("once released, neither its timer nor the stop signals reach it", async () => {
    vi.useFakeTimers();
    const { ctx, closing } = context();
    const a = attemptSignal(ctx, 100);
    a.release();
    closing.abort(new Error("later shutdown"));
    await vi.advanceTimersByTimeAsync(1000);
    expect(a.signal.aborted).toBe(false);
  });

  it("hundreds in progress at once leave the shutdown signal one listener: no leak warning on Node, and shutdown still reaches each", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on("warning", onWarning);
    try {
      const { ctx, closing } = context();
      const attempts = Array.from({ length: 300 }, () => attemptSignal(ctx, 10_000));
      const released = attempts.splice(0, 100);
      for (const a of released) a.release();
      await new Promise((r) => setTimeout(r, 10)); // warnings are emitted on a later tick
      expect(warnings.map((w) => w.name)).not.toContain("MaxListenersExceededWarning");
      closing.abort(new Error("shutting down"));
      expect(attempts.every((a) => a.signal.aborted)).toBe(true);
      expect(released.some((a) => a.signal.aborted)).toBe(false);
      for (const a of attempts) a.release();
    } finally {
      process.off("warning", onWarning);
    }
  });
});
