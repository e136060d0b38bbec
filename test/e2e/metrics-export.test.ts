/**
 * `[otel] metrics_exporter` (issue 15 item 1, docs/behaviour.md §8.4) on node, bun and deno: the
 * proxy's metrics reach a loopback OTLP receiver (otlp-http, JSON) by the official exporter, the
 * last export at shutdown; with `[analytics] enabled = false` nothing is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlHttp, networkConfig, type Origin, RUNTIME, startOrigin, startProxy } from "./helpers/index.ts";
import { type OtlpReceiver, startOtlpReceiver } from "./helpers/otlp.ts";

let origin: Origin;
let receiver: OtlpReceiver;

beforeAll(async () => {
  [origin, receiver] = await Promise.all([startOrigin(), startOtlpReceiver()]);
});

afterAll(async () => {
  await Promise.allSettled([origin?.close(), receiver?.close()]);
});

const metricsPosts = () => receiver.posts.filter((p) => p.url.split("?")[0] === "/v1/metrics");

async function runWith(extra: string): Promise<void> {
  const text = networkConfig({ allowed_domains: ["127.0.0.1"] }) + `\n[otel]\nmetrics_exporter = { otlp-http = { endpoint = "http://127.0.0.1:${receiver.port}/v1/metrics", protocol = "json" } }\n${extra}`;
  const proxy = await startProxy(text);
  try {
    expect((await curlHttp(["-x", `http://127.0.0.1:${proxy.port}`, `${origin.url}/exported`])).status).toBe(200);
  } finally {
    expect(await proxy.stop()).toBe(0); // the last export happens at shutdown
  }
}

describe(`OTLP metrics export (${RUNTIME})`, () => {
  it("sends the decisions counter and the other instruments to the collector", async () => {
    const before = metricsPosts().length;
    await runWith("");
    const posts = metricsPosts().slice(before);
    expect(posts.length).toBeGreaterThan(0);
    const body = posts.map((p) => p.body.toString("utf8")).join("\n");
    expect(posts[0]!.contentType).toBe("application/json");
    for (const name of ["network_proxy.decisions", "network_proxy.open_connections", "network_proxy.decision.duration", "network_proxy.bytes"]) expect(body).toContain(`"${name}"`);
    expect(body).toContain(`"stringValue":"allowed"`);
    expect(body).toContain(`"stringValue":"codex-network-proxy"`); // service.name
  });

  it("[analytics] enabled = false sends nothing", async () => {
    const before = metricsPosts().length;
    await runWith("\n[analytics]\nenabled = false\n");
    expect(metricsPosts().length).toBe(before);
  });
});
