/**
 * The embeddable library API (README "Library API", "Managed constraints", "Admin API"), run in
 * the test process: the builder on port 0, the policy decider (allow, deny, ask, throw,
 * timeout; never consulted for denied or local targets), shutdown with open tunnels, the child
 * environment (`env()`, proven with curl), per-command attribution over HTTP and SOCKS5 (the
 * credential never leaks into logs, decision records or `/blocked`), managed constraints on
 * build, reload, `setMode` and `POST /mode`, mounting `adminApp()` in another Hono app, and
 * `build()` errors.
 *
 * Every target is loopback; names under `.example` are refused before any lookup (and curl gets
 * `--resolve … :127.0.0.1` for them, so even a misrouted curl could not query DNS). No
 * synchronous child processes: the proxy runs on this event loop.
 */
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NetworkProxy, nodeRuntime, type NetworkProxyBuilder, type NetworkProxyHandle } from "../../src/runtimes/node/index.ts";
import { ConfigError, type NetworkConfig } from "../../src/core/config/types.ts";
import { createLineLogger } from "../../src/core/log.ts";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import type { NetworkPolicyRequest } from "../../src/core/policy/decide.ts";
import { StateChangeError } from "../../src/core/state.ts";
import {
  curl,
  type EchoReply,
  type Origin,
  proxyGet,
  RawClient,
  requestOnce,
  SOCKS_CMD,
  SOCKS_REP,
  socksOpen,
  startEchoServer,
  startOrigin,
  type TcpServer,
  withDeadline,
} from "./helpers/index.ts";
import { curlWithEnv, loopbackRequest, socksOpenWithUser } from "./helpers/library.ts";

/** curl's exit code when the SOCKS5 proxy refuses (CURLE_PROXY). */
const CURLE_PROXY = 97;
/** curl's exit code when a CONNECT is answered with a non-2xx (CURLE_RECV_ERROR). */
const CURLE_RECV_ERROR = 56;

let origin: Origin;
let echo: TcpServer;
/** Run after each test, newest first (proxies, servers, sockets). */
let cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  echo = await startEchoServer();
});

afterAll(async () => {
  await origin?.close();
  await echo?.close();
});

afterEach(async () => {
  const list = cleanups.reverse();
  cleanups = [];
  for (const c of list) {
    try {
      await withDeadline(Promise.resolve().then(c), 5_000, "cleanup");
    } catch {
      // keep cleaning up
    }
  }
});

/** Build and run; the handle is shut down after the test. */
async function start(builder: NetworkProxyBuilder): Promise<{ proxy: NetworkProxy; handle: NetworkProxyHandle }> {
  const proxy = (await withDeadline(builder.build(), 5_000, "build()")) as NetworkProxy;
  const running = await withDeadline(proxy.run(), 5_000, "run()");
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => (stopping ??= running.shutdown());
  cleanups.push(shutdown);
  return { proxy, handle: { ...running, shutdown } };
}

/** `127.0.0.1:PORT` of the origin. */
function originAuthority(): string {
  return `127.0.0.1:${origin.port}`;
}

/** Read exactly `text.length` bytes echoed back through a tunnel. */
async function roundTrip(client: RawClient, text: string): Promise<string> {
  await client.write(text);
  return (await client.readBytes(Buffer.byteLength(text), 5_000)).toString("utf8");
}

/** Expect `promise` to reject with an instance of `cls` whose message matches every pattern. */
async function expectRejects(promise: Promise<unknown>, cls: abstract new (...a: never[]) => Error, ...patterns: (RegExp | string)[]): Promise<Error> {
  let error: unknown;
  try {
    await withDeadline(promise, 5_000, "expected rejection");
  } catch (e) {
    error = e;
  }
  expect(error, "expected a rejection").toBeInstanceOf(Error);
  const err = error as Error;
  expect(err, `${err.name}: ${err.message}`).toBeInstanceOf(cls);
  for (const p of patterns) {
    if (typeof p === "string") expect(err.message).toContain(p);
    else expect(err.message).toMatch(p);
  }
  return err;
}

