/**
 * The standalone export pipeline: an exporter that cannot start costs exactly one warning and
 * no provider; statsig is one info line; a working exporter yields a provider that is never
 * installed globally.
 */
import { logs } from "@opentelemetry/api-logs";
import { describe, expect, it } from "vitest";
import type { OtelExporter } from "../../src/core/config/telemetry.ts";
import { createLineLogger } from "../../src/core/log.ts";
import { startAuditExport } from "../../src/runtimes/shared/otel-export.ts";

function telemetry(exporter: OtelExporter) {
  return { environment: "test", exporter, traceExporter: exporter, metricsExporter: { kind: "none" } as const };
}

async function start(exporter: OtelExporter) {
  const lines: string[] = [];
  const handle = await startAuditExport(telemetry(exporter), createLineLogger((l) => lines.push(l), "info"));
  return { handle, lines };
}

describe("startAuditExport", () => {
  it("an exporter that cannot start: one warning, no provider, the proxy goes on", async () => {
    const { handle, lines } = await start({ kind: "otlp-http", endpoint: "http://127.0.0.1:99999/v1/logs", protocol: "json", headers: {} });
    expect(handle.provider).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARN .*otel exporter otlp-http could not start .*continuing with stderr logging only/);
    await handle.shutdown();
  });

  it("statsig: one info line, nothing exported", async () => {
    const { handle, lines } = await start({ kind: "statsig" });
    expect(handle.provider).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/INFO .*statsig/);
  });

  it("none: silent, nothing exported", async () => {
    const { handle, lines } = await start({ kind: "none" });
    expect(handle.provider).toBeUndefined();
    expect(lines).toEqual([]);
  });

  it.each<OtelExporter>([
    { kind: "otlp-http", endpoint: "http://127.0.0.1:4318/v1/logs", protocol: "json", headers: {} },
    { kind: "otlp-http", endpoint: "http://127.0.0.1:4318/v1/logs", protocol: "binary", headers: { "x-key": "v" } },
    { kind: "otlp-grpc", endpoint: "http://127.0.0.1:4317", headers: { "x-key": "v" } },
  ])("$kind $protocol: a provider of its own, the global one untouched", async (exporter) => {
    const globalBefore = logs.getLoggerProvider();
    const { handle, lines } = await start(exporter);
    expect(handle.provider).toBeDefined();
    expect(logs.getLoggerProvider()).toBe(globalBefore);
    expect(lines.join("\n")).not.toContain("x-key");
    await handle.shutdown();
  });
});
