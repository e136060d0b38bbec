/**
 * The audit export's own OTLP encoding and queue (src/core/audit/otlp/, src/runtimes/shared/
 * audit-batcher.ts, otel-provider.ts):
 *
 * - on random records, the protobuf request equals, byte for byte, and the JSON request,
 *   character for character, what the official serialisers of `@opentelemetry/otlp-transformer`
 *   make of the log records the OpenTelemetry SDK builds for the same records;
 * - the writer's varints, fixed64 nanoseconds and moved lengths against BigInt arithmetic;
 * - the pipeline over each official transport (OTLP/HTTP JSON and protobuf, OTLP/gRPC) to a
 *   loopback collector: what arrives equals the official serialisation, split into batches of
 *   512, with the configured headers; a collector that refuses the batches is reported;
 * - the queue: full batches are sent on the next timer turn, others after the delay, past 2,048
 *   waiting records are dropped and counted, failures are counted, reports are rate-limited and
 *   a flush sends everything.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { JsonLogsSerializer, ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { connectionAttributeList, connectionAttributes, CONNECTION_CLOSED_EVENT, type ConnectionRecord } from "../../src/core/audit/connection.ts";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { AUDIT_LOGGER_NAME, attributeObject, auditAttributeList, auditAttributes, auditEventName } from "../../src/core/audit/otel.ts";
import { type AttributeField, jsonLogsWriter, logsRequestJson, logsRequestProtobuf, protobufLogsWriter, type LogShape, type LogsSource, type OtlpAttributeValue } from "../../src/core/audit/otlp/logs-request.ts";
import { ProtoWriter, varintSize } from "../../src/core/audit/otlp/proto-writer.ts";
import {
  AUDIT_EXPORT_BATCH_RECORDS,
  AUDIT_EXPORT_DELAY_MS,
  AUDIT_EXPORT_TIMEOUT_MS,
  AUDIT_EXPORTS_IN_FLIGHT,
  AUDIT_LOSS_REPORT_INTERVAL_MS,
  AUDIT_QUEUE_MAX_RECORDS,
  AuditBatcher,
  type BatcherCounts,
  ListStore,
} from "../../src/runtimes/shared/audit-batcher.ts";
import { AUDIT_SHAPE, type AuditItem, createAuditPipeline, EncodedStore, type OtlpExporter } from "../../src/runtimes/shared/otel-provider.ts";
import { VERSION } from "../../src/core/version.ts";

// ---------------------------------------------------------------------------------------------
// Random records (a fixed-seed generator, so a failure repeats).

function rng(seed: number) {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

/** Strings that stress both encodings: escapes, control characters, non-ASCII, lone surrogates, lengths around 127 and 16 KiB. */
function text(r: ReturnType<typeof rng>): string {
  const pieces = ["a", "example", "127.0.0.1", '"', "\\", "\n", "\u0001", "\u007f", "é", "ü", "€", "😀", "\ud800", "\udc00", "</script>", " ", "\u2028"];
  const len = r.pick([0, 1, 5, 30, 126, 127, 128, 200, 5000, 17000]);
  let s = "";
  while (s.length < len) s += r.next() < 0.8 ? "abcdefghijklmnopqrstuvwxyz0123456789.-"[r.int(38)] : r.pick(pieces);
  return s;
}

/**
 * Record times from now on: the SDK reads a number below `performance.timeOrigin` (when this
 * process started) as a `performance.now()` offset, not as epoch milliseconds. The proxy's
 * records carry `Date.now()`, which is never that low.
 */
const NOW = Math.ceil(performance.timeOrigin) + 1;
function time(r: ReturnType<typeof rng>): number {
  return r.pick([NOW, NOW + 999, 2 ** 42 - 1, NOW + r.int(2 ** 42 - NOW)]);
}

function randomDecision(r: ReturnType<typeof rng>): DecisionRecord {
  return {
    timestamp: time(r),
    scope: r.pick(["domain_rule", "mode_guard", "proxy_state"] as const),
    decision: r.pick(["allow", "deny", "ask"] as const),
    source: r.pick(["baseline_policy", "decider", "mode_guard", "proxy_state"] as const),
    reason: r.next() < 0.7 ? r.pick(["allowed", "not_allowed", "denied", "method_not_allowed"]) : text(r),
    override: r.next() < 0.5,
    protocol: r.pick(["http", "https_connect", "socks5_tcp", "socks5_udp"] as const),
    host: r.next() < 0.5 ? "127.0.0.1" : text(r),
    port: r.int(65536),
    method: r.next() < 0.2 ? undefined : r.pick(["GET", "POST", "CONNECT"]),
    client: r.next() < 0.2 ? undefined : `127.0.0.1:${r.int(65536)}`,
    mode: r.pick(["full", "limited"] as const),
  } as DecisionRecord;
}

function randomConnection(r: ReturnType<typeof rng>): ConnectionRecord {
  return {
    timestamp: time(r),
    kind: r.pick(["tunnel", "connection"] as const),
    protocol: r.pick(["https_connect", "socks5_tcp", "http"]),
    host: text(r),
    port: r.int(65536),
    client: `127.0.0.1:${r.int(65536)}`,
    bytesToOrigin: r.pick([0, 1, 127, 128, 16383, 16384, 2 ** 32, 2 ** 53 - 1, r.int(2 ** 40)]),
    bytesToClient: r.int(2 ** 50),
    durationMs: r.next() * 1e7,
    ended: r.pick(["client_closed", "origin_closed", "error", "shutdown", "idle_timeout", "proxy_closed"] as const),
  };
}

const SOURCE: LogsSource = {
  resource: { "service.name": "codex-network-proxy", "service.version": VERSION, "deployment.environment": "test" },
  scope: AUDIT_LOGGER_NAME,
};