describe("builder on port 0", () => {
  it("binds real ports for HTTP, SOCKS5 and admin, and serves on them", async () => {
    const { handle } = await start(
      NetworkProxy.builder()
        .config({ allowed_domains: ["127.0.0.1"] })
        .httpAddr("127.0.0.1:0")
        .socksAddr("127.0.0.1:0")
        .adminAddr("127.0.0.1:0"),
    );
    const { http, socks5, admin } = handle.addresses;
    expect(http.host).toBe("127.0.0.1");
    expect(http.port).toBeGreaterThan(0);
    expect(socks5?.host).toBe("127.0.0.1");
    expect(socks5?.port).toBeGreaterThan(0);
    expect(admin?.host).toBe("127.0.0.1");
    expect(admin?.port).toBeGreaterThan(0);
    expect(new Set([http.port, socks5!.port, admin!.port]).size).toBe(3);

    const r = await proxyGet(http.port, originAuthority(), "/through-http");
    expect(r.status, r.text).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/through-http");

    const { client, reply } = await socksOpen(socks5!.port, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
    try {
      expect(reply.rep).toBe(SOCKS_REP.SUCCEEDED);
      expect(await roundTrip(client, "through socks5")).toBe("through socks5");
    } finally {
      client.destroy();
    }

    const health = await loopbackRequest(admin!.port, "GET", "/health");
    expect(health.status).toBe(200);
    expect(health.text).toBe("ok");
  });

  it("binds no SOCKS5 or admin listener unless asked", async () => {
    const { handle } = await start(NetworkProxy.builder().config({ allowed_domains: ["127.0.0.1"] }).httpAddr("127.0.0.1:0"));
    expect(handle.addresses.http.port).toBeGreaterThan(0);
    expect(handle.addresses.socks5).toBeUndefined();
    expect(handle.addresses.admin).toBeUndefined();
  });
});

describe("policy decider", () => {
  it("allows an allowlist miss, is never consulted for denied hosts, and its deny is blocked-by-policy", async () => {
    const seen: NetworkPolicyRequest[] = [];
    let current: Partial<NetworkConfig> = { allowed_domains: [], allow_local_binding: true };
    const { proxy, handle } = await start(
      NetworkProxy.builder()
        .configSource(() => current)
        .httpAddr("127.0.0.1:0")
        .policyDecider((req) => {
          seen.push(req);
          if (req.host === "127.0.0.1") return { decision: "allow" };
          return { decision: "deny", reason: "not_on_my_list" };
        }),
    );
    const port = handle.addresses.http.port;

    const ok = await proxyGet(port, originAuthority(), "/decider-allowed");
    expect(ok.status, ok.text).toBe(200);
    expect((JSON.parse(ok.text) as EchoReply).url).toBe("/decider-allowed");
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ protocol: "http", host: "127.0.0.1", port: origin.port, method: "GET" });
    expect(seen[0]!.client_addr).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(seen[0]!.command).toBeUndefined();

    const denied = await proxyGet(port, "decider-denied.example", "/secret?q=1");
    expect(denied.status).toBe(403);
    expect(denied.headers["x-proxy-error"]).toBe("blocked-by-policy");
    expect(denied.headers["content-type"]).toMatch(/^application\/json\b/);
    expect(JSON.parse(denied.text)).toEqual({
      status: "blocked",
      host: "decider-denied.example",
      reason: "not_on_my_list",
      decision: "deny",
      source: "decider",
      protocol: "http",
      port: 80,
      message: "Request blocked by network policy.",
    });
    expect(seen).toHaveLength(2);

    // The same host the decider allows, now on the denylist: denied, decider never asked.
    current = { allowed_domains: [], allow_local_binding: true, denied_domains: ["127.0.0.1"] };
    await withDeadline(proxy.state.reload(), 5_000, "reload");
    const before = seen.length;
    const onDeny = await proxyGet(port, originAuthority(), "/now-denied");
    expect(onDeny.status).toBe(403);
    expect(onDeny.headers["x-proxy-error"]).toBe("blocked-by-denylist");
    expect(JSON.parse(onDeny.text)).toMatchObject({ host: "127.0.0.1", reason: "denied", source: "baseline_policy" });
    expect(seen).toHaveLength(before);
    expect(origin.requests.some((r) => r.url === "/now-denied")).toBe(false);
  });

  it("is not consulted for a local target when allow_local_binding is false", async () => {
    let calls = 0;
    const { handle } = await start(
      NetworkProxy.builder()
        .config({ allowed_domains: [], allow_local_binding: false })
        .httpAddr("127.0.0.1:0")
        .policyDecider(() => {
          calls++;
          return { decision: "allow" };
        }),
    );
    const r = await proxyGet(handle.addresses.http.port, originAuthority(), "/local");
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
    expect(JSON.parse(r.text)).toMatchObject({ host: "127.0.0.1", reason: "not_allowed_local", source: "baseline_policy", decision: "deny" });
    expect(calls).toBe(0);
    expect(origin.requests.some((x) => x.url === "/local")).toBe(false);
  });

  it("a throwing decider denies with decider_error, an ask answer blocks with decision ask, silence times out after 5 s", async () => {
    const { handle } = await start(
      NetworkProxy.builder()
        .config({ allowed_domains: [], allow_local_binding: true })
        .httpAddr("127.0.0.1:0")
        .policyDecider((req) => {
          if (req.host === "throws.example") throw new Error("decider exploded");
          if (req.host === "rejects.example") return Promise.reject(new Error("async decider exploded"));
          if (req.host === "ask.example") return { decision: "ask", reason: "needs_user_approval" };
          if (req.host === "ask-plain.example") return { decision: "ask" };
          return new Promise<never>(() => undefined); // never answers
        }),
    );
    const port = handle.addresses.http.port;
    const body = (host: string, reason: string, decision = "deny") => ({
      status: "blocked",
      host,
      reason,
      decision,
      source: "decider",
      protocol: "http",
      port: 80,
      message: "Request blocked by network policy.",
    });

    for (const host of ["throws.example", "rejects.example"]) {
      const r = await proxyGet(port, host);
      expect(r.status).toBe(403);
      expect(r.headers["x-proxy-error"]).toBe("blocked-by-policy");
      expect(JSON.parse(r.text)).toEqual(body(host, "decider_error"));
    }

    const ask = await proxyGet(port, "ask.example");
    expect(ask.status).toBe(403);
    expect(ask.headers["x-proxy-error"]).toBe("blocked-by-policy");
    expect(JSON.parse(ask.text)).toEqual(body("ask.example", "needs_user_approval", "ask"));
    const askPlain = await proxyGet(port, "ask-plain.example");
    expect(askPlain.status).toBe(403);
    expect(JSON.parse(askPlain.text)).toMatchObject({ decision: "ask", source: "decider" });

    const t0 = Date.now();
    const slow = await withDeadline(
      (async () => {
        const c = await RawClient.connect(port);
        try {
          await c.write("GET http://slow.example/ HTTP/1.1\r\nHost: slow.example\r\n\r\n");
          return await c.readResponse({ timeoutMs: 9_000 });
        } finally {
          c.destroy();
        }
      })(),
      10_000,
      "decider timeout answer",
    );
    const took = Date.now() - t0;
    expect(slow.status).toBe(403);
    expect(JSON.parse(slow.text)).toEqual(body("slow.example", "decider_timeout"));
    expect(took).toBeGreaterThanOrEqual(4_500);
    expect(took).toBeLessThan(8_000);
  }, 20_000);
});

