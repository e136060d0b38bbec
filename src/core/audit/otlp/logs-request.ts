/**
 * The OTLP `ExportLogsServiceRequest` (opentelemetry-proto, `collector/logs/v1`) of a batch of
 * audit records, as binary protobuf or as OTLP/JSON, written straight from the records.
 *
 * The OpenTelemetry SDK's path builds a log record object per event, then an intermediate request
 * object, then serialises that: about 6 µs per record on Node, most of the audit export's cost
 * (BENCHMARKS.md, figure 10). This writes the same bytes in a fraction of that: the request the
 * official serialisers (`@opentelemetry/otlp-transformer`) make for the log records the SDK would
 * make, byte for byte in protobuf and character for character in JSON (a test compares them on
 * random records). The transport stays the official one (`runtimes/shared/otel-provider.ts`).
 *
 * Every record is one log record of severity INFO whose body and event name are its event name;
 * its observed time is its own time (records are handed over the moment they are made). Times
 * are whole milliseconds since the Unix epoch. Attribute values are strings, numbers (an integer
 * is an `intValue`, anything else a `doubleValue`; in protobuf an integer beyond int64 is a
 * `doubleValue` too, as the official serialiser writes it) or booleans.
 *
 * @module
 */
import { ByteWriter, ProtoWriter, tag, varintSize, WIRE } from "./proto-writer.ts";

/** An attribute value the encoder writes. */
export type OtlpAttributeValue = string | number | boolean;

/** Whether the encoder writes `value` (anything else makes it throw a `TypeError` naming the attribute). */
export function isAttributeValue(value: unknown): value is OtlpAttributeValue {
  const t = typeof value;
  return t === "string" || t === "number" || t === "boolean";
}

/**
 * One attribute of a kind of record: its key, and how to read its value from a record. The
 * reader must be pure: the encoder may read a value twice (where a kept run breaks).
 */
export type AttributeField<R> = readonly [key: string, value: (record: R) => OtlpAttributeValue];

/**
 * How the encoder reads a kind of record: its time (milliseconds since the Unix epoch, whole; a
 * fraction is dropped), its event name, and its attributes in order. The encoder reads each
 * value where it is, so a batch makes no attribute list or log object per record.
 */
export interface LogShape<R> {
  timeMs(record: R): number;
  eventName(record: R): string;
  fields(record: R): readonly AttributeField<R>[];
}

/** Who sent a batch: the resource's attributes and the instrumentation scope's name. */
export interface LogsSource {
  readonly resource: Readonly<Record<string, string>>;
  readonly scope: string;
}

/** SeverityNumber INFO in the OTLP data model. */
const SEVERITY_INFO = 9;
const SEVERITY_TEXT = "INFO";

// Field numbers of opentelemetry-proto (logs/v1/logs.proto, common/v1/common.proto,
// resource/v1/resource.proto, collector/logs/v1/logs_service.proto).
const REQUEST_RESOURCE_LOGS = tag(1, WIRE.bytes);
const RESOURCE_LOGS_RESOURCE = tag(1, WIRE.bytes);
const RESOURCE_LOGS_SCOPE_LOGS = tag(2, WIRE.bytes);
const RESOURCE_ATTRIBUTES = tag(1, WIRE.bytes);
const RESOURCE_DROPPED = tag(2, WIRE.varint);
const SCOPE_LOGS_SCOPE = tag(1, WIRE.bytes);
const SCOPE_LOGS_LOG_RECORDS = tag(2, WIRE.bytes);
const SCOPE_NAME = tag(1, WIRE.bytes);
const LOG_TIME = tag(1, WIRE.fixed64);
const LOG_SEVERITY_NUMBER = tag(2, WIRE.varint);
const LOG_SEVERITY_TEXT = tag(3, WIRE.bytes);
const LOG_BODY = tag(5, WIRE.bytes);
const LOG_ATTRIBUTES = tag(6, WIRE.bytes);
const LOG_DROPPED = tag(7, WIRE.varint);
const LOG_OBSERVED_TIME = tag(11, WIRE.fixed64);
const LOG_EVENT_NAME = tag(12, WIRE.bytes);
const KEY_VALUE_KEY = tag(1, WIRE.bytes);
const KEY_VALUE_VALUE = tag(2, WIRE.bytes);
const ANY_STRING = tag(1, WIRE.bytes);
const ANY_BOOL = tag(2, WIRE.varint);
const ANY_INT = tag(3, WIRE.varint);
const ANY_DOUBLE = tag(4, WIRE.fixed64);

