/**
 * `GET /metrics` (issue 15 item 1, docs/behaviour.md §7.5) on node, bun and deno: the output of
 * the official Prometheus serializer passes `promtool check metrics` (Debian's `prometheus`
 * package, which `.ci/run` installs), and its counters move as requests are made: decisions by
 * protocol, decision and reason, bytes each way, the latency histograms, the open connection
 * and tunnel gauges. No host name is ever a label.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest } from "./helpers/admin.ts";
import { curlHttp, networkConfig, type Origin, type ProxyProcess, RawClient, RUNTIME, startEchoServer, startOrigin, startProxy, type TcpServer, withDeadline } from "./helpers/index.ts";

let origin: Origin;
let echo: TcpServer;
let proxy: ProxyProcess;

beforeAll(async () => {
  [origin, echo] = await Promise.all([startOrigin(), startEchoServer()]);
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], denied_domains: ["denied.invalid"] }), { waitForAdmin: true });
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.allSettled([origin?.close(), echo?.close()]);
});

async function metrics(): Promise<string> {
  const r = await adminRequest(proxy.adminPort!, "GET", "/metrics");
  expect(r.status).toBe(200);
  expect(r.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
  return r.text;
}

/** The value of the sample `name{labels…}` whose labels include every one of `labels`, or 0. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

/** Run `promtool check metrics` on `text`: exit code and what it said. */
function promtool(text: string): Promise<{ code: number | null; output: string }> {
  const child = spawn("promtool", ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr.on("data", (c: Buffer) => (output += c.toString()));
  child.stdin.end(text);
  return withDeadline(new Promise((resolve) => child.once("close", (code) => resolve({ code, output }))), 20_000, "promtool");
}

describe(`GET /metrics (${RUNTIME})`, () => {
  it("passes promtool check metrics, and its counters move as requests are made", async () => {
    const before = await metrics();
    const allowed = (t: string) => sample(t, "network_proxy_decisions_total", { protocol: "http", decision: "allow", reason: "allowed" });
    const denied = (t: string) => sample(t, "network_proxy_decisions_total", { protocol: "http", decision: "deny", reason: "denied" });
    for (let i = 0; i < 3; i++) expect((await curlHttp(["-x", `http://127.0.0.1:${proxy.port}`, `${origin.url}/m${i}`])).status).toBe(200);
    expect((await curlHttp(["-x", `http://127.0.0.1:${proxy.port}`, "http://denied.invalid/"])).status).toBe(403);
    // a tunnel, open while the gauges are read
    const tunnel = await RawClient.connect(proxy.port);
    try {
      await tunnel.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
      expect((await tunnel.readResponse({ connect: true })).status).toBe(200);
      // 100 KB up the open tunnel: counted while it is still open, in the client-to-origin direction
      const upBefore = sample(await metrics(), "network_proxy_bytes_total", { protocol: "http", direction: "to_origin" });
      await tunnel.write("x".repeat(100_000));
      await tunnel.readBytes(100_000, 10_000); // echoed back
      const during = await metrics();
      expect(sample(during, "network_proxy_open_tunnels")).toBe(1);
      expect(sample(during, "network_proxy_open_connections")).toBeGreaterThanOrEqual(1);
      expect(sample(during, "network_proxy_bytes_total", { protocol: "http", direction: "to_origin" }) - upBefore).toBeGreaterThanOrEqual(100_000);
    } finally {
      tunnel.destroy();
    }
    await new Promise((r) => setTimeout(r, 300)); // the sessions end, and count their bytes
    const after = await metrics();
    expect(allowed(after) - allowed(before)).toBe(3); // the GETs
    expect(sample(after, "network_proxy_decisions_total", { protocol: "https_connect", decision: "allow", reason: "allowed" })).toBe(1);
    expect(denied(after) - denied(before)).toBe(1);
    expect(sample(after, "network_proxy_decision_duration_count", { protocol: "http" })).toBeGreaterThanOrEqual(4);
    expect(sample(after, "network_proxy_decision_duration_count", { protocol: "https_connect" })).toBe(1);
    expect(sample(after, "network_proxy_connect_duration_count")).toBeGreaterThanOrEqual(1);
    // a 200 KB download: counted towards the client, not towards the origin
    const down = (t: string) => sample(t, "network_proxy_bytes_total", { protocol: "http", direction: "to_client" });
    const up = (t: string) => sample(t, "network_proxy_bytes_total", { protocol: "http", direction: "to_origin" });
    const [d0, u0] = [down(after), up(after)];
    expect((await curlHttp(["-x", `http://127.0.0.1:${proxy.port}`, `${origin.url}/bytes?n=200000`])).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    const later = await metrics();
    expect(down(later) - d0).toBeGreaterThanOrEqual(200_000);
    expect(up(later) - u0).toBeLessThan(10_000);
    expect(sample(after, "network_proxy_open_tunnels")).toBe(0);
    expect(after).not.toContain("denied.invalid"); // host names are never labels
    const checked = await promtool(later);
    expect(checked.code, checked.output).toBe(0);
  });
});
