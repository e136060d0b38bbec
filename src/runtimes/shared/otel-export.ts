/**
 * Standalone audit export, chosen by `[otel].exporter`: every decision record goes to the OTLP
 * pipeline of `otel-provider.ts` (the queue of `audit-batcher.ts`, the OTLP request written
 * straight from the records, the official transport), never to the global provider.
 *
 * On a machine with cores to spare ({@link workerByDefault}) the pipeline runs in a worker thread
 * (`otel-worker.ts`): the proxy's thread only appends each record's fields to a batch
 * (`audit-batch.ts`) and posts the batch every {@link AUDIT_BATCH_RECORDS} records or
 * {@link AUDIT_BATCH_DELAY_MS}. In the main thread, encoding and sending cost the proxy's thread
 * about 1–3 µs per request (BENCHMARKS.md, figure 10). When no worker
 * can start (a runtime or a single-file binary that cannot load the worker's module), the same
 * pipeline runs in the main thread; if the worker stops later, the export moves to the main
 * thread with one warning.
 *
 * An exporter that cannot start costs one warning; the proxy runs on with stderr logging.
 * Pending records are flushed on shutdown, within {@link FLUSH_TIMEOUT_MS}.
 *
 * @module
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { ConnectionSink } from "../../core/audit/connection.ts";
import type { DecisionRecord, DecisionSink } from "../../core/audit/events.ts";
import type { TelemetryConfig } from "../../core/config/telemetry.ts";
import type { AuditExport } from "../../core/runtime.ts";
import type { Net } from "../../core/net/contract.ts";
import { TARGET, type Logger } from "../../core/log.ts";
import { appendRecord, readRecords, RECORD_SLOTS, type Slot } from "./audit-batch.ts";
import { createAuditPipeline, exporterLabel, FLUSH_TIMEOUT_MS, type OtlpExporter, shutdownWithin } from "./otel-provider.ts";
import type { AuditWorkerStart, FromAuditWorker, ToAuditWorker } from "./otel-worker.ts";

export { FLUSH_TIMEOUT_MS } from "./otel-provider.ts";


/** Options of {@link startAuditExport}. */
export interface AuditExportOptions {
  /**
   * Run the pipeline in a worker thread (`true`) or in the main thread (`false`). Default: as
   * {@link AUDIT_THREAD_ENV} says, else {@link workerByDefault}.
   */
  readonly worker?: boolean;
  /** The worker's module (default: `otel-worker` next to this module). */
  readonly workerUrl?: URL;
  /**
   * The runtime's sockets (the standalone entry gives them): an export in the main thread posts
   * plain-HTTP OTLP/HTTP on them (`otlp-conn-transport.ts`). Without them, and in a worker, the
   * official transport posts.
   */
  readonly net?: Net;
}

const NOTHING: AuditExport = { shutdown: async () => {} };

/** Records per batch posted to the worker. */
export const AUDIT_BATCH_RECORDS = 256;

/** Longest a record waits in a batch before the batch is posted anyway. */
export const AUDIT_BATCH_DELAY_MS = 50;

/** How long the worker may take to load the transport and start the exporter. */
export const AUDIT_WORKER_START_TIMEOUT_MS = 10_000;

/**
 * Records kept while the export moves to the main thread after the worker stopped (the queue's
 * own bound, `AUDIT_QUEUE_MAX_RECORDS`); more are dropped and counted.
 */
export const AUDIT_HANDOVER_MAX_RECORDS = 2_048;

/**
 * Fewest CPUs (`availableParallelism()`) with which the export runs in a worker by default. The
 * worker takes the export's cost off the proxy's thread (it then spends about what it spends
 * without export), but it takes about as much CPU in all, and on a machine whose every core is
 * busy (the two-core benchmark machine, with the load generator and the origin on it) the extra
 * thread cost 5–10 % of the throughput that in-thread export kept (BENCHMARKS.md, figure 10c).
 * With more cores, the worker's CPU is otherwise idle.
 */
export const AUDIT_WORKER_MIN_CPUS = 3;

