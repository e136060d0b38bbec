/**
 * The audit export worker: runs the OpenTelemetry SDK and the official OTLP exporter
 * (`otel-provider.ts`) in a thread of its own, so that building log records, serialising them
 * and posting them to the collector never take the proxy's thread. It receives decision records
 * in batches (`audit-batch.ts`) and emits each through the same audit sink as an in-thread
 * export (`core/audit/otel.ts`), so the records are the same.
 *
 * Messages, in order: the worker answers its start with `{ ready }` or `{ failed }` (the exporter
 * could not start), then takes `{ records }` batches, and answers `{ flush }` with `{ flushed }`
 * once the batch processor has sent what it held (or gave up, see `shutdownWithin`).
 *
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import { createAuditSink } from "../../core/audit/otel.ts";
import { createConnectionAuditSink, type ConnectionRecord } from "../../core/audit/connection.ts";
import { readRecords, type Slot } from "./audit-batch.ts";
import { createAuditProvider, type OtlpExporter, shutdownWithin } from "./otel-provider.ts";

/** What the worker is started with (`workerData`). */
export interface AuditWorkerStart {
  readonly exporter: OtlpExporter;
  readonly environment: string;
}

/** A message to the worker. */
export type ToAuditWorker = { readonly records: Slot[] } | { readonly connections: ConnectionRecord[] } | { readonly flush: true };

/** A message from the worker. */
export type FromAuditWorker =
  | { readonly ready: true }
  | { readonly failed: string }
  | { readonly flushed: Awaited<ReturnType<typeof shutdownWithin>> };

const port = parentPort;
if (port !== null) {
  const start = workerData as AuditWorkerStart;
  const say = (m: FromAuditWorker): void => port.postMessage(m);
  try {
    const provider = await createAuditProvider(start.exporter, start.environment);
    const sink = createAuditSink({ loggerProvider: provider });
    const connectionSink = createConnectionAuditSink({ loggerProvider: provider });
    port.on("message", (m: ToAuditWorker) => {
      if ("records" in m) {
        for (const r of readRecords(m.records)) sink(r);
      } else if ("connections" in m) {
        for (const r of m.connections) connectionSink(r);
      } else if ("flush" in m) {
        void shutdownWithin(provider).then((flushed) => say({ flushed }));
      }
    });
    say({ ready: true });
  } catch (e) {
    say({ failed: e instanceof Error ? e.message : String(e) });
  }
}
