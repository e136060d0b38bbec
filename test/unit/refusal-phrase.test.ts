/**
 * The reason phrase of a refusal's status line: what clients that show only the status line
 * (curl, git, pip, wget on a refused CONNECT) print. It names the normalised host and why, in
 * visible ASCII, and never echoes anything else a client chose.
 */
import { describe, expect, it } from "vitest";
import { blockedConnectResponse, blockedHttpResponse, refusalPhrase, type Refusal } from "../../src/core/http/responses.ts";
import { latin1 } from "../../src/core/net/bytes.ts";
import { answerRefusal } from "../../src/core/http/reply.ts";
import { connPair, readAllText } from "../helpers/memory-net.ts";

const base: Refusal = { host: "evil.example", port: 443, reason: "not_allowed", decision: "deny", source: "baseline_policy", protocol: "https_connect" };

describe("refusalPhrase", () => {
  it.each<[string, Partial<Refusal>, string | undefined, string]>([
    ["not in the allowlist", {}, "CONNECT", "evil.example is not in the allowlist"],
    ["denied", { reason: "denied" }, "GET", "evil.example is on the denylist"],
    ["local", { reason: "not_allowed_local", host: "127.0.0.2" }, "GET", "127.0.0.2 is or resolves to a local or private network address"],
    ["limited mode", { reason: "method_not_allowed", source: "mode_guard" }, "POST", "POST is not allowed in limited mode"],
    ["proxy disabled", { reason: "proxy_disabled", source: "proxy_state" }, "GET", "the proxy is disabled"],
    ["proxy loop", { reason: "proxy_loop", source: "proxy_state", host: "::1" }, "GET", "::1 is this proxy itself"],
    ["decider deny", { reason: "policy_denied", source: "decider" }, "GET", "evil.example was refused by the policy decider"],
    ["decider without reason", { reason: "not_allowed", source: "decider" }, "GET", "evil.example was refused by the policy decider"],
    ["decider timeout", { reason: "decider_timeout", source: "decider" }, "GET", "evil.example was refused by the policy decider"],
    ["a decider reason named like one of ours", { reason: "proxy_disabled", source: "decider" }, "GET", "evil.example was refused by the policy decider"],
    ["another decider reason named like one of ours", { reason: "denied", source: "decider" }, "GET", "evil.example was refused by the policy decider"],
    ["ask", { decision: "ask", source: "decider" }, "GET", "evil.example needs approval"],
    ["unix socket", { host: "unix-socket", source: "proxy_state", port: 0 }, "GET", "the unix socket is not in allow_unix_sockets"],
  ])("%s", (_name, over, method, why) => {
    expect(refusalPhrase({ ...base, ...over }, method)).toBe(`Blocked by network policy: ${why}`);
  });

  it.each([
    ["an unparsable raw host", "evil example\r\nX-Injected: 1"],
    ["a host with non-ASCII bytes", "ex\u00e4mple.com"],
    ["a host with a slash", "a/b"],
    ["an over-long host", "a".repeat(254)],
  ])("does not quote %s", (_name, host) => {
    expect(refusalPhrase({ ...base, host })).toBe("Blocked by network policy: the requested host is not in the allowlist");
  });

  it("does not quote a method that is not a short token", () => {
    expect(refusalPhrase({ ...base, reason: "method_not_allowed", source: "mode_guard" }, "P\u00d6ST\r\n")).toBe(
      "Blocked by network policy: this method is not allowed in limited mode",
    );
  });

  it("is the status line of both refusal responses, visible ASCII only; body and x-proxy-error unchanged", () => {
    for (const bytes of [blockedConnectResponse(base, true), blockedHttpResponse({ ...base, protocol: "http", port: 80 }, true, "GET")]) {
      const text = latin1(bytes);
      const statusLine = text.slice(0, text.indexOf("\r\n"));
      expect(statusLine).toBe("HTTP/1.1 403 Blocked by network policy: evil.example is not in the allowlist");
      expect(statusLine).toMatch(/^[\x20-\x7e]+$/);
      expect(text).toContain("x-proxy-error: blocked-by-allowlist\r\n");
    }
    expect(latin1(blockedConnectResponse(base, true)).endsWith("\r\n\r\nDomain not in allowlist.")).toBe(true);
  });

  it("a decider's reason named unix_socket_unsupported is a 403 like any decider refusal, not the 501", async () => {
    const [client, server] = connPair();
    await answerRefusal(server, { ...base, protocol: "http", reason: "unix_socket_unsupported", source: "decider" }, "GET", false);
    server.close();
    expect(await readAllText(client)).toMatch(/^HTTP\/1\.1 403 Blocked by network policy: evil\.example was refused by the policy decider\r\n/);
  });
});