/** Whether the export runs in a worker unless told otherwise: with {@link AUDIT_WORKER_MIN_CPUS} or more. */
export function workerByDefault(cpus: number = availableParallelism()): boolean {
  return cpus >= AUDIT_WORKER_MIN_CPUS;
}

/** Environment variable that overrides {@link workerByDefault}: `worker` or `main`. */
export const AUDIT_THREAD_ENV = "CODEX_NETWORK_PROXY_AUDIT_THREAD";

/**
 * The thread {@link AUDIT_THREAD_ENV} asks for: `true` for `worker`, `false` for `main`,
 * `undefined` when unset or empty. Any other value is warned about, naming it, and ignored.
 */
export function auditThreadFromEnv(value: string | undefined, log: Logger): boolean | undefined {
  if (value === undefined || value === "") return undefined;
  if (value === "worker") return true;
  if (value === "main") return false;
  log.log("warn", TARGET.config, `${AUDIT_THREAD_ENV}=${JSON.stringify(value)} is neither "worker" nor "main"; ignored`);
  return undefined;
}

/** Start exporting audit events as `telemetry` says. Never throws. */
export async function startAuditExport(telemetry: TelemetryConfig, log: Logger, options: AuditExportOptions = {}): Promise<AuditExport> {
  const chosen = telemetry.exporter;
  if (chosen.kind === "none") return NOTHING;
  if (chosen.kind === "statsig") {
    log.log("info", TARGET.main, `otel exporter "statsig" has no public endpoint outside the reference's vendor; audit events are not exported`);
    return NOTHING;
  }
  const couldNotStart = (why: string): AuditExport => {
    log.log("warn", TARGET.main, `otel exporter ${chosen.kind} could not start (${why}); continuing with stderr logging only`);
    return NOTHING;
  };
  if (options.worker ?? auditThreadFromEnv(process.env[AUDIT_THREAD_ENV], log) ?? workerByDefault()) {
    const started = await startWorker({ exporter: chosen, environment: telemetry.environment }, options);
    if ("failed" in started) return couldNotStart(started.failed);
    if ("worker" in started) {
      log.log("info", TARGET.main, `audit events exported with ${exporterLabel(chosen)} from a worker thread`);
      return new WorkerExport(started.worker, chosen, telemetry.environment, log, options.net);
    }
    log.log("debug", TARGET.main, `audit export worker unavailable (${started.unavailable}); exporting from the main thread`);
  }
  try {
    const exported = await mainThreadExport(chosen, telemetry.environment, log, options.net);
    log.log("info", TARGET.main, `audit events exported with ${exporterLabel(chosen)}`);
    return exported;
  } catch (e) {
    return couldNotStart((e as Error).message);
  }
}

/** The pipeline in the main thread. Throws when the exporter cannot start. */
async function mainThreadExport(exporter: OtlpExporter, environment: string, log: Logger, net: Net | undefined): Promise<AuditExport> {
  const pipeline = await createAuditPipeline(exporter, environment, (message) => log.log("warn", TARGET.main, message), net);
  return {
    sink: pipeline.sink,
    connectionSink: pipeline.connectionSink,
    where: "main thread",
    async shutdown() {
      reportFlush(await shutdownWithin(pipeline), log, pipeline.stats().pending);
    },
  };
}

/** What a flush came to: the pipeline's own outcome, or, in a worker, no answer or its end. */
type FlushOutcome = Awaited<ReturnType<typeof shutdownWithin>> | "no answer" | { readonly workerStopped: string };

/**
 * Beyond {@link FLUSH_TIMEOUT_MS}, how long shutdown waits for the worker's answer (the worker
 * gives up flushing after FLUSH_TIMEOUT_MS itself; this covers a worker too busy to answer).
 */
export const AUDIT_WORKER_ANSWER_MARGIN_MS = 1_000;