/** A log as a flat attribute list: what the SDK side of the comparison emits, and arbitrary attributes for the encoder. */
interface OtlpLog {
  readonly timeMs: number;
  readonly eventName: string;
  readonly attributes: readonly OtlpAttributeValue[];
}

/** The encoder reading an {@link OtlpLog}'s list, position by position. */
const LIST_SHAPE: LogShape<OtlpLog> = {
  timeMs: (l) => l.timeMs,
  eventName: (l) => l.eventName,
  fields: (l) => {
    const fields: AttributeField<OtlpLog>[] = [];
    for (let i = 0; i < l.attributes.length; i += 2) fields.push([l.attributes[i] as string, (x) => x.attributes[i + 1]!]);
    return fields;
  },
};

/** An audit item as an {@link OtlpLog}, through the attribute lists the SDK path emits. */
function auditLog(item: AuditItem): OtlpLog {
  if ("scope" in item) return { timeMs: item.timestamp, eventName: auditEventName(item), attributes: auditAttributeList(item) };
  return { timeMs: item.timestamp, eventName: CONNECTION_CLOSED_EVENT, attributes: connectionAttributeList(item) };
}

/**
 * The log records the SDK builds for `logs` (observed time = record time, as the pipeline
 * writes), through the same logger and resource as the pipeline names.
 */
async function sdkRecords(logs: readonly OtlpLog[], source = SOURCE) {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({ resource: resourceFromAttributes(source.resource), processors: [new SimpleLogRecordProcessor({ exporter })] });
  const logger = provider.getLogger(source.scope);
  for (const l of logs) {
    logger.emit({
      timestamp: l.timeMs,
      observedTimestamp: l.timeMs,
      severityNumber: 9,
      severityText: "INFO",
      eventName: l.eventName,
      body: l.eventName,
      attributes: attributeObject([...l.attributes]),
    });
  }
  await provider.forceFlush();
  return exporter.getFinishedLogRecords();
}

/** What the official serialisers make of `logs`. */
async function official(logs: readonly OtlpLog[]) {
  const records = await sdkRecords(logs);
  return {
    protobuf: Buffer.from(ProtobufLogsSerializer.serializeRequest(records)!),
    json: new TextDecoder().decode(JsonLogsSerializer.serializeRequest(records)),
  };
}

/** "" when `got` equals `want`; otherwise where they first differ, with a little context (a whole batch would flood the report). */
function difference(got: Uint8Array | string, want: Uint8Array | string): string {
  const a = typeof got === "string" ? Buffer.from(got) : Buffer.from(got);
  const b = typeof want === "string" ? Buffer.from(want) : Buffer.from(want);
  if (a.equals(b)) return "";
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const around = (x: Buffer) => `${x.subarray(Math.max(0, i - 24), i + 24).toString("hex")} ${JSON.stringify(x.subarray(Math.max(0, i - 40), i + 40).toString("latin1"))}`;
  return `lengths ${a.length} vs ${b.length}, first difference at byte ${i}:\n got  ${around(a)}\n want ${around(b)}`;
}

