/** The dial failure kinds every adapter reads off its runtime's errors (src/runtimes/shared/dial-failure.ts). */
import { describe, expect, it } from "vitest";
import { dialFailure } from "../../src/runtimes/shared/dial-failure.ts";

describe("dialFailure", () => {
  it.each([
    ["ECONNREFUSED", "refused"],
    ["EHOSTUNREACH", "host_unreachable"],
    ["ENETUNREACH", "network_unreachable"],
    ["ETIMEDOUT", "timeout"],
    ["ABORT_ERR", "timeout"],
    ["EACCES", "other"],
  ])("errno code %s is %s", (code, kind) => {
    expect(dialFailure(Object.assign(new Error("connect failed"), { code }))).toBe(kind);
  });

  it.each([
    ["Connection refused (os error 111)", "refused"],
    ["Failed to connect: ECONNREFUSED", "refused"],
    ["No route to host: host is unreachable", "host_unreachable"],
    ["Network is unreachable (os error 101)", "network_unreachable"],
    ["connection timed out", "timeout"],
    ["something else", "other"],
  ])("without a known code, the message %j is %s", (message, kind) => {
    expect(dialFailure(new Error(message))).toBe(kind);
  });

  it("a known code wins over the message, and odd values are other", () => {
    expect(dialFailure(Object.assign(new Error("timed out"), { code: "ECONNREFUSED" }))).toBe("refused");
    expect(dialFailure(Object.assign(new Error("x"), { code: "toString" }))).toBe("other");
    expect(dialFailure(null)).toBe("other");
    expect(dialFailure("refused")).toBe("other");
  });
});
