/**
 * TLS interception's decisions (src/core/http/intercept.ts, the gate's `intercept` flag): which
 * requests inside a tunnel name the tunnel's origin, and that only a CONNECT allowed in limited
 * mode is marked for interception, decided on the gate's own snapshot, so a switch to limited
 * mode while a full-mode CONNECT is being decided neither intercepts nor refuses it.
 * No socket: the in-memory net with a tripwire dialler.
 */
import { describe, expect, it } from "vitest";
import { defaultNetworkConfig } from "../../src/core/config/types.ts";
import { passGate } from "../../src/core/gate/gate.ts";
import { interceptedTarget } from "../../src/core/http/intercept.ts";
import { parseRequestHead, type RequestHead } from "../../src/core/http/parser.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1Bytes } from "../../src/core/net/bytes.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { tripwireNet } from "../helpers/memory-net.ts";

function head(text: string): RequestHead {
  const r = parseRequestHead(latin1Bytes(text));
  if (r.kind !== "ok") throw new Error(`unparsable test head: ${r.kind}`);
  return r.head;
}

describe("interceptedTarget: requests inside a tunnel to localhost:8443", () => {
  const target = interceptedTarget("localhost", 8443);

  it.each([
    ["origin-form with the tunnel's Host", "GET /a?b=1 HTTP/1.1\r\nHost: localhost:8443\r\n\r\n", "/a?b=1"],
    ["Host spelled otherwise (case, trailing dot)", "GET /a HTTP/1.1\r\nHost: LOCALHOST.:8443\r\n\r\n", "/a"],
    ["absolute-form https:// naming the tunnel", "GET https://localhost:8443/abs HTTP/1.1\r\nHost: localhost:8443\r\n\r\n", "/abs"],
  ])("%s goes to the tunnel's origin over TLS", (_what, text, path) => {
    expect(target(head(text))).toEqual({ host: "localhost", port: 8443, path, authority: expect.any(String), tls: true });
  });

  it.each([
    ["another host", "GET / HTTP/1.1\r\nHost: evil.example:8443\r\n\r\n", "host mismatch"],
    ["another port", "GET / HTTP/1.1\r\nHost: localhost:9443\r\n\r\n", "host mismatch"],
    ["no port: 443, not the tunnel's 8443", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "host mismatch"],
    ["an address instead of the name", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n", "host mismatch"],
    ["absolute-form http://", "GET http://localhost:8443/ HTTP/1.1\r\nHost: localhost:8443\r\n\r\n", "an http:// request target inside an HTTPS tunnel"],
    ["absolute-form https:// to another host", "GET https://evil.example:8443/ HTTP/1.1\r\nHost: evil.example:8443\r\n\r\n", "host mismatch"],
    ["x-unix-socket", "GET / HTTP/1.1\r\nHost: localhost:8443\r\nx-unix-socket: /tmp/x.sock\r\n\r\n", "x-unix-socket inside an intercepted tunnel"],
  ])("%s is a 400", (_what, text, message) => {
    const r = target(head(text));
    expect(r).toMatchObject({ status: 400 });
    expect((r as { message: string }).message).toContain(message);
  });

  it("a tunnel on 443 takes a Host without a port", () => {
    expect(interceptedTarget("example.test", 443)(head("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"))).toMatchObject({ host: "example.test", port: 443, tls: true });
  });
});

describe("the gate marks only limited-mode CONNECTs for interception", () => {
  function context(config: Partial<ReturnType<typeof defaultNetworkConfig>>, decider?: ConstructorParameters<typeof ProxyState>[1]["decider"]) {
    const { net } = tripwireNet({ hosts: { "decided.example": ["127.0.0.1"] } });
    const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, allowed_domains: ["127.0.0.1"], ...config }, { resolve: (h) => net.resolve(h), decider });
    const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false };
    return { ctx, state };
  }
  const connect = { protocol: "https_connect", host: "127.0.0.1", port: 8443, method: "CONNECT", client: "127.0.0.1:50000" } as const;

  it("limited mode with mitm: allowed and marked; full mode: allowed, not marked; limited without mitm: refused", async () => {
    expect(await passGate(context({ mode: "limited", mitm: true }).ctx, connect)).toMatchObject({ kind: "allowed", intercept: true });
    const full = await passGate(context({ mode: "full", mitm: true }).ctx, connect);
    expect(full.kind).toBe("allowed");
    expect("intercept" in full).toBe(false);
    expect(await passGate(context({ mode: "limited" }).ctx, connect)).toMatchObject({ kind: "refused", refusal: { reason: "mitm_required" } });
  });

  it("a GET in limited mode is never marked", async () => {
    const get = await passGate(context({ mode: "limited", mitm: true }).ctx, { ...connect, protocol: "http", method: "GET" });
    expect(get.kind).toBe("allowed");
    expect("intercept" in get).toBe(false);
  });

  it("a switch to limited mode while a full-mode CONNECT is decided does not mark it (the decision's own snapshot counts)", async () => {
    let state!: ProxyState;
    const made = context({ mode: "full", allowed_domains: [], allow_local_binding: true }, () => {
      state.setMode("limited"); // the admin API or a reload, landing during the decision
      return { decision: "allow" };
    });
    state = made.state;
    const v = await passGate(made.ctx, { ...connect, host: "decided.example" });
    expect(state.snapshot().mode).toBe("limited");
    expect(v.kind).toBe("allowed");
    expect("intercept" in v).toBe(false);
  });
});