const TWO_32 = 2 ** 32;
/** An integer in protobuf must fit an int64; a larger one goes as a double (as the official serialiser does). */
const INT64_LIMIT = 2 ** 63;

/**
 * Bytes reserved for a nested message's length before it is known: 1 for an attribute (under 128
 * bytes), 2 for a log record (under 16 KiB). A wrong guess costs a move.
 */
const RESERVE_SMALL = 1;
const RESERVE_RECORD = 2;

/**
 * An OTLP logs request written one record at a time: each record is encoded the moment it is
 * added, so a batch waiting to be sent holds its bytes, not its records (on Bun, keeping 512
 * records until the batch was encoded cost more than encoding them: BENCHMARKS.md, profile
 * notes). {@link take} gives the request of the records added since the last take.
 */
export interface LogsRequestWriter<R> {
  /** Records added since the last {@link take}. */
  readonly count: number;
  /**
   * Encode `record` into the request. A record with a value no encoder takes throws a
   * `TypeError` naming the attribute, and nothing of it is kept.
   */
  add(record: R): void;
  /** The request of the records added since the last take, and start again. */
  take(): Uint8Array;
}

/** Room for a request's two tags and two length varints (the longest a varint gets is ten bytes). */
const HEAD_BYTES = 2 + 2 * 10;

/** A writer of binary protobuf requests from `source`, reading records as `shape` says. */
export function protobufLogsWriter<R>(source: LogsSource, shape: LogShape<R>): LogsRequestWriter<R> {
  return new ProtobufLogsWriter(source, shape);
}

class ProtobufLogsWriter<R> implements LogsRequestWriter<R> {
  /** The `log_records` fields of the records added so far. */
  private readonly body = new ProtoWriter();
  count = 0;
  /** The `resource` field and the `scope` field, as they open every request. */
  private readonly resourceField: Uint8Array;
  private readonly scopeField: Uint8Array;

  constructor(
    source: LogsSource,
    private readonly shape: LogShape<R>,
  ) {
    const w = new ProtoWriter();
    w.byte(RESOURCE_LOGS_RESOURCE);
    const resource = w.begin(RESERVE_RECORD);
    for (const key of Object.keys(source.resource)) {
      w.byte(RESOURCE_ATTRIBUTES);
      keyValue(w, key, source.resource[key]!);
    }
    w.byte(RESOURCE_DROPPED);
    w.byte(0);
    w.end(resource);
    this.resourceField = w.finish();
    w.reset();
    w.byte(SCOPE_LOGS_SCOPE);
    const scope = w.begin(RESERVE_SMALL);
    w.byte(SCOPE_NAME);
    w.string(source.scope);
    w.end(scope);
    this.scopeField = w.finish();
  }

  add(record: R): void {
    const start = this.body.length;
    try {
      writeProtobufRecord(this.body, record, this.shape);
    } catch (e) {
      this.body.truncate(start);
      throw e;
    }
    this.count++;
  }

  take(): Uint8Array {
    const body = this.body;
    const scopeLogs = this.scopeField.length + body.length;
    const resourceLogs = this.resourceField.length + 1 + varintSize(scopeLogs) + scopeLogs;
    const head = new ProtoWriter(HEAD_BYTES + this.resourceField.length + this.scopeField.length);
    head.byte(REQUEST_RESOURCE_LOGS);
    head.varint(resourceLogs);
    head.raw(this.resourceField);
    head.byte(RESOURCE_LOGS_SCOPE_LOGS);
    head.varint(scopeLogs);
    head.raw(this.scopeField);
    // exactly the request's bytes, in a buffer of their own (a transport may keep it)
    const out = new Uint8Array(head.length + body.length);
    out.set(head.view());
    out.set(body.view(), head.length);
    body.reset();
    this.count = 0;
    return out;
  }
}