describe("shutdown", () => {
  it("closes open CONNECT and SOCKS5 tunnels and stops accepting", async () => {
    const { handle } = await start(
      NetworkProxy.builder()
        .config({ allowed_domains: ["127.0.0.1"] })
        .httpAddr("127.0.0.1:0")
        .socksAddr("127.0.0.1:0")
        .adminAddr("127.0.0.1:0"),
    );
    const { http, socks5, admin } = handle.addresses;

    const tunnel = await RawClient.connect(http.port);
    cleanups.push(() => tunnel.destroy());
    await tunnel.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
    const head = await tunnel.readResponse({ connect: true });
    expect(head.status).toBe(200);
    expect(await roundTrip(tunnel, "connect tunnel")).toBe("connect tunnel");

    const { client: socksTunnel, reply } = await socksOpen(socks5!.port, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
    cleanups.push(() => socksTunnel.destroy());
    expect(reply.rep).toBe(SOCKS_REP.SUCCEEDED);
    expect(await roundTrip(socksTunnel, "socks tunnel")).toBe("socks tunnel");

    // An idle keep-alive client connection too.
    const idle = await RawClient.connect(http.port);
    cleanups.push(() => idle.destroy());

    await withDeadline(handle.shutdown(), 5_000, "shutdown() with open tunnels");

    expect(await tunnel.waitClosed(3_000), "CONNECT tunnel closed by shutdown").toBe(true);
    expect(await socksTunnel.waitClosed(3_000), "SOCKS5 tunnel closed by shutdown").toBe(true);
    expect(await idle.waitClosed(3_000), "idle client connection closed by shutdown").toBe(true);

    for (const [what, port] of [["http", http.port], ["socks5", socks5!.port], ["admin", admin!.port]] as const) {
      await expect(RawClient.connect(port), `${what} listener still accepting`).rejects.toThrow(/ECONNREFUSED/);
    }
  });
});

describe("env()", () => {
  it("names the HTTP proxy in every spelling, empties NO_PROXY, and ALL_PROXY only with SOCKS5", async () => {
    const { handle } = await start(NetworkProxy.builder().config({ allowed_domains: ["127.0.0.1"] }).httpAddr("127.0.0.1:0"));
    const url = `http://127.0.0.1:${handle.addresses.http.port}`;
    expect(handle.env()).toEqual({
      HTTP_PROXY: url,
      HTTPS_PROXY: url,
      http_proxy: url,
      https_proxy: url,
      NO_PROXY: "",
      no_proxy: "",
      npm_config_proxy: url,
      npm_config_https_proxy: url,
      YARN_HTTP_PROXY: url,
      YARN_HTTPS_PROXY: url,
      PIP_PROXY: url,
    });

    const { handle: withSocks } = await start(
      NetworkProxy.builder().config({ allowed_domains: ["127.0.0.1"] }).httpAddr("127.0.0.1:0").socksAddr("127.0.0.1:0"),
    );
    const env = withSocks.env();
    const socksUrl = `socks5h://127.0.0.1:${withSocks.addresses.socks5!.port}`;
    expect(env.ALL_PROXY).toBe(socksUrl);
    expect(env.all_proxy).toBe(socksUrl);
    expect(env.HTTP_PROXY).toBe(`http://127.0.0.1:${withSocks.addresses.http.port}`);
    expect(env.NO_PROXY).toBe("");
    expect(env.no_proxy).toBe("");
  });

  it("is an environment curl actually goes through the proxy with (HTTP, CONNECT and SOCKS5)", async () => {
    const records: DecisionRecord[] = [];
    const { handle } = await start(
      NetworkProxy.builder()
        .config({ allowed_domains: ["127.0.0.1"] })
        .httpAddr("127.0.0.1:0")
        .socksAddr("127.0.0.1:0")
        .onDecision((r) => records.push(r)),
    );
    const env = handle.env();
    const guard = ["--resolve", "env-denied.example:80:127.0.0.1", "--resolve", "env-denied.example:443:127.0.0.1"];

    const ok = await curlWithEnv([`http://127.0.0.1:${origin.port}/via-env`], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.text) as EchoReply).url).toBe("/via-env");
    expect(records).toContainEqual(expect.objectContaining({ decision: "allow", protocol: "http", host: "127.0.0.1", port: origin.port }));

    // Only the proxy answers 403 with x-proxy-error.
    const refused = await curlWithEnv([...guard, "http://env-denied.example/"], env);
    expect(refused.status).toBe(403);
    expect(refused.headers["x-proxy-error"]).toBe("blocked-by-allowlist");

    // https:// goes through HTTPS_PROXY as a CONNECT, refused by the proxy.
    const tls = await curlWithEnv([...guard, "https://env-denied.example/"], env);
    expect(tls.code).toBe(CURLE_RECV_ERROR);
    expect(records).toContainEqual(expect.objectContaining({ decision: "deny", protocol: "https_connect", host: "env-denied.example", port: 443 }));

    // ALL_PROXY alone (socks5h): the SOCKS5 listener gets it.
    const viaSocks = await curlWithEnv([`http://127.0.0.1:${origin.port}/via-all-proxy`], { ALL_PROXY: env.ALL_PROXY!, NO_PROXY: "" });
    expect(viaSocks.code, viaSocks.stderr).toBe(0);
    expect(viaSocks.status).toBe(200);
    expect(records).toContainEqual(expect.objectContaining({ decision: "allow", protocol: "socks5_tcp", host: "127.0.0.1", port: origin.port }));
  });
});

