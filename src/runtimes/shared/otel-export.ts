/**
 * Standalone audit export: a `LoggerProvider` with a batch processor and the official OTLP log
 * exporter chosen by `[otel].exporter` (otlp-http JSON or binary protobuf, or otlp-grpc). It is
 * handed to the audit sink, never installed globally. An exporter that cannot start costs one
 * warning; the proxy runs on with stderr logging. Pending records are flushed on shutdown. The
 * SDK and the exporters are loaded only when an exporter is configured, so a proxy that exports
 * nothing does not pay their load time at startup.
 *
 * @module
 */
import type { LoggerProvider, LogRecordExporter } from "@opentelemetry/sdk-logs";
import type { OtelExporter, TelemetryConfig } from "../../core/config/telemetry.ts";
import { TARGET, type Logger } from "../../core/log.ts";
import { VERSION } from "../../core/version.ts";

/** A running export pipeline. */
export interface AuditExport {
  /** Where audit events go; `undefined` when nothing is exported. */
  readonly provider?: LoggerProvider;
  /** Flush pending records and stop. */
  shutdown(): Promise<void>;
}

const NOTHING: AuditExport = { shutdown: async () => {} };

/** Longest shutdown waits for pending audit records to reach the collector. */
export const FLUSH_TIMEOUT_MS = 3_000;

/** Start exporting audit events as `telemetry` says. Never throws. */
export async function startAuditExport(telemetry: TelemetryConfig, log: Logger): Promise<AuditExport> {
  const chosen = telemetry.exporter;
  if (chosen.kind === "none") return NOTHING;
  if (chosen.kind === "statsig") {
    log.log("info", TARGET.main, `otel exporter "statsig" has no public endpoint outside the reference's vendor; audit events are not exported`);
    return NOTHING;
  }
  try {
    const [exporter, { resourceFromAttributes }, { BatchLogRecordProcessor, LoggerProvider }] = await Promise.all([
      createExporter(chosen),
      import("@opentelemetry/resources"),
      import("@opentelemetry/sdk-logs"),
    ]);
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({
        "service.name": "codex-network-proxy",
        "service.version": VERSION,
        "deployment.environment": telemetry.environment,
      }),
      processors: [new BatchLogRecordProcessor({ exporter })],
    });
    log.log("info", TARGET.main, `audit events exported with ${chosen.kind}${chosen.kind === "otlp-http" ? ` (${chosen.protocol})` : ""}`);
    return {
      provider,
      async shutdown() {
        // Flush what the batch processor still holds, but never let a dead collector hold the
        // exit for the exporter's whole retry budget.
        const flushed = provider.shutdown().then(
          () => true,
          (e: Error) => (log.log("warn", TARGET.main, `flushing audit events failed: ${e.message}`), true),
        );
        const timedOut = new Promise<boolean>((r) => setTimeout(() => r(false), FLUSH_TIMEOUT_MS).unref?.());
        if (!(await Promise.race([flushed, timedOut]))) {
          log.log("warn", TARGET.main, `audit events not flushed within ${FLUSH_TIMEOUT_MS} ms (collector unreachable?); some may be lost`);
        }
      },
    };
  } catch (e) {
    log.log("warn", TARGET.main, `otel exporter ${chosen.kind} could not start (${(e as Error).message}); continuing with stderr logging only`);
    return NOTHING;
  }
}

async function createExporter(e: Exclude<OtelExporter, { kind: "none" } | { kind: "statsig" }>): Promise<LogRecordExporter> {
  const options = { url: e.endpoint, headers: { ...e.headers } };
  if (e.kind === "otlp-grpc") {
    const [{ OTLPLogExporter }, { Metadata }] = await Promise.all([import("@opentelemetry/exporter-logs-otlp-grpc"), import("@grpc/grpc-js")]);
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(e.headers)) metadata.set(name, value); // gRPC carries headers as metadata
    return new OTLPLogExporter({ url: e.endpoint, metadata });
  }
  if (e.protocol === "json") {
    const { OTLPLogExporter } = await import("@opentelemetry/exporter-logs-otlp-http");
    return new OTLPLogExporter(options);
  }
  const { OTLPLogExporter } = await import("@opentelemetry/exporter-logs-otlp-proto");
  return new OTLPLogExporter(options);
}