/** One record as a `log_records` field of `ScopeLogs`. */
function writeProtobufRecord<R>(w: ProtoWriter, r: R, shape: LogShape<R>): void {
  const eventName = shape.eventName(r);
  const values = protobufAttributes.of(eventName);
  const fixed = (values.fixed ??= fixedRecordParts(eventName));
  w.byte(SCOPE_LOGS_LOG_RECORDS);
  const record = w.begin(RESERVE_RECORD);
  const ms = wholeMs(shape.timeMs(r));
  const hi = Math.floor(ms / TWO_32);
  const lo = ms - hi * TWO_32;
  // nanoseconds = ms · 10^6, split in 32-bit halves without losing a digit (lo · 10^6 < 2^53)
  const low = lo * 1_000_000;
  const nsLo = low % TWO_32;
  const nsHi = hi * 1_000_000 + (low - nsLo) / TWO_32;
  w.byte(LOG_TIME);
  w.fixed64(nsHi, nsLo);
  w.raw(fixed.afterTime);
  writeAttributes(w, values, r, shape.fields(r), 0, protobufAttribute);
  w.byte(LOG_DROPPED);
  w.byte(0);
  w.byte(LOG_OBSERVED_TIME);
  w.fixed64(nsHi, nsLo);
  w.raw(fixed.eventNameField);
  w.end(record);
}

/**
 * The fields of a record of `eventName` that are the same in every such record: severity, its
 * text and the body (they follow the time), and the event name (the record's last field).
 */
function fixedRecordParts(eventName: string): FixedRecordParts {
  const w = new ProtoWriter(64 + 6 * eventName.length);
  w.byte(LOG_SEVERITY_NUMBER);
  w.byte(SEVERITY_INFO);
  w.byte(LOG_SEVERITY_TEXT);
  w.string(SEVERITY_TEXT);
  w.byte(LOG_BODY);
  const body = w.begin(RESERVE_SMALL);
  w.byte(ANY_STRING);
  w.string(eventName);
  w.end(body);
  const afterTime = w.finish();
  w.reset();
  w.byte(LOG_EVENT_NAME);
  w.string(eventName);
  return { afterTime, eventNameField: w.finish() };
}

/** The request for `records` (read as `shape` says) from `source`, as binary protobuf. */
export function logsRequestProtobuf<R>(source: LogsSource, records: readonly R[], shape: LogShape<R>): Uint8Array {
  const w = protobufLogsWriter(source, shape);
  for (const r of records) w.add(r);
  return w.take();
}

/**
 * Most attributes repeat from one record to the next (the event name, the decision, the host,
 * the time within a millisecond), so for each event name and attribute position the last
 * repeated key, value and encoding are kept, and a record that repeats them copies the encoding.
 * A value is kept once it comes twice in a row at its position; one that changes every record
 * (the client's port) is written each time and never copied out.
 */
interface Slot {
  /** The kept key, value and encoding. */
  key: string;
  value: OtlpAttributeValue;
  encoded: Uint8Array | undefined;
  /** The last key and value written at this position. */
  lastKey: string;
  lastValue: OtlpAttributeValue;
}

/** Event names whose slots are kept; past that, all start again empty. */
const CACHED_EVENT_NAMES = 16;

/**
 * Kept encodings at consecutive positions, joined: a record that repeats all of them copies the
 * run at once (one copy instead of one per attribute). Valid while each position still keeps
 * the encoding it was joined from.
 */
interface Run {
  /** The kept encoding of each position, from the run's first. */
  readonly encodings: readonly Uint8Array[];
  readonly bytes: Uint8Array;
}

/** The protobuf fields every record of one event name has alike ({@link fixedRecordParts}). */
interface FixedRecordParts {
  readonly afterTime: Uint8Array;
  readonly eventNameField: Uint8Array;
}