describe("per-command attribution", () => {
  it("envFor() credentials reach the decider with command and hint, over HTTP and SOCKS5, and never leak", async () => {
    const seen: NetworkPolicyRequest[] = [];
    const lines: string[] = [];
    const records: DecisionRecord[] = [];
    const { proxy, handle } = await start(
      NetworkProxy.builder()
        .config({ allowed_domains: [], allow_local_binding: true })
        .httpAddr("127.0.0.1:0")
        .socksAddr("127.0.0.1:0")
        .adminAddr("127.0.0.1:0")
        .log(createLineLogger((l) => lines.push(l), "trace"))
        .onDecision((r) => records.push(r))
        .policyDecider((req) => {
          seen.push(req);
          if (req.command?.startsWith("curl ")) return { decision: "allow" };
          return { decision: "deny", reason: "unattributed" };
        }),
    );
    const httpPort = handle.addresses.http.port;
    const socksPort = handle.addresses.socks5!.port;
    const target = `http://127.0.0.1:${origin.port}`;
    const command = `curl ${target}/attributed`;

    const attributedEnv = handle.envFor({ command, execPolicyHint: "hint-42" });
    const token = new URL(attributedEnv.HTTP_PROXY!).username;
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(attributedEnv.HTTP_PROXY).toBe(`http://${token}@127.0.0.1:${httpPort}`);
    expect(attributedEnv.https_proxy).toBe(attributedEnv.HTTP_PROXY);
    expect(attributedEnv.ALL_PROXY).toBe(`socks5h://${token}@127.0.0.1:${socksPort}`);
    expect(attributedEnv.NO_PROXY).toBe("");
    // Each call mints a fresh credential.
    expect(new URL(handle.envFor({ command }).HTTP_PROXY!).username).not.toBe(token);

    const ok = await curlWithEnv([`${target}/attributed`], attributedEnv);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.status, ok.text).toBe(200);
    expect(seen.at(-1)).toMatchObject({ protocol: "http", host: "127.0.0.1", command, exec_policy_hint: "hint-42" });
    // The credential is the proxy's business: not forwarded to the origin.
    expect((JSON.parse(ok.text) as EchoReply).headers["proxy-authorization"]).toBeUndefined();

    // A CONNECT tunnel (curl -p) presents it too.
    const tunnelled = await curlWithEnv(["-p", `${target}/attributed-tunnel`], attributedEnv);
    expect(tunnelled.code, tunnelled.stderr).toBe(0);
    expect(tunnelled.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ protocol: "https_connect", host: "127.0.0.1", port: origin.port, command, exec_policy_hint: "hint-42" });
    const tunnelPlain = await curlWithEnv(["-p", `${target}/plain-tunnel`], handle.env());
    expect(tunnelPlain.code).toBe(CURLE_RECV_ERROR);
    expect(seen.at(-1)!.protocol).toBe("https_connect");
    expect(seen.at(-1)!.command).toBeUndefined();

    const plain = await curlWithEnv([`${target}/unattributed`], handle.env());
    expect(plain.status).toBe(403);
    expect(plain.headers["x-proxy-error"]).toBe("blocked-by-policy");
    expect(JSON.parse(plain.text)).toMatchObject({ reason: "unattributed", source: "decider" });
    expect(seen.at(-1)!.command).toBeUndefined();
    expect(seen.at(-1)!.exec_policy_hint).toBeUndefined();

    const forgedUrl = `http://deadbeef@127.0.0.1:${httpPort}`;
    const forged = await curlWithEnv([`${target}/forged`], { ...handle.env(), HTTP_PROXY: forgedUrl, http_proxy: forgedUrl });
    expect(forged.status).toBe(403);
    expect(seen.at(-1)!.command).toBeUndefined();
    expect(origin.requests.some((r) => r.url === "/unattributed" || r.url === "/forged")).toBe(false);

    // SOCKS5: curl with the credential as the RFC 1929 user name, then raw RFC 1929.
    const viaSocks = await curl(["--proxy", `socks5h://${token}@127.0.0.1:${socksPort}`, `${target}/socks-attributed`]);
    expect(viaSocks.code, viaSocks.stderr).toBe(0);
    expect(seen.at(-1)).toMatchObject({ protocol: "socks5_tcp", host: "127.0.0.1", command, exec_policy_hint: "hint-42" });
    const socksPlain = await curl(["--proxy", `socks5h://127.0.0.1:${socksPort}`, `${target}/socks-plain`]);
    expect(socksPlain.code).toBe(CURLE_PROXY);
    expect(seen.at(-1)!.command).toBeUndefined();
    const socksForged = await curl(["--proxy", `socks5h://deadbeef@127.0.0.1:${socksPort}`, `${target}/socks-forged`]);
    expect(socksForged.code).toBe(CURLE_PROXY);

    const raw = await socksOpenWithUser(socksPort, token, "127.0.0.1", echo.port);
    try {
      expect(raw.reply.rep).toBe(SOCKS_REP.SUCCEEDED);
      expect(await roundTrip(raw.client, "attributed tunnel")).toBe("attributed tunnel");
    } finally {
      raw.client.destroy();
    }
    const rawForged = await socksOpenWithUser(socksPort, "deadbeef", "127.0.0.1", echo.port);
    rawForged.client.destroy();
    expect(rawForged.reply.rep).toBe(SOCKS_REP.NOT_ALLOWED);

    // The credential never shows: not in /blocked, the decision records or the log.
    const blocked = await loopbackRequest(handle.addresses.admin!.port, "GET", "/blocked");
    expect(blocked.status).toBe(200);
    const entries = (JSON.parse(blocked.text) as { blocked: { reason: string }[] }).blocked;
    expect(entries.filter((e) => e.reason === "unattributed").length).toBeGreaterThanOrEqual(4);
    expect(blocked.text).not.toContain(token);
    expect(blocked.text).not.toContain("deadbeef");
    expect(JSON.stringify(proxy.state.blocked.list())).not.toContain(token);
    expect(records.length).toBeGreaterThan(0);
    expect(JSON.stringify(records)).not.toContain(token);
    expect(lines.length, "the logger passed with .log() got lines").toBeGreaterThan(0);
    expect(lines.filter((l) => l.includes(token))).toEqual([]);
    expect(lines.filter((l) => l.includes("deadbeef"))).toEqual([]);
  });
});

