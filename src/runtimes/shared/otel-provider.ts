/**
 * The audit export pipeline itself: the queue of `audit-batcher.ts`, the OTLP request written
 * straight from the records (`core/audit/otlp/logs-request.ts`: the bytes the SDK's log records
 * and the official serialiser would give, at a fraction of the cost), and the official OTLP
 * transport chosen by `[otel].exporter` (otlp-http JSON or binary protobuf, or otlp-grpc): the
 * export delegate of `@opentelemetry/otlp-exporter-base` (or `otlp-grpc-exporter-base`), which
 * the official log exporters are thin wrappers of, with its retries, timeouts and headers. When
 * the caller gives the runtime's sockets, plain-HTTP OTLP/HTTP goes through the same delegate over
 * the core's HTTP/1.1 client on them (`otlp-conn-transport.ts`, see {@link postsOnOwnSockets}),
 * which costs the proxy's thread less than the official `node:http` transport. Built
 * in the export worker (`otel-worker.ts`), or in the main thread when no worker can run
 * (`otel-export.ts`). The transports are loaded only here, so a proxy that exports nothing never
 * loads them.
 *
 * @module
 */
import type { IExporterMetricsHelper, IExportLogsServiceResponse, ISerializer } from "@opentelemetry/otlp-transformer";
import type { IOtlpExportDelegate } from "@opentelemetry/otlp-exporter-base";
import { auditEventName, AUDIT_LOGGER_NAME, DECISION_FIELDS } from "../../core/audit/otel.ts";
import { CONNECTION_CLOSED_EVENT, CONNECTION_FIELDS, type ConnectionRecord, type ConnectionSink } from "../../core/audit/connection.ts";
import type { DecisionRecord, DecisionSink } from "../../core/audit/events.ts";
import { type AttributeField, isAttributeValue, jsonLogsWriter, type LogShape, type LogsRequestWriter, type LogsSource, protobufLogsWriter } from "../../core/audit/otlp/logs-request.ts";
import type { OtelExporter } from "../../core/config/telemetry.ts";
import type { Net } from "../../core/net/contract.ts";
import { VERSION } from "../../core/version.ts";
import {
  AUDIT_EXPORT_BATCH_RECORDS,
  AUDIT_EXPORT_TIMEOUT_MS,
  AUDIT_LOSS_REPORT_INTERVAL_MS,
  AUDIT_QUEUE_MAX_RECORDS,
  AuditBatcher,
  type BatcherCounts,
  type RecordStore,
} from "./audit-batcher.ts";

/** An exporter that sends somewhere (not `none`, not `statsig`). */
export type OtlpExporter = Exclude<OtelExporter, { kind: "none" } | { kind: "statsig" }>;

/** Longest shutdown waits for pending audit records to reach the collector. */
export const FLUSH_TIMEOUT_MS = 3_000;

/** How the log line names the exporter: `otlp-http (json)`, `otlp-grpc`. */
export function exporterLabel(e: OtlpExporter): string {
  return e.kind === "otlp-http" ? `${e.kind} (${e.protocol})` : e.kind;
}

/** A record the pipeline exports: a decision or an ended connection. */
export type AuditItem = DecisionRecord | ConnectionRecord;

/** The running pipeline. */
export interface AuditPipeline {
  readonly sink: DecisionSink;
  readonly connectionSink: ConnectionSink;
  /** What became of the records so far. */
  stats(): BatcherCounts;
  /** Send what waits, then stop the transport (and say what was lost, if anything was). */
  shutdown(): Promise<void>;
}

/** `ExportResultCode.SUCCESS` of `@opentelemetry/core`: the delegate's result for a batch that arrived. */
const EXPORT_SUCCESS = 0;

/**
 * The pipeline for `exporter`. Throws when the exporter cannot start (e.g. a bad endpoint).
 * With `net`, a plain-HTTP OTLP/HTTP export posts on those sockets ({@link postsOnOwnSockets}).
 */