/**
 * What is kept for one event name: its slots, the runs by first position, and (protobuf only)
 * the fields every record of the name has alike.
 */
interface EventValues {
  readonly slots: Slot[];
  readonly runs: (Run | undefined)[];
  fixed?: FixedRecordParts;
}

/** The slots of each event name. */
class LastValues {
  private readonly byEvent = new Map<string, EventValues>();
  of(eventName: string): EventValues {
    let values = this.byEvent.get(eventName);
    if (values === undefined) {
      if (this.byEvent.size >= CACHED_EVENT_NAMES) this.byEvent.clear();
      values = { slots: [], runs: [] };
      this.byEvent.set(eventName, values);
    }
    return values;
  }
}

/** The kept encoding of `key` = `value` at `position`, if there is one. */
function kept(slots: Slot[], position: number, key: string, value: OtlpAttributeValue): Uint8Array | undefined {
  const slot = slots[position];
  if (slot === undefined || slot.encoded === undefined || slot.key !== key || slot.value !== value) return undefined;
  // the last value written here is the kept one again: a value alternating with it does not
  // count as twice in a row
  slot.lastKey = key;
  slot.lastValue = value;
  return slot.encoded;
}

/**
 * `key` = `value` was just written at `position`, from `start` to the end of `w`: keep its
 * encoding if it is the second time in a row.
 */
function wrote(slots: Slot[], position: number, key: string, value: OtlpAttributeValue, w: ByteWriter, start: number): void {
  const slot = slots[position];
  if (slot === undefined) {
    slots[position] = { key, value, encoded: undefined, lastKey: key, lastValue: value };
  } else if (slot.lastKey === key && slot.lastValue === value) {
    slot.key = key;
    slot.value = value;
    slot.encoded = w.copyFrom(start);
  } else {
    slot.lastKey = key;
    slot.lastValue = value;
  }
}

const protobufAttributes = new LastValues();
const jsonAttributes = new LastValues();

/**
 * Write the attributes `fields` read from `record`, each from `values` (its event name's) when
 * it repeats, else with `encode`; `separator` (a byte, or 0 for none) goes between two. Without
 * a separator, a run of repeated attributes that repeated together before is copied at once
 * (see {@link Run}).
 */
function writeAttributes<W extends ByteWriter, R>(
  w: W,
  values: EventValues,
  record: R,
  fields: readonly AttributeField<R>[],
  separator: number,
  encode: (w: W, key: string, value: OtlpAttributeValue) => void,
): void {
  const { slots, runs } = values;
  /** Where the repeated attributes just written began (-1: the last one was encoded). */
  let repeatedFrom = -1;
  /** Whether those are exactly one whole run, copied at once (then there is nothing to join). */
  let wholeRun = false;
  let i = 0;
  while (i < fields.length) {
    if (separator !== 0 && i > 0) w.byte(separator);
    const field = fields[i]!;
    const key = field[0];
    const value = field[1](record);
    const encoded = kept(slots, i, key, value);
    if (encoded !== undefined) {
      const run = separator === 0 ? runs[i] : undefined;
      const through = run !== undefined && run.encodings[0] === encoded ? runRepeats(run, slots, record, fields, i) : 0;
      const whole = through === run?.encodings.length;
      wholeRun = whole && repeatedFrom < 0;
      if (repeatedFrom < 0) repeatedFrom = i;
      if (whole) {
        w.raw(run.bytes);
        i += through;
        continue;
      }
      // the run (if any) holds only up to `through`: write those one by one, then go on after them
      const upTo = Math.max(through, 1);
      for (let k = 0; k < upTo; k++) w.raw(k === 0 ? encoded : run!.encodings[k]!);
      i += upTo;
      continue;
    }
    if (separator === 0 && !wholeRun) joinRun(runs, slots, repeatedFrom, i);
    repeatedFrom = -1;
    wholeRun = false;
    const start = w.length;
    encode(w, key, value);
    wrote(slots, i, key, value, w, start);
    i++;
  }
  if (separator === 0 && !wholeRun) joinRun(runs, slots, repeatedFrom, fields.length);
}