describe("managed constraints", () => {
  it("refuse a wider config at build, on reload, on setMode and on POST /mode", async () => {
    const constraints = { mode: "limited" as const, allowed_domains: ["127.0.0.1"] };
    const wide = await expectRejects(
      NetworkProxy.builder().config({ mode: "full", allowed_domains: ["127.0.0.1"] }).constraints(constraints).httpAddr("127.0.0.1:0").build(),
      ConfigError,
      "network.mode",
    );
    expect(wide.message).toContain("limited");

    let current: Partial<NetworkConfig> = { mode: "limited", allowed_domains: ["127.0.0.1"] };
    const { proxy, handle } = await start(
      NetworkProxy.builder()
        .configSource(() => current)
        .constraints(constraints)
        .httpAddr("127.0.0.1:0")
        .adminAddr("127.0.0.1:0"),
    );
    const port = handle.addresses.http.port;
    const admin = handle.addresses.admin!.port;
    expect(proxy.state.snapshot().mode).toBe("limited");
    const get = await proxyGet(port, originAuthority(), "/limited-get");
    expect(get.status).toBe(200);

    // A reload that widens the allowlist is refused; the old policy stays.
    current = { mode: "limited", allowed_domains: ["127.0.0.1", "widened.example"] };
    await expectRejects(proxy.state.reload(), StateChangeError, "allowed_domains", "widened.example");
    expect(proxy.state.snapshot().network.allowed_domains).toEqual(["127.0.0.1"]);
    const widened = await proxyGet(port, "widened.example");
    expect(widened.status).toBe(403);
    expect(JSON.parse(widened.text)).toMatchObject({ host: "widened.example", reason: "not_allowed" });
    const reloadViaAdmin = await loopbackRequest(admin, "POST", "/reload");
    expect(reloadViaAdmin.status).toBe(500);
    expect(proxy.state.snapshot().network.allowed_domains).toEqual(["127.0.0.1"]);

    // A reload to mode full is refused too.
    current = { mode: "full", allowed_domains: ["127.0.0.1"] };
    await expectRejects(proxy.state.reload(), StateChangeError, "network.mode");
    expect(proxy.state.snapshot().mode).toBe("limited");

    // setMode("full") throws; mode stays limited and POST is still refused.
    expect(() => proxy.state.setMode("full")).toThrow(StateChangeError);
    expect(proxy.state.snapshot().mode).toBe("limited");
    const post = await requestOnce(
      port,
      `POST http://${originAuthority()}/post-in-limited HTTP/1.1\r\nHost: ${originAuthority()}\r\nContent-Length: 2\r\n\r\n{}`,
    );
    expect(post.status).toBe(403);
    expect(post.headers["x-proxy-error"]).toBe("blocked-by-method-policy");

    // POST /mode full on the admin listener: 409, nothing changed.
    const mode = await loopbackRequest(admin, "POST", "/mode", JSON.stringify({ mode: "full" }));
    expect(mode.status).toBe(409);
    expect(JSON.parse(mode.text)).toMatchObject({ status: "error" });
    expect((JSON.parse(mode.text) as { error: string }).error).toContain("network.mode");
    expect(proxy.state.snapshot().mode).toBe("limited");
    const config = await loopbackRequest(admin, "GET", "/config");
    expect((JSON.parse(config.text) as { network: { mode: string } }).network.mode).toBe("limited");

    // A reload with an invalid pattern is refused naming it; the old policy stays.
    current = { mode: "limited", allowed_domains: ["127.0.0.1", "exa[mple"] };
    await expectRejects(proxy.state.reload(), StateChangeError, "exa[mple");
    expect(proxy.state.snapshot().network.allowed_domains).toEqual(["127.0.0.1"]);

    // A compliant reload is applied.
    current = { mode: "limited", allowed_domains: [] };
    await withDeadline(proxy.state.reload(), 5_000, "compliant reload");
    expect(proxy.state.snapshot().network.allowed_domains).toEqual([]);
  });
});