describe("the OTLP logs request, against the official serialisers", () => {
  it("random decision and connection records: the same protobuf bytes and the same JSON text", async () => {
    const r = rng(12345);
    for (let round = 0; round < 30; round++) {
      const items: AuditItem[] = [];
      const n = r.pick([1, 2, 7, 40]);
      for (let i = 0; i < n; i++) items.push(r.next() < 0.75 ? randomDecision(r) : randomConnection(r));
      const want = await official(items.map(auditLog));
      expect(difference(logsRequestProtobuf(SOURCE, items, AUDIT_SHAPE), want.protobuf), `protobuf, round ${round}`).toBe("");
      expect(difference(logsRequestJson(SOURCE, items, AUDIT_SHAPE), want.json), `JSON, round ${round}`).toBe("");
    }
  });

  it("one writer, records added one at a time over several takes: each take is the official request of its records", async () => {
    const r = rng(4242);
    const writers = { protobuf: protobufLogsWriter(SOURCE, AUDIT_SHAPE), json: jsonLogsWriter(SOURCE, AUDIT_SHAPE) };
    for (let round = 0; round < 12; round++) {
      const items: AuditItem[] = [];
      const n = r.pick([1, 3, 40, 600]);
      for (let i = 0; i < n; i++) items.push(r.next() < 0.75 ? randomDecision(r) : randomConnection(r));
      for (const item of items) {
        writers.protobuf.add(item);
        writers.json.add(item);
      }
      expect(writers.protobuf.count).toBe(n);
      const want = await official(items.map(auditLog));
      expect(difference(writers.protobuf.take(), want.protobuf), `protobuf, round ${round}`).toBe("");
      expect(difference(writers.json.take(), want.json), `JSON, round ${round}`).toBe("");
      expect(writers.protobuf.count).toBe(0);
    }
  });

  it("one writer over batches past the 1 MiB it keeps, and records around the length prefixes' size changes", async () => {
    const r = rng(77);
    const writers = [protobufLogsWriter(SOURCE, AUDIT_SHAPE), jsonLogsWriter(SOURCE, AUDIT_SHAPE)] as const;
    const batches: DecisionRecord[][] = [
      Array.from({ length: 4 }, (_, i) => ({ ...randomDecision(r), host: `${i}`.repeat(300_000) })), // 1.2 MB: the buffer is let go after
      [randomDecision(r), randomDecision(r)],
      // one record each, its size stepping over where a length's varint grows (2 and 3 bytes,
      // 3 and 4 bytes), for the record, the scope's logs and the resource's logs alike
      ...[16_150, 16_250, 16_350, 2_096_900, 2_097_000, 2_097_100].flatMap((n) => [0, 40, 80].map((d) => [{ ...randomDecision(r), host: "h".repeat(n + d) }])),
    ];
    for (const [i, batch] of batches.entries()) {
      const want = await official(batch.map(auditLog));
      for (const record of batch) for (const w of writers) w.add(record);
      expect(difference(writers[0].take(), want.protobuf), `protobuf, batch ${i}`).toBe("");
      expect(difference(writers[1].take(), want.json), `JSON, batch ${i}`).toBe("");
    }
  });

  it("an attribute kept from a record that was then left out is written right in the next record", async () => {
    const r = rng(78);
    const base = randomDecision(r);
    // the same new host twice in a row: its encoding is kept, though both records fail later on
    const bad = { ...base, host: "kept-from-a-failed-record.example", client: Symbol("no") } as unknown as DecisionRecord;
    const good: DecisionRecord = { ...base, host: "kept-from-a-failed-record.example" };
    const want = await official([good].map(auditLog));
    for (const [writer, expected] of [
      [protobufLogsWriter(SOURCE, AUDIT_SHAPE), want.protobuf],
      [jsonLogsWriter(SOURCE, AUDIT_SHAPE), want.json],
    ] as const) {
      writer.add(randomDecision(r));
      writer.take(); // the record that fails comes first after a take
      expect(() => writer.add(bad)).toThrow(TypeError);
      expect(() => writer.add(bad)).toThrow(TypeError);
      writer.add(good);
      expect(difference(writer.take(), expected)).toBe("");
    }
  });

  it("a record with a value no encoder takes throws a TypeError naming it, and nothing of it stays in the request", async () => {
    const r = rng(7);
    const good = [randomDecision(r), randomDecision(r), randomDecision(r)];
    // the bad value comes after several attributes were already written for it
    const bad = { ...randomDecision(r), client: { an: "object" } } as unknown as DecisionRecord;
    const want = await official(good.map(auditLog));
    for (const [writer, expected] of [
      [protobufLogsWriter(SOURCE, AUDIT_SHAPE), want.protobuf],
      [jsonLogsWriter(SOURCE, AUDIT_SHAPE), want.json],
    ] as const) {
      writer.add(good[0]!);
      expect(() => writer.add(bad)).toThrow(/client\.address/);
      writer.add(good[1]!);
      expect(() => writer.add(bad)).toThrow(TypeError);
      writer.add(good[2]!);
      expect(writer.count).toBe(3);
      expect(difference(writer.take(), expected)).toBe("");
    }
  });

  it("a record over 16 KiB and a batch of 600: lengths that outgrow the room reserved for them", async () => {
    const big: DecisionRecord = { ...randomDecision(rng(1)), host: "h".repeat(20_000), reason: "r".repeat(300) };
    const many = Array.from({ length: 600 }, (_, i) => ({ ...randomDecision(rng(i)), host: `host-${i}` }) as DecisionRecord);
    for (const items of [[big], many, [big, ...many]]) {
      const want = await official(items.map(auditLog));
      expect(difference(logsRequestProtobuf(SOURCE, items, AUDIT_SHAPE), want.protobuf)).toBe("");
      expect(difference(logsRequestJson(SOURCE, items, AUDIT_SHAPE), want.json)).toBe("");
    }
  });

  it("attribute values beyond the audit's own: negative and large integers, doubles, infinities, NaN", async () => {
    const values = [-1, -128, -(2 ** 40), 2 ** 53 - 1, 2 ** 60, 2 ** 63, -(2 ** 63), 2 ** 64, 0.5, -0.25, 1e300, Infinity, -Infinity, NaN, 0, -0, true, false, ""];
    const logs: OtlpLog[] = values.map((v, i) => ({ timeMs: NOW + i, eventName: "e", attributes: ["v", v, "k\u00e9y", "x"] }));
    const want = await official(logs);
    expect(difference(logsRequestProtobuf(SOURCE, logs, LIST_SHAPE), want.protobuf)).toBe("");
    expect(difference(logsRequestJson(SOURCE, logs, LIST_SHAPE), want.json)).toBe("");
  });

  it("the same values again hit the per-attribute cache and still encode the same", async () => {
    const r = rng(99);
    const items = Array.from({ length: 300 }, () => randomDecision(r));
    const logs = items.map(auditLog);
    const first = logsRequestProtobuf(SOURCE, items, AUDIT_SHAPE);
    const again = logsRequestProtobuf(SOURCE, items, AUDIT_SHAPE);
    expect(difference(again, first)).toBe("");
    expect(difference(first, (await official(logs)).protobuf)).toBe("");
  });

  it("records that repeat most attributes, a few changing back and forth: runs of kept encodings joined, used whole, in part, and joined again", async () => {
    const r = rng(2024);
    // A few values per field, so attributes repeat for a while, then change and come back: the
    // kept runs are made, copied whole, broken at any position, and made again.
    const pools = {
      timestamp: [NOW, NOW + 1, NOW + 2],
      reason: ["allowed", "not_allowed"],
      host: ["127.0.0.1", "a.example"],
      port: [80, 443, 27990],
      method: ["GET", "POST", undefined],
      client: ["127.0.0.1:1", "127.0.0.1:2", undefined],
      override: [false, true],
    } as const;
    const keys = Object.keys(pools) as (keyof typeof pools)[];
    let current: DecisionRecord = { ...randomDecision(r), scope: "domain_rule", decision: "allow", source: "baseline_policy", protocol: "http", mode: "full" };
    for (let batch = 0; batch < 6; batch++) {
      const items: DecisionRecord[] = [];
      for (let i = 0; i < 400; i++) {
        const changes = r.pick([0, 0, 0, 1, 1, 2, 3]);
        let next = { ...current } as Record<string, unknown>;
        for (let c = 0; c < changes; c++) {
          const key = r.pick(keys);
          next = { ...next, [key]: r.pick(pools[key] as readonly unknown[]) };
        }
        current = next as unknown as DecisionRecord;
        items.push(current);
      }
      // Now and then a record no encoder takes comes between them: it is rolled back, and
      // whatever it left in the caches must still encode the next records right.
      const writer = protobufLogsWriter(SOURCE, AUDIT_SHAPE);
      for (const item of items) {
        if (r.next() < 0.03) expect(() => writer.add({ ...item, method: { not: "a string" } } as unknown as DecisionRecord)).toThrow(TypeError);
        writer.add(item);
      }
      const ours = writer.take();
      expect(difference(ours, (await official(items.map(auditLog))).protobuf), `batch ${batch}`).toBe("");
    }
  });

  it("the last-value cache tells apart a changed key, a value of another type, and another event at the same position", async () => {
    const logs: OtlpLog[] = [
      { timeMs: NOW, eventName: "a", attributes: ["k", "1", "x", true] },
      { timeMs: NOW, eventName: "a", attributes: ["k", 1, "x", true] },
      { timeMs: NOW, eventName: "a", attributes: ["j", 1, "x", 1] },
      { timeMs: NOW, eventName: "b", attributes: ["j", 1, "x", 1] },
      { timeMs: NOW, eventName: "a", attributes: ["x", 1] },
      { timeMs: NOW, eventName: "a", attributes: ["x", 1, "k", "1", "extra", false] },
      // kept after two in a row, then the same value under another key, then of another type
      { timeMs: NOW, eventName: "c", attributes: ["k", 7, "y", "s"] },
      { timeMs: NOW, eventName: "c", attributes: ["k", 7, "y", "s"] },
      { timeMs: NOW, eventName: "c", attributes: ["j", 7, "y", "s"] },
      { timeMs: NOW, eventName: "c", attributes: ["j", "7", "y", "s"] },
      { timeMs: NOW, eventName: "c", attributes: ["j", "7", "z", "s"] },
    ];
    const want = await official(logs);
    expect(difference(logsRequestProtobuf(SOURCE, logs, LIST_SHAPE), want.protobuf)).toBe("");
    expect(difference(logsRequestJson(SOURCE, logs, LIST_SHAPE), want.json)).toBe("");
  });

  it("more event names than the encoder keeps (16): every name's fixed fields and kept values rebuilt right after the cache is cleared", async () => {
    const r = rng(1616);
    // 24 names, some long (a body over 127 bytes: a two-byte length) and some not ASCII; each
    // record repeats its name's attributes, so kept encodings and runs are in use when the
    // cache is cleared by the 17th name
    const names = Array.from({ length: 24 }, (_, i) => (i % 5 === 0 ? `event.${"long".repeat(40)}.${i}` : i % 5 === 1 ? `évènement.${i}` : `event.${i}`));
    const logs: OtlpLog[] = [];
    for (let round = 0; round < 6; round++) {
      for (const name of names) {
        const n = 1 + r.int(3);
        for (let k = 0; k < n; k++) logs.push({ timeMs: NOW + round, eventName: name, attributes: ["event.name", name, "round", round % 2, "host", r.pick(["a.example", "b.example"]), "ok", true] });
      }
    }
    const want = await official(logs);
    expect(difference(logsRequestProtobuf(SOURCE, logs, LIST_SHAPE), want.protobuf)).toBe("");
    expect(difference(logsRequestJson(SOURCE, logs, LIST_SHAPE), want.json)).toBe("");
  });

  it("a value that is neither string, number nor boolean is refused, naming the attribute", () => {
    const bad = [{ timeMs: 1, eventName: "e", attributes: ["some.key", [1] as unknown as string] }];
    expect(() => logsRequestProtobuf(SOURCE, bad, LIST_SHAPE)).toThrow(/"some\.key" is a object/);
    expect(() => logsRequestJson(SOURCE, bad, LIST_SHAPE)).toThrow(/"some\.key" is a object/);
  });
});