/**
 * How many positions of `run`, from `at`, `record` repeats with the very encodings joined (the
 * first is known to), each looked up as {@link kept} does.
 */
function runRepeats<R>(run: Run, slots: Slot[], record: R, fields: readonly AttributeField<R>[], at: number): number {
  let k = 1;
  while (k < run.encodings.length && at + k < fields.length) {
    const field = fields[at + k]!;
    if (kept(slots, at + k, field[0], field[1](record)) !== run.encodings[k]) break;
    k++;
  }
  return k;
}

/**
 * The attributes at `from` up to `to` were all written from their kept encodings: keep them
 * joined as a run, unless one already joins exactly them.
 */
function joinRun(runs: (Run | undefined)[], slots: Slot[], from: number, to: number): void {
  if (from < 0 || to - from < 2) return;
  const existing = runs[from];
  if (existing !== undefined && existing.encodings.length === to - from) {
    let same = true;
    for (let k = 0; k < to - from && same; k++) same = slots[from + k]!.encoded === existing.encodings[k];
    if (same) return;
  }
  const encodings: Uint8Array[] = [];
  let size = 0;
  for (let k = from; k < to; k++) {
    const e = slots[k]!.encoded!;
    encodings.push(e);
    size += e.length;
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const e of encodings) {
    bytes.set(e, at);
    at += e.length;
  }
  runs[from] = { encodings, bytes };
}

/** A log record's attribute as protobuf: the `attributes` tag and a `KeyValue`. */
function protobufAttribute(w: ProtoWriter, key: string, value: OtlpAttributeValue): void {
  w.byte(LOG_ATTRIBUTES);
  keyValue(w, key, value);
}

/** A log record's attribute as OTLP/JSON. */
function jsonAttribute(w: ByteWriter, key: string, value: OtlpAttributeValue): void {
  w.utf8(jsonKeyValue(key, value));
}

/** One `KeyValue` message (its tag already written). */
function keyValue(w: ProtoWriter, key: string, value: OtlpAttributeValue): void {
  const kv = w.begin(RESERVE_SMALL);
  w.byte(KEY_VALUE_KEY);
  w.string(key);
  w.byte(KEY_VALUE_VALUE);
  const any = w.begin(RESERVE_SMALL);
  switch (typeof value) {
    case "string":
      w.byte(ANY_STRING);
      w.string(value);
      break;
    case "boolean":
      w.byte(ANY_BOOL);
      w.byte(value ? 1 : 0);
      break;
    case "number":
      if (!Number.isInteger(value) || value < -INT64_LIMIT || value >= INT64_LIMIT) {
        w.byte(ANY_DOUBLE);
        w.double(value);
      } else {
        w.byte(ANY_INT);
        if (value >= 0) w.varint(value);
        else w.negativeVarint(value);
      }
      break;
    default:
      throw new TypeError(`audit attribute ${JSON.stringify(key)} is a ${typeof value}; only strings, numbers and booleans are encoded`);
  }
  w.end(any);
  w.end(kv);
}

/** Pieces of OTLP/JSON every record repeats, as UTF-8. */
const JSON_PIECES = (() => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  return {
    recordStart: bytes(`{"timeUnixNano":"`),
    observed: bytes(`","observedTimeUnixNano":"`),
    severityBody: bytes(`","severityNumber":${SEVERITY_INFO},"severityText":"${SEVERITY_TEXT}","body":{"stringValue":`),
    eventName: bytes(`},"eventName":`),
    attributes: bytes(`,"attributes":[`),
    recordEnd: bytes(`],"droppedAttributesCount":0}`),
    batchEnd: bytes(`]}]}]}`),
  };
})();

/** A writer of OTLP/JSON requests from `source`, reading records as `shape` says. */
export function jsonLogsWriter<R>(source: LogsSource, shape: LogShape<R>): LogsRequestWriter<R> {
  return new JsonLogsWriter(source, shape);
}

class JsonLogsWriter<R> implements LogsRequestWriter<R> {
  /** The records added so far, comma-separated. */
  private readonly body = new ByteWriter();
  count = 0;
  /** What opens every request, up to its first record. */
  private readonly opening: Uint8Array;

