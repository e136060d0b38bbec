/**
 * Decision records in batches for the export worker: each record's fields appended, in a fixed
 * order, to one flat array that is posted as a whole. A flat array of strings, numbers and
 * booleans is the cheapest thing to clone between threads (about half the cost of an array of
 * objects), and it costs the proxy's thread a few hundred nanoseconds per record, where the SDK's
 * log record and the OTLP serialisation cost it tens of microseconds (BENCHMARKS.md).
 *
 * @module
 */
import type { DecisionRecord } from "../../core/audit/events.ts";

/** The fields of one record, in the order they are appended. */
const FIELDS = ["timestamp", "scope", "decision", "source", "reason", "override", "protocol", "host", "port", "method", "client", "mode"] as const satisfies readonly (keyof DecisionRecord)[];

/** Compile-time check that {@link FIELDS} lists every field of a record (a new one must be added). */
type Unlisted = Exclude<keyof DecisionRecord, (typeof FIELDS)[number]>;
const EVERY_FIELD_LISTED: [Unlisted] extends [never] ? true : { missing: Unlisted } = true;
void EVERY_FIELD_LISTED;

/** Array slots one record takes. */
export const RECORD_SLOTS = FIELDS.length;

/** One slot of a batch. */
export type Slot = string | number | boolean | undefined;

/** Append `r` to `batch`. */
export function appendRecord(batch: Slot[], r: DecisionRecord): void {
  batch.push(r.timestamp, r.scope, r.decision, r.source, r.reason, r.override, r.protocol, r.host, r.port, r.method, r.client, r.mode);
}

/**
 * The records of `batch`, in order. Throws a `TypeError` naming the length when `batch` does not
 * hold whole records (a message that is not a batch).
 */
export function readRecords(batch: readonly Slot[]): DecisionRecord[] {
  if (!Array.isArray(batch) || batch.length % RECORD_SLOTS !== 0) {
    throw new TypeError(`an audit batch holds whole records of ${RECORD_SLOTS} slots; got ${Array.isArray(batch) ? `length ${batch.length}` : typeof batch}`);
  }
  const records: DecisionRecord[] = [];
  for (let i = 0; i < batch.length; i += RECORD_SLOTS) {
    const r = {} as Record<(typeof FIELDS)[number], Slot>;
    for (let f = 0; f < RECORD_SLOTS; f++) {
      const v = batch[i + f];
      if (v !== undefined) r[FIELDS[f]!] = v;
    }
    records.push(r as unknown as DecisionRecord);
  }
  return records;
}
