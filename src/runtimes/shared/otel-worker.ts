/**
 * The audit export worker: runs the export pipeline (`otel-provider.ts`) in a thread of its own,
 * so that encoding the records and posting them to the collector never take the proxy's thread.
 * It receives decision records in batches (`audit-batch.ts`) and hands each to the same pipeline
 * an in-thread export uses, so the records are the same.
 *
 * Messages, in order: the worker answers its start with `{ ready }` or `{ failed }` (the exporter
 * could not start), then takes `{ records }` batches, and answers `{ flush }` with `{ flushed }`
 * once the pipeline has sent what it held (or gave up, see `shutdownWithin`). A `{ warn }` message
 * is a line for the proxy's log (records lost).
 *
 * @module
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ConnectionRecord } from "../../core/audit/connection.ts";
import { readRecords, type Slot } from "./audit-batch.ts";
import { createAuditPipeline, type OtlpExporter, shutdownWithin } from "./otel-provider.ts";

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
  | { readonly warn: string }
  | { readonly flushed: Awaited<ReturnType<typeof shutdownWithin>>; readonly pending: number };

const port = parentPort;
if (port !== null) {
  const start = workerData as AuditWorkerStart;
  const say = (m: FromAuditWorker): void => port.postMessage(m);
  try {
    const pipeline = await createAuditPipeline(start.exporter, start.environment, (warn) => say({ warn }));
    const { sink, connectionSink } = pipeline;
    port.on("message", (m: ToAuditWorker) => {
      if ("records" in m) {
        for (const r of readRecords(m.records)) sink(r);
      } else if ("connections" in m) {
        for (const r of m.connections) connectionSink(r);
      } else if ("flush" in m) {
        void shutdownWithin(pipeline).then((flushed) => say({ flushed, pending: pipeline.stats().pending }));
      }
    });
    say({ ready: true });
  } catch (e) {
    say({ failed: e instanceof Error ? e.message : String(e) });
  }
}
