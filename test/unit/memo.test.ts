/**
 * The bounded memo of pure per-request lookups: answers are remembered, the bound holds, and
 * what a client controls (long inputs) is never kept.
 */
import { describe, expect, it } from "vitest";
import { MEMO_MAX_KEY_CHARS, memoize } from "../../src/core/memo.ts";

describe("memoize", () => {
  it("computes each input once while it is remembered, null answers included", () => {
    const calls: string[] = [];
    const f = memoize((s: string) => (calls.push(s), s === "bad" ? null : s.toUpperCase()));
    expect(f("a")).toBe("A");
    expect(f("a")).toBe("A");
    expect(f("bad")).toBeNull();
    expect(f("bad")).toBeNull();
    expect(calls).toEqual(["a", "bad"]);
  });

  it("starts over when full, so it never holds more than its bound", () => {
    const calls: string[] = [];
    const f = memoize((s: string) => (calls.push(s), s), 2);
    f("a");
    f("b");
    f("c"); // full: starts over with c
    f("a"); // computed again
    f("c"); // still remembered
    expect(calls).toEqual(["a", "b", "c", "a"]);
  });

  it(`does not remember inputs longer than ${MEMO_MAX_KEY_CHARS} characters`, () => {
    const calls: string[] = [];
    const f = memoize((s: string) => (calls.push(s), s.length));
    const long = "x".repeat(MEMO_MAX_KEY_CHARS + 1);
    f(long);
    f(long);
    expect(calls).toHaveLength(2);
    const ok = "y".repeat(MEMO_MAX_KEY_CHARS);
    f(ok);
    f(ok);
    expect(calls).toHaveLength(3);
  });
});