  constructor(
    source: LogsSource,
    private readonly shape: LogShape<R>,
  ) {
    let resource = "";
    for (const key of Object.keys(source.resource)) {
      if (resource !== "") resource += ",";
      resource += jsonKeyValue(key, source.resource[key]!);
    }
    this.opening = new TextEncoder().encode(
      `{"resourceLogs":[{"resource":{"attributes":[${resource}],"droppedAttributesCount":0},"scopeLogs":[{"scope":{"name":${JSON.stringify(source.scope)}},"logRecords":[`,
    );
  }

  add(record: R): void {
    const w = this.body;
    const start = w.length;
    try {
      if (this.count > 0) w.byte(COMMA);
      writeJsonRecord(w, record, this.shape);
    } catch (e) {
      w.truncate(start);
      throw e;
    }
    this.count++;
  }

  take(): Uint8Array {
    const out = new ByteWriter(this.opening.length + this.body.length + JSON_PIECES.batchEnd.length);
    out.raw(this.opening);
    out.raw(this.body.view());
    out.raw(JSON_PIECES.batchEnd);
    this.body.reset();
    this.count = 0;
    return out.view();
  }
}

/** One record as an OTLP/JSON `LogRecord`. */
function writeJsonRecord<R>(w: ByteWriter, r: R, shape: LogShape<R>): void {
  const eventName = shape.eventName(r);
  const ns = nanosText(shape.timeMs(r));
  const event = jsonEventName(eventName);
  w.raw(JSON_PIECES.recordStart);
  w.utf8(ns);
  w.raw(JSON_PIECES.observed);
  w.utf8(ns);
  w.raw(JSON_PIECES.severityBody);
  w.raw(event);
  w.raw(JSON_PIECES.eventName);
  w.raw(event);
  w.raw(JSON_PIECES.attributes);
  writeAttributes(w, jsonAttributes.of(eventName), r, shape.fields(r), COMMA, jsonAttribute);
  w.raw(JSON_PIECES.recordEnd);
}

/** The request for `records` (read as `shape` says) from `source`, as OTLP/JSON (UTF-8). */
export function logsRequestJson<R>(source: LogsSource, records: readonly R[], shape: LogShape<R>): Uint8Array {
  const w = jsonLogsWriter(source, shape);
  for (const r of records) w.add(r);
  return w.take();
}

const COMMA = 0x2c;

let lastEventName = "";
let lastEventJson = new Uint8Array(0);

/** An event name as a JSON string, in UTF-8 (the last one kept). */
function jsonEventName(eventName: string): Uint8Array {
  if (eventName !== lastEventName || lastEventJson.length === 0) {
    lastEventJson = new TextEncoder().encode(JSON.stringify(eventName));
    lastEventName = eventName;
  }
  return lastEventJson;
}


/** One OTLP/JSON `KeyValue`. */
function jsonKeyValue(key: string, value: OtlpAttributeValue): string {
  switch (typeof value) {
    case "string":
      return `{"key":${JSON.stringify(key)},"value":{"stringValue":${JSON.stringify(value)}}}`;
    case "boolean":
      return `{"key":${JSON.stringify(key)},"value":{"boolValue":${value}}}`;
    case "number":
      return `{"key":${JSON.stringify(key)},"value":{"${Number.isInteger(value) ? "intValue" : "doubleValue"}":${JSON.stringify(value)}}}`;
    default:
      throw new TypeError(`audit attribute ${JSON.stringify(key)} is a ${typeof value}; only strings, numbers and booleans are encoded`);
  }
}

/** `ms` as whole, non-negative milliseconds. */
function wholeMs(ms: number): number {
  return ms > 0 ? Math.floor(ms) : 0;
}

/** Nanoseconds since the epoch as decimal text, as OTLP/JSON writes 64-bit integers. */
function nanosText(ms: number): string {
  const whole = wholeMs(ms);
  return whole === 0 ? "0" : `${whole}000000`;
}
