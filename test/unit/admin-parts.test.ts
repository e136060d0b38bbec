/** The admin API's building blocks: bearer parsing, token check, body limit, redaction. */
import { describe, expect, it } from "vitest";
import { bearerToken, createTokenCheck } from "../../src/core/admin/auth.ts";
import { MAX_ADMIN_BODY_BYTES, readLimitedBody } from "../../src/core/admin/body.ts";
import { parseModeRequest } from "../../src/core/admin/mode-request.ts";
import { REDACTED, redactNetwork, scrubSecrets } from "../../src/core/admin/redact.ts";
import { defaultNetworkConfig } from "../../src/core/config/types.ts";

describe("bearerToken", () => {
  it.each([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["  Bearer \t abc \t", "abc"],
    ["Bearer a b", "a b"],
    ["Bearer ", undefined],
    ["Bearer", undefined],
    ["Basic abc", undefined],
    ["abc", undefined],
    ["", undefined],
  ])("%j → %j", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it("handles a missing header", () => {
    expect(bearerToken(null)).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe("createTokenCheck", () => {
  it("accepts only the exact token", async () => {
    const check = createTokenCheck("tok");
    expect(await check("Bearer tok")).toBe(true);
    expect(await check("Bearer tok2")).toBe(false);
    expect(await check("Bearer to")).toBe(false);
    expect(await check("Bearer TOK")).toBe(false);
    expect(await check(null)).toBe(false);
  });
});

describe("readLimitedBody", () => {
  const req = (body: BodyInit | null, headers: Record<string, string> = {}) =>
    new Request("http://localhost/", { method: "POST", body, headers });

  it("returns the bytes of a body within the limit", async () => {
    const r = await readLimitedBody(req("hello"));
    expect(r).toEqual({ kind: "ok", bytes: new TextEncoder().encode("hello") });
  });

  it("returns no bytes for no body", async () => {
    const r = await readLimitedBody(new Request("http://localhost/", { method: "POST" }));
    expect(r).toEqual({ kind: "ok", bytes: new Uint8Array(0) });
  });

  it("refuses a body one byte over the limit", async () => {
    expect((await readLimitedBody(req("x".repeat(MAX_ADMIN_BODY_BYTES + 1)))).kind).toBe("too_large");
    expect((await readLimitedBody(req("x".repeat(11)), 10)).kind).toBe("too_large");
    expect((await readLimitedBody(req("x".repeat(10)), 10)).kind).toBe("ok");
  });

  it("refuses a malformed Content-Length", async () => {
    expect(await readLimitedBody(req("x", { "content-length": "-1" }))).toEqual({ kind: "bad_length", value: "-1" });
  });
});

describe("parseModeRequest", () => {
  it("accepts both modes, ignoring other keys", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(parseModeRequest(enc('{"mode":"full"}'))).toEqual({ ok: true, mode: "full" });
    expect(parseModeRequest(enc('{"mode":"limited","x":1}'))).toEqual({ ok: true, mode: "limited" });
  });

  it("cuts a long bad value in the message", () => {
    const r = parseModeRequest(new TextEncoder().encode(JSON.stringify({ mode: "x".repeat(500) })));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.length).toBeLessThan(200);
  });
});

describe("redaction", () => {
  it("redactNetwork keeps every key and hides the token", () => {
    const network = { ...defaultNetworkConfig(), admin_token: "secret" };
    const view = redactNetwork(network, false);
    expect(view.admin_token).toBe(REDACTED);
    expect(JSON.stringify(view)).not.toContain("secret");
    expect(redactNetwork(defaultNetworkConfig(), false).admin_token).toBeNull();
    expect(redactNetwork(defaultNetworkConfig(), true).admin_token).toBe(REDACTED);
  });

  it("scrubSecrets removes known secrets and admin_token assignments", () => {
    expect(scrubSecrets("a secret b secret", ["secret"])).toBe(`a ${REDACTED} b ${REDACTED}`);
    expect(scrubSecrets('3 | admin_token = "unknown-tok"', [])).toBe(`3 | admin_token = ${REDACTED}`);
    expect(scrubSecrets("admin_token='x y'", [])).toBe(`admin_token=${REDACTED}`);
    expect(scrubSecrets("nothing here", [undefined, ""])).toBe("nothing here");
  });
});