/** Log what a flush came to (nothing when it worked); `pending`: records still waiting or being sent, when known. */
function reportFlush(outcome: FlushOutcome, log: Logger, pending?: number): void {
  if (outcome === "flushed") return;
  if (outcome === "timeout" || outcome === "no answer") {
    const lost = pending === undefined ? "some may be lost" : `${pending} still waiting or being sent are lost`;
    log.log("warn", TARGET.main, `audit events not flushed within ${FLUSH_TIMEOUT_MS} ms (collector unreachable?); ${lost}`);
  } else if ("workerStopped" in outcome) {
    log.log("warn", TARGET.main, `audit export worker stopped while flushing (${outcome.workerStopped}); the records it held are lost`);
  } else {
    log.log("warn", TARGET.main, `flushing audit events failed: ${outcome.failed}`);
  }
}

/**
 * The worker's module next to this one: `.ts` when run from source, `.js` when built. In the
 * single-file binary (`npm run build:binary`: `bun build --compile` with `main.ts` and the worker
 * as its two entry points), `import.meta.url` is the binary itself, at the root of Bun's embedded
 * file system, and the worker sits under the entry points' common directory (`src/runtimes/`).
 */
function workerUrl(): URL {
  if (import.meta.url.startsWith("file:///$bunfs/")) return new URL("./shared/otel-worker.js", import.meta.url);
  return new URL(`./otel-worker.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);
}

/**
 * A worker running the module at `url`. Bun and Deno load TypeScript in workers themselves; Node
 * 20 does not apply the main thread's `--import tsx` to workers, so from source (`npm run dev`,
 * the tests) the worker first registers tsx, the development dependency, itself. The built
 * package runs JavaScript and needs none of it.
 */
function newWorker(url: URL, workerData: AuditWorkerStart): Worker {
  const versions = process.versions as Record<string, string | undefined>;
  const plainNode = versions.bun === undefined && versions.deno === undefined;
  if (!plainNode || !url.pathname.endsWith(".ts")) return new Worker(url, { workerData });
  const tsx = import.meta.resolve("tsx/esm/api"); // throws when tsx is not installed
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

/** Start the worker and wait for its first answer. */
async function startWorker(start: AuditWorkerStart, options: AuditExportOptions): Promise<{ worker: Worker } | { failed: string } | { unavailable: string }> {
  let worker: Worker;
  try {
    worker = newWorker(options.workerUrl ?? workerUrl(), start);
  } catch (e) {
    return { unavailable: (e as Error).message };
  }
  const answer = await new Promise<FromAuditWorker | { unavailable: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ unavailable: `no answer within ${AUDIT_WORKER_START_TIMEOUT_MS} ms` }), AUDIT_WORKER_START_TIMEOUT_MS);
    const done = (a: FromAuditWorker | { unavailable: string }): void => {
      clearTimeout(timer);
      worker.off("message", done);
      worker.off("error", failed);
      worker.off("exit", exited);
      resolve(a);
    };
    const failed = (e: Error): void => done({ unavailable: e.message });
    const exited = (code: number): void => done({ unavailable: `the worker exited with code ${code}` });
    worker.on("message", done);
    worker.on("error", failed);
    worker.on("exit", exited);
  });
  if ("ready" in answer) return { worker };
  void worker.terminate();
  if ("failed" in answer) return { failed: answer.failed };
  if ("unavailable" in answer) return answer;
  return { unavailable: "an unexpected first message" };
}

/** The export through a running worker, moving to the main thread if the worker stops. */
class WorkerExport implements AuditExport {
  readonly where = "worker" as const;
  private batch: Slot[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Set once the worker stopped: the main-thread export being started (`ready`), then its sink,
   * and the records waiting for it meanwhile.
   */
  private fallback:
    | { sink?: DecisionSink; connectionSink?: ConnectionSink; waiting: DecisionRecord[]; dropped: number; ready?: Promise<AuditExport | undefined> }
    | undefined;
  /** Settles the flush in progress with the worker's answer (and the records it still held), or with its end. */
  private flushed: ((outcome: FlushOutcome, pending?: number) => void) | undefined;
  private stopping = false;

  constructor(
    private readonly worker: Worker,
    private readonly exporter: OtlpExporter,
    private readonly environment: string,
    private readonly log: Logger,
    private readonly net: Net | undefined,
  ) {
    worker.unref(); // the export never keeps the process alive on its own
    worker.on("message", (m: FromAuditWorker) => {
      if ("flushed" in m) this.flushed?.(m.flushed, m.pending);
      else if ("warn" in m) log.log("warn", TARGET.main, m.warn);
    });
    worker.on("error", (e) => this.stopped(e.message));
    worker.on("exit", (code) => this.stopped(`exit code ${code}`));
  }

  readonly sink: DecisionSink = (r) => {
    if (this.fallback !== undefined) return this.toFallback(r);
    appendRecord(this.batch, r);
    if (this.batch.length >= AUDIT_BATCH_RECORDS * RECORD_SLOTS) this.post();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.post(), AUDIT_BATCH_DELAY_MS);
      this.timer.unref?.();
    }
  };

  /** Connection records go one message each: one per ended connection, far fewer than decisions. */
  readonly connectionSink: ConnectionSink = (r) => {
    if (this.fallback !== undefined) return this.fallback.connectionSink?.(r); // dropped while the move is under way
    this.send({ connections: [r] });
  };

  async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.fallback !== undefined) {
      // the export moved to the main thread: wait until it runs, then flush it
      await (await this.fallback.ready)?.shutdown();
      return;
    }
    this.post();
    this.worker.ref(); // keep the process alive until the worker answers
    const [outcome, pending] = await new Promise<[FlushOutcome, number | undefined]>((resolve) => {
      const timer = setTimeout(() => resolve(["no answer", undefined]), FLUSH_TIMEOUT_MS + AUDIT_WORKER_ANSWER_MARGIN_MS);
      this.flushed = (o, p) => {
        clearTimeout(timer);
        resolve([o, p]);
      };
      this.send({ flush: true });
    });
    reportFlush(outcome, this.log, pending);
    await this.worker.terminate();
  }

  private post(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) return;
    const records = this.batch;
    this.batch = [];
    this.send({ records });
  }

  private send(m: ToAuditWorker): void {
    try {
      this.worker.postMessage(m);
    } catch (e) {
      this.stopped((e as Error).message);
    }
  }

  /** The worker stopped: from now on, export from the main thread. */
  private stopped(why: string): void {
    if (this.stopping) {
      this.flushed?.({ workerStopped: why }); // a flush in progress ends now, not at its timeout
      return;
    }
    if (this.fallback !== undefined) return;
    const fallback: NonNullable<WorkerExport["fallback"]> = { waiting: [], dropped: 0 };
    this.fallback = fallback;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const unsent = readRecords(this.batch);
    this.batch = [];
    for (const r of unsent) this.toFallback(r);
    fallback.ready = mainThreadExport(this.exporter, this.environment, this.log, this.net).then(
      (exported) => {
        fallback.sink = exported.sink;
        fallback.connectionSink = exported.connectionSink;
        for (const r of fallback.waiting.splice(0)) exported.sink?.(r);
        if (fallback.dropped > 0) this.log.log("warn", TARGET.main, `${fallback.dropped} audit records dropped while the export moved to the main thread`);
        return exported;
      },
      (e: Error) => {
        this.log.log("warn", TARGET.main, `otel exporter ${this.exporter.kind} could not start in the main thread either (${e.message}); audit events are no longer exported`);
        return undefined;
      },
    );
    this.log.log(
      "warn",
      TARGET.main,
      `audit export worker stopped (${why}); exporting from the main thread from now on (records the worker still held are lost${unsent.length > 0 ? `; ${unsent.length} not yet handed to it are kept` : ""})`,
    );
  }

  private toFallback(r: DecisionRecord): void {
    const f = this.fallback!;
    if (f.sink !== undefined) return f.sink(r);
    if (f.waiting.length < AUDIT_HANDOVER_MAX_RECORDS) f.waiting.push(r);
    else f.dropped++;
  }
}
