/**
 * The standalone export pipeline (src/runtimes/shared/otel-export.ts): an exporter that cannot
 * start costs exactly one warning and no sink; statsig is one info line; a working exporter
 * runs in a worker thread and never touches the global provider. Records reach a loopback OTLP
 * receiver with the audit attributes, from the worker, from the main thread when asked or when
 * no worker can start, and when the worker stops midway (one warning; what it had not been
 * handed yet is kept). The batch encoding between the threads round-trips every field.
 *
 * The worker runs this checkout's TypeScript, registering tsx itself as it does under `npm run
 * dev`; the built package runs its JavaScript.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { logs } from "@opentelemetry/api-logs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import type { OtelExporter } from "../../src/core/config/telemetry.ts";
import { createLineLogger } from "../../src/core/log.ts";
import { appendRecord, readRecords, RECORD_SLOTS, type Slot } from "../../src/runtimes/shared/audit-batch.ts";
import {
  AUDIT_BATCH_RECORDS,
  AUDIT_THREAD_ENV,
  AUDIT_WORKER_MIN_CPUS,
  type AuditExportOptions,
  auditThreadFromEnv,
  startAuditExport,
  workerByDefault,
} from "../../src/runtimes/shared/otel-export.ts";
import { allRecords, type OtlpReceiver, startOtlpReceiver } from "../e2e/helpers/otlp.ts";

function telemetry(exporter: OtelExporter) {
  return { environment: "test", exporter, traceExporter: exporter, metricsExporter: { kind: "none" } as const };
}

async function start(exporter: OtelExporter, options: AuditExportOptions = { worker: true }, level: "info" | "debug" = "info") {
  const lines: string[] = [];
  const handle = await startAuditExport(telemetry(exporter), createLineLogger((l) => lines.push(l), level), options);
  return { handle, lines };
}

/** The i-th of a run of distinct decision records. */
function decision(i: number): DecisionRecord {
  return {
    timestamp: 1_760_000_000_000 + i,
    scope: i % 3 === 0 ? "mode_guard" : "domain_rule",
    decision: i % 2 === 0 ? "allow" : "deny",
    source: "baseline_policy",
    reason: i % 2 === 0 ? "allowed" : "not_allowed",
    override: false,
    protocol: i % 5 === 0 ? "socks5_tcp" : "http",
    host: `h${i}.example`,
    port: 1000 + i,
    method: i % 5 === 0 ? undefined : "GET",
    client: `127.0.0.1:${20_000 + i}`,
    mode: "full",
  } as DecisionRecord;
}

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(async () => {
  await receiver?.close();
});

/** The `server.address` of every record the receiver got since `from` posts. */
function hostsSince(from: number): string[] {
  const posts = { ...receiver, posts: receiver.posts.slice(from) };
  return allRecords(posts).map((r) => String(r.attributes["server.address"]));
}

const json = (): OtelExporter => ({ kind: "otlp-http", endpoint: receiver.endpoint, protocol: "json", headers: {} });

describe("audit batches between threads", () => {
  it("round-trip every field of every record, an absent method or client included", () => {
    const batch: Slot[] = [];
    const sent = Array.from({ length: 12 }, (_, i) => decision(i));
    for (const r of sent) appendRecord(batch, r);
    expect(batch).toHaveLength(12 * RECORD_SLOTS);
    const got = readRecords(batch);
    expect(got).toEqual(sent.map((r) => JSON.parse(JSON.stringify(r))));
    expect(got[0]!.method).toBeUndefined();
    expect("method" in got[0]!).toBe(false);
  });

  it("refuse what is not whole records, naming the length", () => {
    expect(() => readRecords([1, 2, 3])).toThrow(/whole records of 12 slots; got length 3/);
    expect(() => readRecords("x" as unknown as Slot[])).toThrow(/got string/);
  });
});