export async function createAuditPipeline(exporter: OtlpExporter, environment: string, warn: (message: string) => void, net?: Net): Promise<AuditPipeline> {
  const source: LogsSource = {
    resource: { "service.name": "codex-network-proxy", "service.version": VERSION, "deployment.environment": environment },
    scope: AUDIT_LOGGER_NAME,
  };
  // a record that cannot be encoded (a value that is not a string, number or boolean, or a
  // time that is not one) is left out when it comes: counted as left out, and named in a
  // warning at most once per loss interval
  let lastSkipReport = -Infinity;
  const skipped = (item: AuditItem, e: Error): void => {
    if (performance.now() - lastSkipReport < AUDIT_LOSS_REPORT_INTERVAL_MS) return;
    lastSkipReport = performance.now();
    warn(`an audit record was left out of the export: ${unencodable(item) ?? e.message}`);
  };
  const json = exporter.kind === "otlp-http" && exporter.protocol === "json";
  const newWriter = json ? () => jsonLogsWriter(source, AUDIT_SHAPE) : () => protobufLogsWriter(source, AUDIT_SHAPE);
  const delegate = await createDelegate(exporter, net);
  const batcher = new AuditBatcher<AuditItem, EncodedBatch>(
    (batch, done) => delegate.export(batch, (result) => done(result.code === EXPORT_SUCCESS)),
    (counts) => warn(lossText(counts)),
    new EncodedStore(newWriter, AUDIT_EXPORT_BATCH_RECORDS, skipped),
  );
  return {
    sink: (r) => batcher.push(r),
    connectionSink: (r) => batcher.push(r),
    stats: () => batcher.stats(),
    async shutdown() {
      await batcher.flush();
      batcher.close();
      await delegate.shutdown();
      const counts = batcher.stats();
      if (counts.dropped + counts.failed + counts.skipped > 0) warn(lossText(counts));
    },
  };
}

/** What a report of lost records says. */
export function lossText(counts: BatcherCounts): string {
  return (
    `audit records lost so far: ${counts.dropped} dropped (more than ${AUDIT_QUEUE_MAX_RECORDS} waiting: the collector is slower than the decisions), ` +
    `${counts.failed} in batches the collector did not take or did not answer within ${AUDIT_EXPORT_TIMEOUT_MS / 1000} s, ` +
    `${counts.skipped} left out (a value no encoder takes); ${counts.sent} delivered`
  );
}

/** How the encoder reads an item: a decision or a connection record. */
export const AUDIT_SHAPE: LogShape<AuditItem> = {
  timeMs: (item) => item.timestamp,
  eventName: (item) => ("scope" in item ? auditEventName(item) : CONNECTION_CLOSED_EVENT),
  fields: (item) => ("scope" in item ? DECISION_FIELDS : CONNECTION_FIELDS) as readonly AttributeField<AuditItem>[],
};

/** Why `item` cannot be encoded (an attribute value that is not a string, number or boolean), or `undefined`. */
export function unencodable(item: AuditItem): string | undefined {
  for (const [key, read] of AUDIT_SHAPE.fields(item)) {
    const value = read(item) as unknown;
    if (!isAttributeValue(value)) return `${AUDIT_SHAPE.eventName(item)}: attribute ${JSON.stringify(key)} is ${value === null ? "null" : typeof value}`;
  }
  return undefined;
}

/** A batch as the transport gets it: the OTLP request its records were encoded into, and how many they are. */
export interface EncodedBatch {
  readonly bytes: Uint8Array;
  readonly count: number;
}

/** Full batches' writers kept for reuse (their buffers are sized for a batch already). */
const SPARE_WRITERS = 2;

/**
 * The batcher's store for the export: each record is encoded into the OTLP request of the batch
 * it will go in as it comes (a {@link LogsRequestWriter} per batch), so a batch waiting holds its
 * bytes rather than its records. On Bun, keeping 512 records until their batch was encoded cost
 * the proxy's thread about 2 µs a record more than encoding each at once (BENCHMARKS.md, profile
 * note 15). A batch is full at `batchRecords` records; its request is put together (header and
 * one copy of the records' bytes) only when the batcher takes it, on its timer's turn, never in
 * the request whose record filled it. A record that cannot be encoded (a value no encoder
 * takes, or any other failure of the encoder) is left out and reported: taking a record never
 * throws.
 */
export class EncodedStore<T> implements RecordStore<T, EncodedBatch> {
  private open: LogsRequestWriter<T>;
  private readonly full: LogsRequestWriter<T>[] = [];
  private fullRecords = 0;
  private readonly spare: LogsRequestWriter<T>[] = [];

  constructor(
    private readonly newWriter: () => LogsRequestWriter<T>,
    private readonly batchRecords: number,
    private readonly onSkipped: (record: T, e: Error) => void,
  ) {
    this.open = newWriter();
  }

  get size(): number {
    return this.fullRecords + this.open.count;
  }

  add(record: T): boolean {
    try {
      this.open.add(record);
    } catch (e) {
      this.onSkipped(record, e instanceof Error ? e : new Error(String(e)));
      return false;
    }
    if (this.open.count >= this.batchRecords) {
      this.full.push(this.open);
      this.fullRecords += this.open.count;
      this.open = this.spare.pop() ?? this.newWriter();
    }
    return true;
  }