describe("adminApp() mounted in another Hono app", () => {
  it("answers under the mount prefix only", async () => {
    const { proxy, handle } = await start(NetworkProxy.builder().config({ allowed_domains: [] }).httpAddr("127.0.0.1:0"));
    // Something to show in /blocked.
    const refused = await proxyGet(handle.addresses.http.port, "mounted-denied.example");
    expect(refused.status).toBe(403);

    const app = new Hono();
    app.get("/", (c) => c.text("host app"));
    app.route("/proxy", proxy.adminApp());
    const port = await withDeadline(
      new Promise<number>((resolve, reject) => {
        const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => resolve(info.port));
        server.once("error", reject);
        cleanups.push(
          () =>
            new Promise<void>((r) => {
              server.close(() => r());
              (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            }),
        );
      }),
      5_000,
      "serve host app",
    );

    const health = await loopbackRequest(port, "GET", "/proxy/health");
    expect(health.status).toBe(200);
    expect(health.text).toBe("ok");
    const blocked = await loopbackRequest(port, "GET", "/proxy/blocked");
    expect(blocked.status).toBe(200);
    expect(blocked.headers["content-type"]).toMatch(/^application\/json\b/);
    const list = (JSON.parse(blocked.text) as { blocked: { host: string; reason: string }[] }).blocked;
    expect(list).toContainEqual(expect.objectContaining({ host: "mounted-denied.example", reason: "not_allowed" }));
    const root = await loopbackRequest(port, "GET", "/");
    expect(root.text).toBe("host app");
    const unmounted = await loopbackRequest(port, "GET", "/health");
    expect(unmounted.status).toBe(404);
  });
});