describe("the protobuf writer", () => {
  /** The shortest varint of `n` (as a BigInt), the reference the writer is checked against. */
  function bigVarint(n: bigint): number[] {
    const out: number[] = [];
    let v = BigInt.asUintN(64, n);
    while (v >= 128n) {
      out.push(Number(v & 127n) | 128);
      v >>= 7n;
    }
    out.push(Number(v));
    return out;
  }

  it("varints of whole numbers up to 2^53 and of negative numbers, and their sizes", () => {
    const r = rng(7);
    const values = [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, ...Array.from({ length: 200 }, () => Math.floor(r.next() * 2 ** 53))];
    for (const v of values) {
      const w = new ProtoWriter();
      w.varint(v);
      expect([...w.finish()], String(v)).toEqual(bigVarint(BigInt(v)));
      expect(varintSize(v)).toBe(bigVarint(BigInt(v)).length);
    }
    for (const v of [-1, -2, -(2 ** 31), -(2 ** 53 - 1)]) {
      const w = new ProtoWriter();
      w.negativeVarint(v);
      expect([...w.finish()], String(v)).toEqual(bigVarint(BigInt(v)));
    }
  });

  it("a nested message whose length needs more or fewer bytes than reserved moves by the difference", () => {
    for (const [reserve, len] of [
      [1, 127],
      [1, 128],
      [1, 20_000],
      [2, 0],
      [2, 5],
      [4, 300],
    ] as const) {
      const w = new ProtoWriter();
      w.byte(0xaa);
      const begun = w.begin(reserve);
      for (let i = 0; i < len; i++) w.byte(i & 0x7f);
      w.end(begun);
      w.byte(0xbb);
      const out = w.finish();
      const prefix = bigVarint(BigInt(len));
      expect(out[0]).toBe(0xaa);
      expect([...out.subarray(1, 1 + prefix.length)]).toEqual(prefix);
      expect(out.length).toBe(1 + prefix.length + len + 1);
      if (len > 0) expect(out[prefix.length + len]).toBe((len - 1) & 0x7f);
      expect(out[out.length - 1]).toBe(0xbb);
    }
  });

  it("the buffer grows past its first size and keeps what was written", () => {
    const w = new ProtoWriter();
    const s = "x".repeat(100) + "é";
    for (let i = 0; i < 2000; i++) w.string(s);
    const out = w.finish();
    expect(out.length).toBe(2000 * (1 + 102)); // 102 UTF-8 bytes each, a 1-byte length
    expect(new TextDecoder().decode(out.subarray(out.length - 102))).toBe(s);
  });
});

