/**
 * The metrics (src/core/metrics/metrics.ts, docs/behaviour.md §7.5): events made before the SDK
 * loads are kept and counted once it is there; a decider's own reasons never become labels;
 * bytes are the ended connections' plus the live ones', observed when collected; a shutdown
 * before anything loaded does nothing. In process, through the Prometheus text.
 */
import { describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { ProxyMetrics } from "../../src/core/metrics/metrics.ts";

function record(over: Partial<DecisionRecord>): DecisionRecord {
  return { timestamp: 0, scope: "domain_rule", decision: "deny", source: "baseline_policy", reason: "denied", override: false, protocol: "http", host: "a.example", port: 80, mode: "full", ...over };
}

const line = (text: string, prefix: string) => text.split("\n").find((l) => l.startsWith(prefix));

describe("ProxyMetrics", () => {
  it("keeps what happens before the SDK loads, and never labels a host or a decider's own reason", async () => {
    const m = new ProxyMetrics();
    m.decision(record({}));
    m.decision(record({ source: "decider", reason: "my-policy-said-no secret.example" }));
    m.latency("decision", 1.5, "http");
    const text = await m.prometheusText();
    expect(line(text, 'network_proxy_decisions_total{protocol="http",decision="deny",reason="denied"')).toMatch(/ 1$/);
    expect(line(text, 'network_proxy_decisions_total{protocol="http",decision="deny",reason="decider"')).toMatch(/ 1$/);
    expect(text).not.toContain("a.example");
    expect(text).not.toContain("secret.example");
    expect(line(text, "network_proxy_decision_duration_count")).toMatch(/ 1$/);
  });

  it("bytes: ended connections plus the open ones, by protocol and direction", async () => {
    const m = new ProxyMetrics();
    m.bytes("http", "to_origin", 100);
    m.bytes("http", "to_client", 1000);
    m.bytes("socks5", "to_client", 7);
    let live = 50;
    m.observeLiveBytes(() => new Map([["http", { toOrigin: live, toClient: 0 }]]));
    let text = await m.prometheusText();
    expect(line(text, 'network_proxy_bytes_total{protocol="http",direction="to_origin"')).toMatch(/ 150$/);
    expect(line(text, 'network_proxy_bytes_total{protocol="http",direction="to_client"')).toMatch(/ 1000$/);
    expect(line(text, 'network_proxy_bytes_total{protocol="socks5",direction="to_client"')).toMatch(/ 7$/);
    live = 80;
    text = await m.prometheusText();
    expect(line(text, 'network_proxy_bytes_total{protocol="http",direction="to_origin"')).toMatch(/ 180$/);
  });

  it("a shutdown before the SDK loaded, and a reader that cannot be made, end quietly", async () => {
    await new ProxyMetrics().shutdown();
    const m = new ProxyMetrics();
    m.addReader(async () => undefined);
    await m.start();
    await m.shutdown();
  });
});
