/**
 * Out of file descriptors: the proxy runs under a low open-files limit with its HTTP listener,
 * SOCKS5 listener and admin API, and idle clients take every descriptor. The process must live
 * on, every listener must serve again within seconds once the clients are gone, and an accept
 * failure is logged once per burst, never once per connection.
 *
 * What each runtime does at the limit (see the adapters): Deno's accept loops are the
 * adapter's own, so each listener logs exactly one warning when its burst starts and one line
 * with the count when it recovers. Node's libuv accepts and closes what is queued on its own
 * (no error reaches JavaScript unless that fails) and Bun never reports a failed accept, so
 * there the warnings may not appear at all, but never more than once per burst.
 */
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest } from "./helpers/admin.ts";
import {
  absoluteGet,
  delay,
  networkConfig,
  type Origin,
  pollUntil,
  type ProxyProcess,
  RawClient,
  readSocksReply,
  requestOnce,
  RUNTIME,
  SOCKS_CMD,
  SOCKS_GREETING,
  SOCKS_REP,
  socksRequest,
  startOrigin,
  startProxy,
  withDeadline,
} from "./helpers/index.ts";

/** Open-files limit of the proxy process: room for its own descriptors and some clients. */
const NOFILE = 192;
/** Idle clients opened on the HTTP listener: more than the proxy has descriptors for. */
const HTTP_FLOOD = 300;
/** Idle clients opened on the SOCKS5 listener and on the admin listener once descriptors ran out. */
const OTHER_FLOOD = 20;
/** How long a listener may take to serve again after the clients left (backoff tops out at 1 s). */
const RECOVERY_DEADLINE_MS = 10_000;
/** Deadline of one attempt in a retry loop. */
const ATTEMPT_MS = 2_000;

const LISTENERS = ["HTTP proxy", "SOCKS5 proxy", "admin API"] as const;

let origin: Origin;
let proxy: ProxyProcess;
const clients: Socket[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], enable_socks5: true, socks_url: "http://127.0.0.1:0" }), {
    nofile: NOFILE,
    waitForSocks5: true,
    waitForAdmin: true,
  });
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await proxy?.stop();
  await origin?.close();
});

/** Descriptors the proxy holds now. */
function proxyFds(): number {
  return readdirSync(`/proc/${proxy.child.pid}/fd`).length;
}

/** Open an idle client on `port` (the kernel completes the handshake even when the proxy cannot accept). */
function openIdle(port: number): Promise<void> {
  const s = connect({ port, host: "127.0.0.1" });
  clients.push(s);
  s.on("error", () => {}); // reset by the proxy (Node sheds what it cannot accept): expected
  return withDeadline(
    new Promise<void>((resolve) => {
      s.once("connect", () => resolve());
      s.once("close", () => resolve());
    }),
    5_000,
    `connect to 127.0.0.1:${port}`,
  );
}

/** Whether the proxy process is still running. */
function alive(): boolean {
  if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) return false;
  try {
    process.kill(proxy.child.pid!, 0);
    return true;
  } catch {
    return false;
  }
}

/** Retry `attempt` until it resolves; reject with the last error after `ms`. */
async function eventually<T>(attempt: () => Promise<T>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await withDeadline(attempt(), ATTEMPT_MS, what);
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what}: still failing after ${ms} ms: ${(e as Error).message}`);
      await delay(100);
    }
  }
}

/** A SOCKS5 CONNECT to the origin through the proxy; resolves with the reply code. */
async function socksConnect(): Promise<number> {
  const c = await RawClient.connect(proxy.socksPort!);
  try {
    await c.write(SOCKS_GREETING);
    const method = await c.readBytes(2, ATTEMPT_MS);
    if (method[0] !== 0x05 || method[1] !== 0x00) throw new Error(`method selection answered ${method.toString("hex")}`);
    await c.write(socksRequest(SOCKS_CMD.CONNECT, "127.0.0.1", origin.port));
    return (await readSocksReply(c, ATTEMPT_MS)).rep;
  } finally {
    c.destroy();
  }
}

/** stderr lines of `listener` matching `re`. */
function lines(listener: string, re: RegExp): string[] {
  return proxy
    .stderr()
    .split("\n")
    .filter((l) => l.includes(`${listener} listener on `) && re.test(l));
}

const FAILING = /accepting a connection failed/;
const RECOVERED = /accepting again after (\d+) failed accepts? in \d+ ms/;

describe(`out of file descriptors (open-files limit ${NOFILE})`, () => {
  it("the proxy serves normally under the limit", async () => {
    const r = await requestOnce(proxy.port, absoluteGet(`127.0.0.1:${origin.port}`, "/before"), { timeoutMs: 5_000 });
    expect(r.status).toBe(200);
  });

  it("survives every listener being exhausted, then serves again on each, logging once per burst", async () => {
    // Take every descriptor through the HTTP listener.
    await Promise.all(Array.from({ length: HTTP_FLOOD }, () => openIdle(proxy.port)));
    await pollUntil(() => proxyFds() >= NOFILE - 1, 10_000, `the proxy holding ${NOFILE - 1}+ descriptors (has ${proxyFds()})`);
    // Now the other listeners cannot accept either.
    await Promise.all(Array.from({ length: OTHER_FLOOD }, () => openIdle(proxy.socksPort!)));
    await Promise.all(Array.from({ length: OTHER_FLOOD }, () => openIdle(proxy.adminPort!)));
    // Exhausted indeed: a health check gets no answer (queued by the kernel, or shed by Node).
    await expect(adminRequest(proxy.adminPort!, "GET", "/health", { timeoutMs: 1_000 })).rejects.toThrow();
    if (RUNTIME === "deno") {
      const warned = (): boolean => LISTENERS.every((l) => lines(l, FAILING).length > 0);
      await pollUntil(() => !alive() || warned(), 10_000, "an accept warning from every listener");
    } else {
      await delay(500); // let the listeners retry for a while
    }
    expect(alive(), `the proxy died; stderr:\n${proxy.stderr()}`).toBe(true);

    for (const c of clients.splice(0)) c.destroy();

    const http = await eventually(
      () => requestOnce(proxy.port, absoluteGet(`127.0.0.1:${origin.port}`, "/after"), { timeoutMs: ATTEMPT_MS }),
      RECOVERY_DEADLINE_MS,
      "HTTP proxy request after the clients left",
    );
    expect(http.status).toBe(200);
    expect(await eventually(socksConnect, RECOVERY_DEADLINE_MS, "SOCKS5 CONNECT after the clients left")).toBe(SOCKS_REP.SUCCEEDED);
    const health = await eventually(
      () => adminRequest(proxy.adminPort!, "GET", "/health", { timeoutMs: ATTEMPT_MS }),
      RECOVERY_DEADLINE_MS,
      "admin GET /health after the clients left",
    );
    expect(health.status).toBe(200);
    expect(alive()).toBe(true);

    // One warning per burst at most, although hundreds of connections could not be accepted.
    for (const l of LISTENERS) expect(lines(l, FAILING).length, `${l} warnings:\n${lines(l, FAILING).join("\n")}`).toBeLessThanOrEqual(1);
    if (RUNTIME === "deno") {
      for (const l of LISTENERS) {
        expect(lines(l, FAILING)).toHaveLength(1);
        const recovered = lines(l, RECOVERED);
        expect(recovered, `${l} recovery lines`).toHaveLength(1);
        expect(Number(RECOVERED.exec(recovered[0]!)![1])).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it("still shuts down cleanly", async () => {
    expect(await proxy.stop()).toBe(0);
  });
});