// ---------------------------------------------------------------------------------------------
// The pipeline over the official transports.

interface Received {
  readonly body: Buffer;
  readonly headers: IncomingHttpHeaders | Record<string, string>;
}

async function httpCollector(status = 200) {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      got.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.writeHead(status, { "content-type": String(req.headers["content-type"]) });
      res.end(req.headers["content-type"] === "application/json" ? "{}" : "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return { got, endpoint: `http://127.0.0.1:${port}/v1/logs`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function grpcCollector() {
  const got: Received[] = [];
  const server = new grpc.Server();
  const raw = (b: Buffer) => b;
  server.addService(
    {
      Export: {
        path: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    } as grpc.ServiceDefinition,
    {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
        got.push({ body: call.request, headers: call.metadata.getMap() as Record<string, string> });
        done(null, Buffer.alloc(0)); // an empty ExportLogsServiceResponse
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { got, endpoint: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

describe("the pipeline over the official transports", () => {
  const items: AuditItem[] = (() => {
    const r = rng(2024);
    const out: AuditItem[] = [];
    for (let i = 0; i < 600; i++) out.push(i % 50 === 7 ? randomConnection(r) : { ...randomDecision(r), host: `host-${i}` });
    return out;
  })();

  /** Push every item, shut down, and check what arrived against the official serialisation, batch by batch. */
  async function roundTrip(exporter: OtlpExporter, got: Received[], kind: "json" | "protobuf") {
    const warnings: string[] = [];
    const pipeline = await createAuditPipeline(exporter, "test", (m) => warnings.push(m));
    for (const item of items) ("scope" in item ? pipeline.sink : pipeline.connectionSink)(item as never);
    await pipeline.shutdown();
    expect(warnings).toEqual([]);
    expect(pipeline.stats()).toEqual({ sent: items.length, dropped: 0, failed: 0, skipped: 0, pending: 0 });
    expect(got).toHaveLength(2);
    // the two batches go out together, so they may arrive in either order
    const batches = [items.slice(0, AUDIT_EXPORT_BATCH_RECORDS), items.slice(AUDIT_EXPORT_BATCH_RECORDS)];
    const wants = await Promise.all(batches.map(async (batch) => {
      const want = await official(batch.map(auditLog));
      return kind === "protobuf" ? want.protobuf : Buffer.from(want.json);
    }));
    const [first, second] = got[0]!.body.length === wants[0]!.length ? [got[0]!, got[1]!] : [got[1]!, got[0]!];
    expect(difference(first.body, wants[0]!), "the batch of 512").toBe("");
    expect(difference(second.body, wants[1]!), "the batch of 88").toBe("");
  }

  it("OTLP/HTTP JSON: two batches (512 + 88), application/json, the configured headers", async () => {
    const c = await httpCollector();
    try {
      await roundTrip({ kind: "otlp-http", endpoint: c.endpoint, protocol: "json", headers: { "x-tenant": "t1" } }, c.got, "json");
      expect(c.got[0]!.headers["content-type"]).toBe("application/json");
      expect(c.got[0]!.headers["x-tenant"]).toBe("t1");
    } finally {
      await c.close();
    }
  });

  it("OTLP/HTTP protobuf: application/x-protobuf, the same records", async () => {
    const c = await httpCollector();
    try {
      await roundTrip({ kind: "otlp-http", endpoint: c.endpoint, protocol: "binary", headers: {} }, c.got, "protobuf");
      expect(c.got[0]!.headers["content-type"]).toBe("application/x-protobuf");
    } finally {
      await c.close();
    }
  });

  it("OTLP/gRPC: the LogsService Export call, the headers as metadata", async () => {
    const c = await grpcCollector();
    try {
      await roundTrip({ kind: "otlp-grpc", endpoint: c.endpoint, headers: { "x-tenant": "t2" } }, c.got, "protobuf");
      expect(c.got[0]!.headers["x-tenant"]).toBe("t2");
    } finally {
      await c.close();
    }
  });

  it("a record with a value no encoder takes is left out when it comes and counted; it sends nothing of its own", async () => {
    const c = await httpCollector();
    try {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      const warnings: string[] = [];
      const pipeline = await createAuditPipeline({ kind: "otlp-http", endpoint: c.endpoint, protocol: "binary", headers: {} }, "test", (m) => warnings.push(m));
      const good = items.slice(0, 5) as DecisionRecord[];
      for (const r of good) pipeline.sink(r);
      pipeline.sink({ ...good[0]!, port: undefined as unknown as number });
      vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS); // the first batch goes
      vi.useRealTimers();
      await vi.waitFor(() => expect(pipeline.stats().pending).toBe(0));
      pipeline.sink({ ...good[1]!, host: null as unknown as string }); // a second batch, of only a bad record
      await pipeline.shutdown();
      const event = (r: DecisionRecord) => `codex.network_proxy.${r.scope === "domain_rule" ? "domain_policy" : "block"}_decision`;
      expect(warnings[0]).toBe(`an audit record was left out of the export: ${event(good[0]!)}: attribute "server.port" is undefined`);
      expect(warnings.at(-1)).toMatch(/, 2 left out \(a value no encoder takes\); 5 delivered$/);
      expect(pipeline.stats()).toEqual({ sent: 5, dropped: 0, failed: 0, skipped: 2, pending: 0 });
      expect(c.got).toHaveLength(1); // nothing sent for the bad record that came alone
      expect(difference(c.got[0]!.body, (await official(good.map(auditLog))).protobuf)).toBe("");
    } finally {
      vi.useRealTimers();
      await c.close();
    }
  });

  it("a collector that refuses every batch: the records are counted as failed and shutdown says so", async () => {
    const c = await httpCollector(400);
    try {
      const warnings: string[] = [];
      const pipeline = await createAuditPipeline({ kind: "otlp-http", endpoint: c.endpoint, protocol: "binary", headers: {} }, "test", (m) => warnings.push(m));
      for (const item of items.slice(0, 10)) pipeline.sink(item as DecisionRecord);
      await pipeline.shutdown();
      expect(pipeline.stats()).toEqual({ sent: 0, dropped: 0, failed: 10, skipped: 0, pending: 0 });
      expect(warnings.length).toBeGreaterThanOrEqual(1);
      expect(warnings.at(-1)).toMatch(/0 dropped .*, 10 in batches the collector did not take or did not answer within 30 s, 0 left out .*; 0 delivered/);
    } finally {
      await c.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The queue.

describe("the export's store: records encoded into their batch's request as they come", () => {
  it("closes a batch at its size, gives the oldest first, and the open one when nothing is closed; each is the official request of its records", async () => {
    const r = rng(31);
    const records = Array.from({ length: 7 }, () => randomDecision(r));
    const skipped: string[] = [];
    const store = new EncodedStore<AuditItem>(() => protobufLogsWriter(SOURCE, AUDIT_SHAPE), 3, (_, e) => skipped.push(e.message));
    for (const rec of records) expect(store.add(rec)).toBe(true);
    expect(store.size).toBe(7);
    const taken = [store.take(), store.take(), store.take()];
    expect(taken.map((t) => t.count)).toEqual([3, 3, 1]); // two closed when full, then the open one
    expect(taken.map((t) => t.batch.count)).toEqual([3, 3, 1]);
    expect(store.size).toBe(0);
    for (const [i, t] of taken.entries()) {
      const want = await official(records.slice(i * 3, i * 3 + t.count).map(auditLog));
      expect(difference(t.batch.bytes, want.protobuf)).toBe("");
    }
    expect(skipped).toEqual([]);
  });

  it("a full batch's request is put together when it is taken, not when its last record comes", () => {
    const r = rng(34);
    let takes = 0;
    const store = new EncodedStore<AuditItem>(
      () => {
        const w = protobufLogsWriter<AuditItem>(SOURCE, AUDIT_SHAPE);
        return {
          get count() {
            return w.count;
          },
          add: (x: AuditItem) => w.add(x),
          take: () => (takes++, w.take()),
        };
      },
      2,
      () => {},
    );
    for (let i = 0; i < 5; i++) store.add(randomDecision(r));
    expect(takes).toBe(0);
    expect(store.take().count).toBe(2);
    expect(takes).toBe(1);
  });

  it("a record the encoder fails on for any reason (a time that is no time) is left out and reported; adding never throws", async () => {
    const r = rng(35);
    const bad = { ...randomDecision(r), timestamp: Number.NaN };
    const reasons: string[] = [];
    const store = new EncodedStore<AuditItem>(() => protobufLogsWriter(SOURCE, AUDIT_SHAPE), 512, (_, e) => reasons.push(e.message));
    const good = randomDecision(r);
    expect(store.add(bad)).toBe(false);
    expect(store.add(good)).toBe(true);
    expect(reasons).toHaveLength(1);
    expect(store.size).toBe(1);
    expect(difference(store.take().batch.bytes, (await official([good].map(auditLog))).protobuf)).toBe("");
  });

  it("a record no encoder takes is not kept, is reported, and leaves the others as they were", async () => {
    const r = rng(32);
    const good = [randomDecision(r), randomDecision(r)];
    const bad = { ...randomDecision(r), port: { not: "a number" } } as unknown as DecisionRecord;
    const skipped: AuditItem[] = [];
    const store = new EncodedStore<AuditItem>(() => jsonLogsWriter(SOURCE, AUDIT_SHAPE), 512, (item) => skipped.push(item));
    expect(store.add(good[0]!)).toBe(true);
    expect(store.add(bad)).toBe(false);
    expect(store.add(good[1]!)).toBe(true);
    expect(store.size).toBe(2);
    expect(skipped).toEqual([bad]);
    const { batch } = store.take();
    expect(difference(batch.bytes, (await official(good.map(auditLog))).json)).toBe("");
  });

  /** A queue over the export's store, with its sends held until the test settles them. */
  function encodedQueue() {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] });
    const sends: { batch: { bytes: Uint8Array; count: number }; done: (ok: boolean) => void }[] = [];
    const losses: BatcherCounts[] = [];
    const b = new AuditBatcher<AuditItem, { bytes: Uint8Array; count: number }>(
      (batch, done) => sends.push({ batch, done }),
      (c) => losses.push(c),
      new EncodedStore<AuditItem>(() => protobufLogsWriter(SOURCE, AUDIT_SHAPE), AUDIT_EXPORT_BATCH_RECORDS, () => {}),
    );
    return { b, sends, losses };
  }

  it("in the queue: a batch that is not full goes after the delay, and a flush sends the one still open", async () => {
    const r = rng(36);
    const { b, sends } = encodedQueue();
    const first = [randomDecision(r), randomDecision(r)];
    for (const x of first) b.push(x);
    vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS - 1);
    expect(sends).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(sends.map((x) => x.batch.count)).toEqual([2]);
    sends[0]!.done(true);
    const second = [randomDecision(r)];
    b.push(second[0]!);
    const flushed = b.flush();
    expect(sends.map((x) => x.batch.count)).toEqual([2, 1]); // sent at once, not after the delay
    sends[1]!.done(true);
    await flushed;
    vi.useRealTimers();
    expect(b.stats()).toEqual({ sent: 3, dropped: 0, failed: 0, skipped: 0, pending: 0 });
    expect(difference(sends[0]!.batch.bytes, (await official(first.map(auditLog))).protobuf)).toBe("");
    expect(difference(sends[1]!.batch.bytes, (await official(second.map(auditLog))).protobuf)).toBe("");
  });

  it("in the queue: at most 4 batches out at once; one that never settles is given up after 30 s and the next goes", () => {
    const r = rng(37);
    const { b, sends, losses } = encodedQueue();
    const one = randomDecision(r);
    for (let i = 0; i < AUDIT_EXPORT_BATCH_RECORDS * 5; i++) {
      b.push(one);
      if (i % AUDIT_EXPORT_BATCH_RECORDS === AUDIT_EXPORT_BATCH_RECORDS - 1) vi.advanceTimersByTime(0); // each full batch goes on the next turn
    }
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT);
    expect(b.stats().pending).toBe(AUDIT_EXPORT_BATCH_RECORDS * 5); // four out, one waiting
    for (const x of sends.slice(1)) x.done(true);
    vi.advanceTimersByTime(0);
    expect(sends).toHaveLength(5); // the fifth went once a slot was free
    sends[4]!.done(true);
    expect(losses).toEqual([]);
    vi.advanceTimersByTime(AUDIT_EXPORT_TIMEOUT_MS);
    // the first, never settled, is given up; the others arrived
    expect(b.stats()).toEqual({ sent: AUDIT_EXPORT_BATCH_RECORDS * 4, dropped: 0, failed: AUDIT_EXPORT_BATCH_RECORDS, skipped: 0, pending: 0 });
    expect(losses).toHaveLength(1);
    vi.useRealTimers();
  });

  it("in the queue: past 2,048 waiting records the next are dropped, counted against the encoded batches", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const sent: number[] = [];
    const r = rng(33);
    const b = new AuditBatcher<AuditItem, { bytes: Uint8Array; count: number }>(
      (batch, done) => {
        sent.push(batch.count);
        done(true);
      },
      undefined,
      new EncodedStore<AuditItem>(() => protobufLogsWriter(SOURCE, AUDIT_SHAPE), AUDIT_EXPORT_BATCH_RECORDS, () => {}),
    );
    const one = randomDecision(r);
    for (let i = 0; i < AUDIT_QUEUE_MAX_RECORDS + 10; i++) b.push(one); // all in one turn: nothing sent yet
    expect(b.stats()).toMatchObject({ dropped: 10, pending: AUDIT_QUEUE_MAX_RECORDS });
    vi.advanceTimersByTime(0);
    expect(sent).toEqual([512, 512, 512, 512]);
    expect(b.stats()).toMatchObject({ sent: 2048, pending: 0 });
    vi.useRealTimers();
  });
});

describe("the audit queue", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Fake timers, the monotonic clock included (the loss reports go by it). */
  function fakeTime(): void {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "setImmediate", "clearImmediate", "Date", "performance"] });
  }

  function setup() {
    fakeTime();
    const sends: { batch: number[]; done: (ok: boolean) => void }[] = [];
    const losses: BatcherCounts[] = [];
    const b = new AuditBatcher<number, number[]>(
      (batch, done) => sends.push({ batch, done }),
      (c) => losses.push(c),
      new ListStore<number>(),
    );
    return { b, sends, losses };
  }

  it("a full batch goes on the next timer turn, never inside the push that filled it", () => {
    const { b, sends } = setup();
    for (let i = 0; i < AUDIT_EXPORT_BATCH_RECORDS; i++) b.push(i);
    expect(sends).toHaveLength(0);
    vi.advanceTimersByTime(0);
    expect(sends).toHaveLength(1);
    expect(sends[0]!.batch).toEqual(Array.from({ length: AUDIT_EXPORT_BATCH_RECORDS }, (_, i) => i));
  });

  it("a batch that is not full goes after the delay, not before", () => {
    const { b, sends } = setup();
    b.push(1);
    vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS - 1);
    b.push(2); // a later record does not push the send back
    expect(sends).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(sends.map((s) => s.batch)).toEqual([[1, 2]]);
  });

  it(`at most ${AUDIT_EXPORTS_IN_FLIGHT} batches out at once; past ${AUDIT_QUEUE_MAX_RECORDS} waiting, records are dropped and counted`, () => {
    const { b, sends } = setup();
    const total = AUDIT_EXPORTS_IN_FLIGHT * AUDIT_EXPORT_BATCH_RECORDS;
    for (let i = 0; i < total; i++) {
      b.push(i);
      vi.advanceTimersByTime(0);
    }
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT);
    for (let i = 0; i < AUDIT_QUEUE_MAX_RECORDS + 5; i++) b.push(i);
    vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS * 2);
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT); // none settled: nothing more goes out
    expect(b.stats()).toEqual({ sent: 0, dropped: 5, failed: 0, skipped: 0, pending: total + AUDIT_QUEUE_MAX_RECORDS });
    // one settles: the queue moves on
    sends[0]!.done(true);
    vi.advanceTimersByTime(0);
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT + 1);
    expect(b.stats()).toMatchObject({ sent: AUDIT_EXPORT_BATCH_RECORDS, pending: total + AUDIT_QUEUE_MAX_RECORDS - AUDIT_EXPORT_BATCH_RECORDS });
  });

  it("losses: the first reported at once, a burst after it once the interval is up with its whole count, by the monotonic clock", () => {
    const { b, sends, losses } = setup();
    for (let i = 0; i < AUDIT_EXPORTS_IN_FLIGHT * AUDIT_EXPORT_BATCH_RECORDS + AUDIT_QUEUE_MAX_RECORDS; i++) {
      b.push(i);
      vi.advanceTimersByTime(0);
    }
    for (let i = 0; i < 10_000; i++) b.push(i); // a burst of drops
    expect(losses).toEqual([{ sent: 0, dropped: 1, failed: 0, skipped: 0, pending: expect.any(Number) }]);
    // every batch out and waiting arrives
    for (let settled = 0; settled < sends.length; settled++) {
      sends[settled]!.done(true);
      vi.advanceTimersByTime(1);
    }
    expect(b.stats()).toMatchObject({ failed: 0, pending: 0 });
    vi.advanceTimersByTime(AUDIT_LOSS_REPORT_INTERVAL_MS - 1 - sends.length);
    expect(losses).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(losses).toHaveLength(2);
    expect(losses[1]).toMatchObject({ dropped: 10_000, failed: 0 });
    // no new loss: no report
    vi.advanceTimersByTime(AUDIT_LOSS_REPORT_INTERVAL_MS * 3);
    expect(losses).toHaveLength(2);
    // a wall clock stepped back an hour does not hold the next report
    vi.setSystemTime(Date.now() - 3_600_000);
    b.push(1);
    vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS);
    sends.at(-1)!.done(false);
    expect(losses).toHaveLength(3);
    expect(losses[2]).toMatchObject({ dropped: 10_000, failed: 1 });
    b.close();
  });

  it(`an export that does not settle within ${AUDIT_EXPORT_TIMEOUT_MS / 1000} s counts as failed and frees its slot; its late answer is ignored`, () => {
    const { b, sends, losses } = setup();
    for (let i = 0; i < (AUDIT_EXPORTS_IN_FLIGHT + 1) * AUDIT_EXPORT_BATCH_RECORDS; i++) {
      b.push(i);
      vi.advanceTimersByTime(0);
    }
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT);
    vi.advanceTimersByTime(AUDIT_EXPORT_TIMEOUT_MS - 1);
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT);
    vi.advanceTimersByTime(1); // the export limit
    vi.advanceTimersByTime(1); // the next turn
    expect(sends).toHaveLength(AUDIT_EXPORTS_IN_FLIGHT + 1); // the waiting batch went out
    expect(b.stats()).toMatchObject({ sent: 0, failed: AUDIT_EXPORTS_IN_FLIGHT * AUDIT_EXPORT_BATCH_RECORDS });
    expect(losses[0]).toMatchObject({ failed: AUDIT_EXPORT_BATCH_RECORDS });
    sends[0]!.done(true); // too late
    expect(b.stats()).toMatchObject({ sent: 0, failed: AUDIT_EXPORTS_IN_FLIGHT * AUDIT_EXPORT_BATCH_RECORDS });
    b.close();
  });

  it("a send that throws or answers twice is counted once, as failed; the queue goes on", () => {
    fakeTime();
    let calls = 0;
    const b = new AuditBatcher<number, number[]>(
      (batch, done) => {
        calls++;
        if (calls === 1) throw new Error("boom");
        done(true);
        done(false);
      },
      undefined,
      new ListStore<number>(),
    );
    b.push(1);
    vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS);
    b.push(2);
    vi.advanceTimersByTime(AUDIT_EXPORT_DELAY_MS);
    expect(b.stats()).toEqual({ sent: 1, dropped: 0, failed: 1, skipped: 0, pending: 0 });
  });

  it("flush sends everything waiting, in batches, and resolves once every send settled", async () => {
    vi.useRealTimers();
    const sent: number[][] = [];
    const b = new AuditBatcher<number, number[]>(
      (batch, done) => {
        sent.push(batch);
        setTimeout(() => done(true), 5);
      },
      undefined,
      new ListStore<number>(),
    );
    for (let i = 0; i < AUDIT_EXPORT_BATCH_RECORDS * 2 + 3; i++) b.push(i);
    await b.flush();
    expect(sent.map((s) => s.length)).toEqual([AUDIT_EXPORT_BATCH_RECORDS, AUDIT_EXPORT_BATCH_RECORDS, 3]);
    expect(b.stats()).toEqual({ sent: AUDIT_EXPORT_BATCH_RECORDS * 2 + 3, dropped: 0, failed: 0, skipped: 0, pending: 0 });
    expect(sent.flat()).toEqual(Array.from({ length: AUDIT_EXPORT_BATCH_RECORDS * 2 + 3 }, (_, i) => i));
  });
});

it("the encoder's fields read what the SDK path's attribute lists hold, and their objects are what it emits", () => {
  const read = <R>(fields: readonly AttributeField<R>[], r: R) => fields.flatMap(([key, value]) => [key, value(r)]);
  const c = randomConnection(rng(3));
  expect(read(AUDIT_SHAPE.fields(c), c)).toEqual(connectionAttributeList(c));
  expect(AUDIT_SHAPE.eventName(c)).toBe(CONNECTION_CLOSED_EVENT);
  expect(attributeObject(connectionAttributeList(c))).toEqual(connectionAttributes(c));
  const d = randomDecision(rng(4));
  expect(read(AUDIT_SHAPE.fields(d), d)).toEqual(auditAttributeList(d));
  expect(AUDIT_SHAPE.eventName(d)).toBe(auditEventName(d));
  expect(attributeObject(auditAttributeList(d))).toEqual(auditAttributes(d));
});