describe("a runtime of the embedder's own", () => {
  const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

  it("builder(runtime) reads the admin token from the runtime's env, not the process's", async () => {
    const runtime = { ...nodeRuntime, env: envOf({ CODEX_NETWORK_PROXY_ADMIN_TOKEN: "embedder-tok" }) };
    const { proxy } = await start(NetworkProxy.builder(runtime).config({ allowed_domains: [] }).httpAddr("127.0.0.1:0"));
    const app = proxy.adminApp();
    expect((await app.request("/config", { headers: { host: "127.0.0.1" } })).status).toBe(401);
    const ok = await app.request("/config", { headers: { host: "127.0.0.1", authorization: "Bearer embedder-tok" } });
    expect(ok.status).toBe(200);
  });

  it("a token in the runtime's env that is not a bearer token fails build() with a ConfigError naming the variable", async () => {
    const runtime = { ...nodeRuntime, env: envOf({ CODEX_NETWORK_PROXY_ADMIN_TOKEN: "two words" }) };
    const err = await expectRejects(NetworkProxy.builder(runtime).config({}).httpAddr("127.0.0.1:0").build(), ConfigError, "CODEX_NETWORK_PROXY_ADMIN_TOKEN", "is not a bearer token");
    expect(err.message).not.toContain("two words");
  });

  it("a bare { net } runtime runs the proxy; .configFile() then says the runtime cannot read files", async () => {
    const { handle } = await start(NetworkProxy.builder({ net: nodeRuntime.net }).config({ allowed_domains: [] }).httpAddr("127.0.0.1:0"));
    expect((await proxyGet(handle.addresses.http.port, "bare-runtime.example")).status).toBe(403);
    await expectRejects(NetworkProxy.builder({ net: nodeRuntime.net }).configFile("/nonexistent/config.toml").httpAddr("127.0.0.1:0").build(), ConfigError, "cannot read config files");
  });
});

