/**
 * Heads written straight into bytes from the fields of a parsed head, with no strings between:
 * a relayed response's fields are copied as they came (see `fields.ts` for why).
 *
 * @module
 */
import { allocBytes, writeLatin1 } from "../net/bytes.ts";
import { isEndToEndField } from "./headers.ts";
import type { HttpHeader, ResponseHead } from "./parser.ts";

/** `HTTP/1.1 `, the start of every status line the proxy writes. */
const STATUS_LINE_START = "HTTP/1.1 ";

/**
 * The head that relays `response` to a client: `HTTP/1.1`, its status and reason, its
 * end-to-end fields (see `isEndToEndField`; `connection` is what its `Connection` field lists),
 * then `extra`. The same bytes as {@link headBytes} of the status line and those fields as
 * strings (a test compares them): a field already written `name: value` is copied as it came,
 * in runs, any other is written that way.
 */
export function responseHeadBytes(response: ResponseHead, connection: readonly string[], extra: readonly HttpHeader[]): Uint8Array {
  const fields = response.fields;
  const bytes = fields.bytes;
  const status = String(response.status);
  let size = STATUS_LINE_START.length + status.length + 1 + (response.reasonEnd - response.reasonStart) + 2;
  const count = fields.length;
  for (let i = 0; i < count; i++) {
    if (!isEndToEndField(fields, i, connection)) continue;
    if (fields.canonical(i)) size += fields.lineEnd(i) - fields.lineStart(i) + 2;
    else size += fields.colon(i) - fields.lineStart(i) + 2 + Math.max(0, fields.valueEnd(i) - fields.valueStart(i)) + 2;
  }
  for (const h of extra) size += h.name.length + 2 + h.value.length + 2;
  size += 2;

  const out = allocBytes(size);
  let at = writeLatin1(out, 0, STATUS_LINE_START);
  at = writeLatin1(out, at, status);
  out[at++] = 0x20;
  out.set(bytes.subarray(response.reasonStart, response.reasonEnd), at);
  at += response.reasonEnd - response.reasonStart;
  at = crlf(out, at);
  /** The first line of the run of lines to copy as they are, or -1. */
  let run = -1;
  for (let i = 0; i <= count; i++) {
    const copy = i < count && isEndToEndField(fields, i, connection);
    if (copy && fields.canonical(i)) {
      if (run < 0) run = i;
      continue;
    }
    if (run >= 0) {
      // lines are adjacent in the head: one copy for the run, CRLFs included
      const from = fields.lineStart(run);
      const to = fields.lineEnd(i - 1) + 2;
      out.set(bytes.subarray(from, to), at);
      at += to - from;
      run = -1;
    }
    if (!copy) continue;
    const nameStart = fields.lineStart(i);
    const colon = fields.colon(i);
    out.set(bytes.subarray(nameStart, colon), at);
    at += colon - nameStart;
    out[at++] = 0x3a;
    out[at++] = 0x20;
    const from = fields.valueStart(i);
    const to = fields.valueEnd(i);
    if (to > from) {
      out.set(bytes.subarray(from, to), at);
      at += to - from;
    }
    at = crlf(out, at);
  }
  at = crlf(out, writeFields(out, at, extra));
  // Every byte must be written: the buffer may come from a pool and hold anything before.
  if (at !== size) throw new Error(`response head written as ${at} bytes, ${size} counted`);
  return out;
}

/**
 * A head as latin1 bytes: `startLine`, then `headers` as `name: value` lines, then the blank
 * line, written straight into one buffer (chars above 0xFF keep their low byte, as
 * `latin1Bytes` does).
 */
export function headBytes(startLine: string, headers: readonly HttpHeader[]): Uint8Array {
  let size = startLine.length + 2 + 2;
  for (const h of headers) size += h.name.length + 2 + h.value.length + 2;
  const out = allocBytes(size);
  crlf(out, writeFields(out, crlf(out, writeLatin1(out, 0, startLine)), headers));
  return out;
}

/** Write `headers` as `name: value` lines at `at`; where the next byte goes. */
function writeFields(out: Uint8Array, at: number, headers: readonly HttpHeader[]): number {
  for (const h of headers) {
    at = writeLatin1(out, at, h.name);
    out[at++] = 0x3a;
    out[at++] = 0x20;
    at = writeLatin1(out, at, h.value);
    at = crlf(out, at);
  }
  return at;
}

/** Write CRLF at `at`; where the next byte goes. */
function crlf(out: Uint8Array, at: number): number {
  out[at] = 13;
  out[at + 1] = 10;
  return at + 2;
}