  take(): { batch: EncodedBatch; count: number } {
    const writer = this.full.shift() ?? this.open;
    const count = writer.count;
    if (count === 0) throw new Error("no audit record waits: there is no batch to take");
    const batch = { bytes: writer.take(), count };
    if (writer !== this.open) {
      this.fullRecords -= count;
      if (this.spare.length < SPARE_WRITERS) this.spare.push(writer);
    }
    return { batch, count };
  }
}

/** The serialiser the official transport calls with each batch: its request is already written. */
function serializer(official: ISerializer<never, IExportLogsServiceResponse>): ISerializer<EncodedBatch, IExportLogsServiceResponse> {
  return {
    serializeRequest: (batch) => batch.bytes,
    deserializeResponse: (data) => official.deserializeResponse(data),
  };
}

/**
 * Flush what `pipeline` holds and stop it, but never let a dead collector hold the exit for the
 * transport's whole retry budget: resolves `"flushed"`, `"timeout"` after
 * {@link FLUSH_TIMEOUT_MS}, or the failure's message.
 */
export async function shutdownWithin(pipeline: { shutdown(): Promise<void> }, ms = FLUSH_TIMEOUT_MS): Promise<"flushed" | "timeout" | { failed: string }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => {
    timer = setTimeout(() => r("timeout"), ms);
  });
  try {
    return await Promise.race([
      pipeline.shutdown().then(
        () => "flushed" as const,
        (e: Error) => ({ failed: e.message }),
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** How the transport's own metrics (off: no meter provider is given) count a batch: its records. */
const COUNT_LOGS: IExporterMetricsHelper<EncodedBatch> = { name: "log", countItems: (batch) => batch.count };

async function createDelegate(e: OtlpExporter, net: Net | undefined): Promise<IOtlpExportDelegate<EncodedBatch>> {
  const { JsonLogsSerializer, ProtobufLogsSerializer } = await import("@opentelemetry/otlp-transformer");
  const binary = serializer(ProtobufLogsSerializer);
  if (e.kind === "otlp-grpc") {
    const [{ convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate }, { Metadata }] = await Promise.all([
      import("@opentelemetry/otlp-grpc-exporter-base"),
      import("@grpc/grpc-js"),
    ]);
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(e.headers)) metadata.set(name, value); // gRPC carries headers as metadata
    return createOtlpGrpcExportDelegate(
      convertLegacyOtlpGrpcOptions({ url: e.endpoint, metadata }, "LOGS"),
      binary,
      "otlp_grpc_log_exporter",
      COUNT_LOGS,
      undefined,
      "LogsExportService",
      "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    );
  }
  const { convertLegacyHttpOptions, createOtlpHttpExportDelegate, createOtlpHttpExporterMetrics } = await import("@opentelemetry/otlp-exporter-base/node-http");
  const json = e.protocol === "json";
  const options = convertLegacyHttpOptions({ url: e.endpoint, headers: { ...e.headers } }, "LOGS", "v1/logs", {
    "Content-Type": json ? "application/json" : "application/x-protobuf",
  });
  const chosen = json ? serializer(JsonLogsSerializer) : binary;
  if (!postsOnOwnSockets(options.url, options.compression, net)) return createOtlpHttpExportDelegate(options, chosen, "otlp_http_log_exporter", COUNT_LOGS, undefined);
  const [{ createOtlpNetworkExportDelegate }, { connTransport }] = await Promise.all([import("@opentelemetry/otlp-exporter-base"), import("./otlp-conn-transport.ts")]);
  const transport = connTransport({ url: options.url, headers: options.headers, userAgent: `codex-network-proxy/${VERSION}`, net });
  const metrics = createOtlpHttpExporterMetrics("otlp_http_log_exporter", COUNT_LOGS, options.url, undefined);
  return createOtlpNetworkExportDelegate(options, chosen, metrics, transport);
}

/**
 * Whether OTLP/HTTP batches go out on the runtime's own sockets (`otlp-conn-transport.ts`)
 * rather than through the official `node:http` transport: when the caller gives them (`net`),
 * the endpoint is plain `http`, and `compression` (from the OpenTelemetry variables) is `none`.
 * In place, a batch through `node:http` costs the proxy's thread about 1 ms on Deno and Bun,
 * and about 0.5 ms on Node (BENCHMARKS.md, profile notes 18 and 19); an `https` endpoint (with
 * the OpenTelemetry TLS variables it reads) and gzip are left to the official transport.
 */
function postsOnOwnSockets(url: string, compression: string, net: Net | undefined): net is Net {
  return net !== undefined && url.startsWith("http:") && compression === "none";
}
