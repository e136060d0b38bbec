/** The admin API's building blocks: token syntax, bearer authentication, body limit, mode body, redaction. */
import { describe, expect, it } from "vitest";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { bearerTokenAuth } from "../../src/core/admin/auth.ts";
import { adminBodyLimit, MAX_ADMIN_BODY_BYTES, readBoundedBody } from "../../src/core/admin/body.ts";
import { bearerTokenFault } from "../../src/core/config/bearer-token.ts";
import { parseModeRequest } from "../../src/core/admin/mode-request.ts";
import { REDACTED, redactNetwork, scrubSecrets } from "../../src/core/admin/redact.ts";
import { defaultNetworkConfig } from "../../src/core/config/types.ts";

describe("bearerTokenFault (RFC 6750 §2.1 b64token)", () => {
  it.each(["abc", "s3cret-admin-token-7f1c", "A.b_c~d+e/f-0", "abc=", "abc==", "dG9rZW4="])("accepts %j", (token) => {
    expect(bearerTokenFault(token)).toBeUndefined();
  });

  it.each([
    ["", "must not be empty"],
    ["x y", "it holds whitespace (a space, tab or line break)"],
    ["tok\n", "it holds whitespace (a space, tab or line break)"],
    ["t\u00f6k", "it holds a non-ASCII character"],
    ["t😀k", "it holds a non-ASCII character"],
    ["ab!c", "it holds punctuation other than - . _ ~ + /"],
    ["a\u0000b", "it holds a control character"],
    ["a\u007fb", "it holds a control character"],
    ["=abc", "= may only end it"],
    ["a=b", "= may only end it"],
    ["===", "= may only end it"],
  ])("refuses %j: %s, without quoting it", (token, reason) => {
    const fault = bearerTokenFault(token);
    expect(fault).toContain(reason);
    if (token.length > 1) expect(fault).not.toContain(token);
  });
});

describe("bearerTokenAuth (Hono's bearerAuth)", () => {
  const TOKEN = "tok-1";
  const refused: string[] = [];
  const app = new Hono();
  app.onError((err, c) => (err instanceof HTTPException ? err.getResponse() : c.text("bug", 500)));
  app.use(
    "*",
    bearerTokenAuth(TOKEN, (c, why) => {
      refused.push(why);
      return c.json({ refused: why }, 401);
    }),
  );
  app.get("/", (c) => c.text("in"));
  const get = (authorization?: string) =>
    app.request("/", { headers: authorization === undefined ? {} : { authorization } });

  it.each([`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER   ${TOKEN}`, `  Bearer ${TOKEN} \t`])("lets %j through", async (header) => {
    const res = await get(header);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("in");
  });

  it.each([
    ["no header", undefined, "missing", "Bearer"],
    ["an empty token", "Bearer ", "malformed", 'Bearer error="invalid_request"'],
    ["the bare scheme", "Bearer", "malformed", 'Bearer error="invalid_request"'],
    ["another scheme", `Basic ${TOKEN}`, "malformed", 'Bearer error="invalid_request"'],
    ["the bare token", TOKEN, "malformed", 'Bearer error="invalid_request"'],
    ["a token with a space", "Bearer tok 1", "malformed", 'Bearer error="invalid_request"'],
    ["a wrong token", `Bearer ${TOKEN}x`, "wrong", 'Bearer error="invalid_token"'],
    ["a prefix of the token", `Bearer ${TOKEN.slice(0, -1)}`, "wrong", 'Bearer error="invalid_token"'],
    ["the token in another case", `Bearer ${TOKEN.toUpperCase()}`, "wrong", 'Bearer error="invalid_token"'],
  ])("refuses %s with 401, the refusal's answer and its challenge", async (_name, header, why, challenge) => {
    refused.length = 0;
    const res = await get(header);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ refused: why });
    expect(res.headers.get("www-authenticate")).toBe(challenge);
    expect(refused).toEqual([why]);
  });

  it("refuses to be built on a token no request could present, without quoting it", () => {
    expect(() => bearerTokenAuth("my token", () => new Response())).toThrow(
      /^the admin token is not a bearer token: it holds whitespace/,
    );
    expect(() => bearerTokenAuth("my token", () => new Response())).not.toThrow(/my token/);
  });
});

describe("adminBodyLimit and readBoundedBody (Hono's bodyLimit)", () => {
  const limited = (limit: number) => {
    const app = new Hono();
    app.post(
      "/",
      adminBodyLimit(
        { tooLarge: (c) => c.text("too large", 413), badLength: (c, v) => c.text(`bad length ${v}`, 400) },
        limit,
      ),
      async (c) => {
        const bytes = await readBoundedBody(c, limit);
        return bytes === undefined ? c.text("too large after reading", 413) : c.text(new TextDecoder().decode(bytes));
      },
    );
    return app;
  };
  const post = (app: Hono, body: BodyInit | null, headers: Record<string, string> = {}) =>
    app.request(new Request("http://localhost/", { method: "POST", body, headers, duplex: "half" } as RequestInit));

  it("hands the bytes of a body within the limit to the handler", async () => {
    const res = await post(limited(MAX_ADMIN_BODY_BYTES), "hello");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
  });

  it("hands an empty body to the handler when there is none", async () => {
    const res = await post(limited(10), null);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  it("takes a body of exactly the limit and refuses one byte more", async () => {
    expect((await post(limited(10), "x".repeat(10))).status).toBe(200);
    expect(await (await post(limited(10), "x".repeat(11))).text()).toBe("too large");
    expect((await post(limited(MAX_ADMIN_BODY_BYTES), "x".repeat(MAX_ADMIN_BODY_BYTES + 1))).status).toBe(413);
  });

  it.each(["-1", "1e3", "12abc", "1, 1", "0x10"])("refuses Content-Length %j with its value", async (value) => {
    const res = await post(limited(10), "x", { "content-length": value });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe(`bad length ${value}`);
  });

  it("refuses, once read, a body longer than its Content-Length said", async () => {
    const res = await post(limited(10), "x".repeat(11), { "content-length": "5" });
    expect(res.status).toBe(413);
    expect(await res.text()).toBe("too large after reading");
  });

  it("stops reading an endless body with an understated Content-Length just past the limit", async () => {
    let pulled = 0;
    let cancelled = false;
    const chunk = new Uint8Array(1024).fill(120);
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += chunk.length;
        controller.enqueue(chunk);
      },
      cancel() {
        cancelled = true;
      },
    });
    const res = await post(limited(4096), endless, { "content-length": "5" });
    expect(res.status).toBe(413);
    expect(cancelled).toBe(true);
    // The limit plus the chunk that crossed it, and what the stream queued ahead: nothing like endless.
    expect(pulled).toBeLessThanOrEqual(4096 + 4 * chunk.length);
  });

  it("refuses a declared Content-Length over the limit even when no body came", async () => {
    const res = await post(limited(10), null, { "content-length": "100000" });
    expect(res.status).toBe(413);
    expect(await res.text()).toBe("too large");
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
