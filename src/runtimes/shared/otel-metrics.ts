/**
 * OTLP export of the proxy's metrics (`[otel] metrics_exporter`, docs/behaviour.md §8.4): the
 * official OTLP metric exporter for the configured kind (otlp-http JSON or binary protobuf, or
 * otlp-grpc) behind the SDK's periodic reader, added to the metrics' provider before it starts.
 * `[analytics] enabled = false` has already turned it to `none`; `statsig` exports nothing.
 *
 * @module
 */
import type { PushMetricExporter } from "@opentelemetry/sdk-metrics";
import type { TelemetryConfig } from "../../core/config/telemetry.ts";
import { TARGET, type Logger } from "../../core/log.ts";
import type { ProxyMetrics } from "../../core/metrics/metrics.ts";
import { exporterLabel, type OtlpExporter } from "./otel-provider.ts";

/** How often metrics are exported, in ms (the last export happens at shutdown). */
export const METRICS_EXPORT_INTERVAL_MS = 10_000;

/**
 * Export `metrics` as `telemetry.metricsExporter` says. Call before the metrics start (the
 * proxy's listeners): the exporter itself is loaded with the SDK, once the listeners are up, so
 * it does not delay them. A failure to set it up is one warning; the proxy runs on without it.
 */
export async function startMetricsExport(telemetry: TelemetryConfig, metrics: ProxyMetrics, log: Logger): Promise<void> {
  const chosen = telemetry.metricsExporter;
  if (chosen.kind === "none") return;
  if (chosen.kind === "statsig") {
    log.log("debug", TARGET.main, `otel metrics_exporter "statsig" has no public endpoint outside the reference's vendor; metrics are not exported`);
    return;
  }
  metrics.addReader(async () => {
    try {
      const [exporter, { PeriodicExportingMetricReader }] = await Promise.all([createMetricExporter(chosen), import("@opentelemetry/sdk-metrics")]);
      log.log("info", TARGET.main, `metrics exported with ${exporterLabel(chosen)} every ${METRICS_EXPORT_INTERVAL_MS / 1000} s`);
      return new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: METRICS_EXPORT_INTERVAL_MS });
    } catch (e) {
      log.log("warn", TARGET.main, `otel metrics_exporter ${chosen.kind} could not start (${(e as Error).message}); metrics stay at GET /metrics only`);
      return undefined;
    }
  });
}

async function createMetricExporter(e: OtlpExporter): Promise<PushMetricExporter> {
  const options = { url: e.endpoint, headers: { ...e.headers } };
  if (e.kind === "otlp-grpc") {
    const [{ OTLPMetricExporter }, { Metadata }] = await Promise.all([import("@opentelemetry/exporter-metrics-otlp-grpc"), import("@grpc/grpc-js")]);
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(e.headers)) metadata.set(name, value); // gRPC carries headers as metadata
    return new OTLPMetricExporter({ url: e.endpoint, metadata });
  }
  if (e.protocol === "json") {
    const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-http");
    return new OTLPMetricExporter(options);
  }
  const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-proto");
  return new OTLPMetricExporter(options);
}