describe("startAuditExport", () => {
  it("runs in a worker by default only with three CPUs or more", () => {
    expect(AUDIT_WORKER_MIN_CPUS).toBe(3);
    expect(workerByDefault(1)).toBe(false);
    expect(workerByDefault(2)).toBe(false);
    expect(workerByDefault(3)).toBe(true);
    expect(workerByDefault(64)).toBe(true);
  });

  it(`${AUDIT_THREAD_ENV} picks the thread; another value is one warning naming it`, () => {
    const lines: string[] = [];
    const log = createLineLogger((l) => lines.push(l), "info");
    expect(auditThreadFromEnv("worker", log)).toBe(true);
    expect(auditThreadFromEnv("main", log)).toBe(false);
    expect(auditThreadFromEnv(undefined, log)).toBeUndefined();
    expect(auditThreadFromEnv("", log)).toBeUndefined();
    expect(lines).toEqual([]);
    expect(auditThreadFromEnv("Worker", log)).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARN .*CODEX_NETWORK_PROXY_AUDIT_THREAD="Worker" is neither "worker" nor "main"; ignored/);
  });

  it("an exporter that cannot start: one warning, no sink, the proxy goes on", async () => {
    const { handle, lines } = await start({ kind: "otlp-http", endpoint: "http://127.0.0.1:99999/v1/logs", protocol: "json", headers: {} });
    expect(handle.sink).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARN .*otel exporter otlp-http could not start .*continuing with stderr logging only/);
    await handle.shutdown();
  });

  it("statsig: one info line, nothing exported", async () => {
    const { handle, lines } = await start({ kind: "statsig" });
    expect(handle.sink).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/INFO .*statsig/);
  });

  it("none: silent, nothing exported", async () => {
    const { handle, lines } = await start({ kind: "none" });
    expect(handle.sink).toBeUndefined();
    expect(lines).toEqual([]);
  });

  it.each<OtelExporter>([
    { kind: "otlp-http", endpoint: "http://127.0.0.1:4318/v1/logs", protocol: "json", headers: {} },
    { kind: "otlp-http", endpoint: "http://127.0.0.1:4318/v1/logs", protocol: "binary", headers: { "x-key": "v" } },
    { kind: "otlp-grpc", endpoint: "http://127.0.0.1:4317", headers: { "x-key": "v" } },
  ])("$kind $protocol: runs in a worker, the global provider untouched", async (exporter) => {
    const globalBefore = logs.getLoggerProvider();
    const { handle, lines } = await start(exporter);
    expect(handle.sink).toBeDefined();
    expect(handle.where).toBe("worker");
    expect(lines.join("\n")).toMatch(/audit events exported with .* from a worker thread/);
    expect(logs.getLoggerProvider()).toBe(globalBefore);
    expect(lines.join("\n")).not.toContain("x-key");
    await handle.shutdown();
  });

  it("from the worker: every record reaches the collector with its attributes by shutdown", async () => {
    const from = receiver.posts.length;
    const { handle } = await start(json());
    expect(handle.where).toBe("worker");
    const n = AUDIT_BATCH_RECORDS * 2 + 7; // two full batches and a partial one
    for (let i = 0; i < n; i++) handle.sink!(decision(i));
    await handle.shutdown();
    const hosts = hostsSince(from);
    expect(hosts.sort()).toEqual(Array.from({ length: n }, (_, i) => `h${i}.example`).sort());
    const first = allRecords({ ...receiver, posts: receiver.posts.slice(from) }).find((r) => r.attributes["server.address"] === "h1.example")!;
    expect(first.scope).toBe("codex_otel.network_proxy");
    expect(first.attributes).toMatchObject({
      "event.name": "codex.network_proxy.domain_policy_decision",
      "network.policy.decision": "deny",
      "network.policy.reason": "not_allowed",
      "server.port": 1001,
      "http.request.method": "GET",
      "client.address": "127.0.0.1:20001",
    });
  });

  it("worker: false exports from the main thread", async () => {
    const from = receiver.posts.length;
    const { handle, lines } = await start(json(), { worker: false });
    expect(handle.where).toBe("main thread");
    expect(lines.join("\n")).not.toContain("worker");
    for (let i = 0; i < 5; i++) handle.sink!(decision(i));
    await handle.shutdown();
    expect(hostsSince(from)).toHaveLength(5);
  });

  it("a worker that cannot load exports from the main thread, saying why at debug", async () => {
    const from = receiver.posts.length;
    const { handle, lines } = await start(json(), { worker: true, workerUrl: pathToFileURL("/nonexistent/otel-worker.js") }, "debug");
    expect(handle.where).toBe("main thread");
    expect(lines.join("\n")).toMatch(/DEBUG .*audit export worker unavailable \(.+\); exporting from the main thread/);
    for (let i = 0; i < 5; i++) handle.sink!(decision(i));
    await handle.shutdown();
    expect(hostsSince(from)).toHaveLength(5);
  });

  it("shutdown while the export moves to the main thread: what waits for it is flushed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cnp-otel-worker-"));
    try {
      const path = join(dir, "dies.mjs");
      writeFileSync(path, `import { parentPort } from "node:worker_threads";\nparentPort.postMessage({ ready: true });\nparentPort.on("message", () => process.exit(3));\n`);
      const from = receiver.posts.length;
      let handle: Awaited<ReturnType<typeof startAuditExport>> | undefined;
      let closing: Promise<void> | undefined;
      const lines: string[] = [];
      // the moment the worker's end is logged, the main-thread export has only just been asked
      // for: records and shutdown come right then
      const log = createLineLogger((l) => {
        lines.push(l);
        if (l.includes("audit export worker stopped") && handle) {
          for (let i = 0; i < 10; i++) handle.sink!(decision(2_000 + i));
          closing = handle.shutdown();
        }
      }, "info");
      handle = await startAuditExport(telemetry(json()), log, { worker: true, workerUrl: pathToFileURL(path) });
      for (let i = 0; i < AUDIT_BATCH_RECORDS; i++) handle.sink!(decision(i)); // posted: the worker dies on it
      const end = Date.now() + 10_000;
      while (closing === undefined && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      await closing;
      expect(hostsSince(from).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `h${2_000 + i}.example`).sort());
      expect(lines.filter((l) => l.includes("WARN"))).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a worker that stops while flushing ends the shutdown at once, saying so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cnp-otel-worker-"));
    try {
      const path = join(dir, "dies-on-flush.mjs");
      writeFileSync(
        path,
        `import { parentPort } from "node:worker_threads";\nparentPort.postMessage({ ready: true });\nparentPort.on("message", (m) => { if (m.flush) process.exit(4); });\n`,
      );
      const { handle, lines } = await start(json(), { worker: true, workerUrl: pathToFileURL(path) });
      handle.sink!(decision(1));
      await handle.shutdown();
      const warnings = lines.filter((l) => l.includes("WARN"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/audit export worker stopped while flushing \(exit code 4\); the records it held are lost/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a worker that stops midway: one warning, and the records from then on go out from the main thread", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cnp-otel-worker-"));
    try {
      // says ready, then dies on its first batch, exporting nothing
      const path = join(dir, "dies.mjs");
      writeFileSync(path, `import { parentPort } from "node:worker_threads";\nparentPort.postMessage({ ready: true });\nparentPort.on("message", () => process.exit(3));\n`);
      const from = receiver.posts.length;
      const { handle, lines } = await start(json(), { worker: true, workerUrl: pathToFileURL(path) });
      expect(handle.where).toBe("worker");
      for (let i = 0; i < AUDIT_BATCH_RECORDS; i++) handle.sink!(decision(i)); // one full batch: posted, lost with the worker
      const end = Date.now() + 10_000;
      while (!lines.some((l) => l.includes("audit export worker stopped")) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      for (let i = 0; i < 10; i++) handle.sink!(decision(1_000 + i));
      await handle.shutdown();
      const warnings = lines.filter((l) => l.includes("WARN"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/audit export worker stopped \(exit code 3\); exporting from the main thread from now on/);
      expect(hostsSince(from).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `h${1_000 + i}.example`).sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