describe("build() errors", () => {
  const b = () => NetworkProxy.builder().httpAddr("127.0.0.1:0");

  it("a bad mode names network.mode", async () => {
    await expectRejects(b().config({ mode: "fast" as unknown as "full" }).build(), ConfigError, "network.mode", "fast");
  });

  it("a bad pattern is a ConfigError naming the key and the pattern", async () => {
    await expectRejects(b().config({ allowed_domains: ["exa[mple"] }).build(), ConfigError, "network.allowed_domains", "exa[mple");
  });

  it("a bad listener address names the builder method and the value", async () => {
    await expectRejects(NetworkProxy.builder().config({}).httpAddr("not an address").build(), ConfigError, "httpAddr", "not an address");
    await expectRejects(NetworkProxy.builder().config({}).httpAddr("127.0.0.1:99999").build(), ConfigError, "httpAddr", "99999");
    await expectRejects(b().config({}).socksAddr("nowhere:port").build(), ConfigError, "socksAddr");
  });

  it("enabled: false is refused", async () => {
    await expectRejects(b().config({ enabled: false }).build(), ConfigError, "network.enabled");
  });
});

describe("metrics in the library (docs/behaviour.md §7.5)", () => {
  it("an app's metric reader gets the metrics, with a last export at shutdown; state.metrics serves the Prometheus text", async () => {
    const { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader } = await import("@opentelemetry/sdk-metrics");
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const { proxy, handle } = await start(NetworkProxy.builder(nodeRuntime).config({ allowed_domains: ["127.0.0.1"] }).httpAddr("127.0.0.1:0").metricReader(reader));
    const r = await curlWithEnv([`${origin.url}/lib-metrics`], handle.env());
    expect(r.status).toBe(200);
    expect(await proxy.state.metrics.prometheusText()).toMatch(/^network_proxy_decisions_total\{protocol="http",decision="allow",reason="allowed",[^}]*\} 1$/m);
    await handle.shutdown();
    const names = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.descriptor.name)));
    expect(names).toContain("network_proxy.decisions");
    expect(names).toContain("network_proxy.decision.duration");
  });
});
