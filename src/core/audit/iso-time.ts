/**
 * `event.timestamp` text (RFC 3339, UTC, milliseconds: what `Date.prototype.toISOString` gives)
 * of a record's time. Records come many to a millisecond under load, so the last text is kept
 * and reused while the millisecond is the same.
 *
 * @module
 */

let lastMs = Number.NaN;
let lastText = "";

/** `new Date(ms).toISOString()`, reusing the last answer for the same `ms`. */
export function isoTimestamp(ms: number): string {
  if (ms !== lastMs) {
    lastText = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastText;
}
