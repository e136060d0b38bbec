/**
 * The audit export pipeline itself: a `LoggerProvider` with the SDK's batch processor and the
 * official OTLP log exporter chosen by `[otel].exporter` (otlp-http JSON or binary protobuf, or
 * otlp-grpc). Built in the export worker (`otel-worker.ts`), or in the main thread when no worker
 * can run (`otel-export.ts`). The SDK and the exporters are loaded only here, so a proxy that
 * exports nothing never loads them.
 *
 * @module
 */
import type { LoggerProvider, LogRecordExporter } from "@opentelemetry/sdk-logs";
import type { OtelExporter } from "../../core/config/telemetry.ts";
import { VERSION } from "../../core/version.ts";

/** An exporter that sends somewhere (not `none`, not `statsig`). */
export type OtlpExporter = Exclude<OtelExporter, { kind: "none" } | { kind: "statsig" }>;

/** Longest shutdown waits for pending audit records to reach the collector. */
export const FLUSH_TIMEOUT_MS = 3_000;

/** How the log line names the exporter: `otlp-http (json)`, `otlp-grpc`. */
export function exporterLabel(e: OtlpExporter): string {
  return e.kind === "otlp-http" ? `${e.kind} (${e.protocol})` : e.kind;
}

/** The provider for `exporter`. Throws when the exporter cannot start (e.g. a bad endpoint). */
export async function createAuditProvider(exporter: OtlpExporter, environment: string): Promise<LoggerProvider> {
  const [made, { resourceFromAttributes }, { BatchLogRecordProcessor, LoggerProvider }] = await Promise.all([
    createExporter(exporter),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-logs"),
  ]);
  return new LoggerProvider({
    resource: resourceFromAttributes({
      "service.name": "codex-network-proxy",
      "service.version": VERSION,
      "deployment.environment": environment,
    }),
    processors: [new BatchLogRecordProcessor({ exporter: made })],
  });
}

/**
 * Flush what `provider`'s batch processor holds and stop it, but never let a dead collector hold
 * the exit for the exporter's whole retry budget: resolves `"flushed"`, `"timeout"` after
 * {@link FLUSH_TIMEOUT_MS}, or the failure's message.
 */
export async function shutdownWithin(provider: LoggerProvider, ms = FLUSH_TIMEOUT_MS): Promise<"flushed" | "timeout" | { failed: string }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), ms);
  });
  try {
    return await Promise.race([
      provider.shutdown().then(
        () => "flushed" as const,
        (e: Error) => ({ failed: e.message }),
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function createExporter(e: OtlpExporter): Promise<LogRecordExporter> {
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
