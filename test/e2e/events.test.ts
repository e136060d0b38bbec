/**
 * `GET /events` (issue 15 item 3, docs/behaviour.md §7.6) streams to `curl -N` on node, bun and
 * deno: a `ready` event, then each decision as it is made (no URL path or query in it); with an
 * admin token the stream needs it too.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CURL, curlHttp, networkConfig, type Origin, type ProxyProcess, RUNTIME, startOrigin, startProxy, withDeadline } from "./helpers/index.ts";

let origin: Origin;
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  origin = await startOrigin();
});

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await origin?.close();
});

/** `curl -N` on the stream until `until` is in its output (or `ms` pass); its output and exit code. */
function streamUntil(url: string, until: string, ms: number, headers: string[] = []): { done: Promise<{ out: string; code: number | null }>; started: Promise<void> } {
  const child = spawn(CURL, ["-q", "-sN", ...headers.flatMap((h) => ["-H", h]), url], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  let ready: () => void;
  const started = new Promise<void>((r) => (ready = r));
  child.stdout.setEncoding("utf8").on("data", (c: string) => {
    out += c;
    if (out.includes("event: ready")) ready();
    if (out.includes(until)) child.kill();
  });
  const timer = setTimeout(() => child.kill(), ms);
  const done = new Promise<{ out: string; code: number | null }>((resolve) => child.once("close", (code) => (clearTimeout(timer), resolve({ out, code }))));
  return { done, started };
}

describe(`GET /events with curl -N (${RUNTIME})`, () => {
  it("streams a ready event, then each decision as it is made", async () => {
    const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], denied_domains: ["evil.example"] }), { waitForAdmin: true });
    proxies.push(p);
    const s = streamUntil(`http://127.0.0.1:${p.adminPort}/events`, "evil.example", 10_000);
    await withDeadline(s.started, 5_000, "the ready event");
    expect((await curlHttp(["-x", `http://127.0.0.1:${p.port}`, `${origin.url}/allowed-path?q=secret`])).status).toBe(200);
    expect((await curlHttp(["-x", `http://127.0.0.1:${p.port}`, "http://evil.example/x"])).status).toBe(403);
    const { out } = await s.done;
    const events = out
      .split("\n\n")
      .filter((b) => b.startsWith("event: decision"))
      .map((b) => JSON.parse(b.slice(b.indexOf("data: ") + 6)));
    expect(events).toContainEqual(expect.objectContaining({ host: "127.0.0.1", port: origin.port, decision: "allow", reason: "allowed", method: "GET" }));
    expect(events).toContainEqual(expect.objectContaining({ host: "evil.example", decision: "deny", reason: "denied" }));
    expect(out).not.toContain("allowed-path");
    expect(out).not.toContain("secret");
  });

  it("with an admin token, the stream needs it", async () => {
    const token = "events-token-77";
    const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], admin_token: token }), { waitForAdmin: true });
    proxies.push(p);
    const refused = await curlHttp([`http://127.0.0.1:${p.adminPort}/events`]);
    expect(refused.status).toBe(401);
    const s = streamUntil(`http://127.0.0.1:${p.adminPort}/events`, "event: ready", 10_000, [`authorization: Bearer ${token}`]);
    const { out } = await s.done;
    expect(out).toContain("event: ready");
  });
});
