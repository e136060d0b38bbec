/**
 * Strict HTTP/1.x head parser (RFC 9112 §2–§5) as pure functions over bytes. Heads are
 * decoded as latin1 so obs-text round-trips. Anything ambiguous is an error, never a guess:
 * obs-fold, bare CR or LF, NUL, whitespace before a colon, or a malformed start line.
 *
 * @module
 */
import { allocBytes, latin1, spellsAt } from "../net/bytes.ts";
import { HeaderFields, isBlank, type HttpHeader } from "./fields.ts";

export type { HttpHeader } from "./fields.ts";

/** Largest head section (start line + headers + blank line) we accept: beyond it, 431. */
export const MAX_HEAD_BYTES = 32 * 1024;
/** Most header fields in one head: beyond it, 431. */
export const MAX_HEADER_COUNT = 100;

/** A parsed request head. */
export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** `1.0` or `1.1`. */
  readonly version: string;
  readonly headers: readonly HttpHeader[];
}

/** Why a head cannot be parsed, and the status that answers it. */
export interface HeadError {
  readonly kind: "error";
  /** `400` malformed, `431` too large, `505` an HTTP major version other than 1. */
  readonly status: 400 | 431 | 505;
  readonly message: string;
}

/** The outcome of parsing a head from the bytes received so far. */
export type HeadResult<T> = { readonly kind: "incomplete" } | { readonly kind: "ok"; readonly head: T; /** bytes the head used */ readonly size: number } | HeadError;

function headError(status: HeadError["status"], message: string): HeadError {
  return { kind: "error", status, message };
}

function isHeadError(v: object): v is HeadError {
  return (v as { kind?: unknown }).kind === "error";
}

/** Parse a request head. `incomplete` means: read more and call again with all bytes. */
export function parseRequestHead(bytes: Uint8Array): HeadResult<RequestHead> {
  const scan = scanHead(bytes);
  if (scan.kind !== "ok") return scan;
  const text = headText(bytes, scan);
  let start = scan.checked ? requestLineInPlace(bytes, text, scan) : undefined;
  if (start === undefined) {
    // The string checks name what is wrong (the byte checks above pass only valid lines).
    const lines = headLines(text, scan);
    const checked = parseRequestLine(lines[0]!);
    if (isHeadError(checked)) return checked;
    if (!scan.checked) return headerLinesError(lines);
    start = checked;
  }
  return { kind: "ok", head: { method: start.method, target: start.target, version: start.version, headers: new HeaderFields(bytes, scan.starts, scan.colons, scan.ends, text).headers() }, size: scan.size };
}

/**
 * The request line of a scanned head read from its bytes, when it is plainly valid: a known
 * method (given as a constant) or another token, a target of visible ASCII, `HTTP/1.0` or
 * `HTTP/1.1`, single spaces between. `undefined` for anything else, which
 * {@link parseRequestLine} then checks as a string.
 */
function requestLineInPlace(bytes: Uint8Array, text: string, scan: ScannedHead): { method: string; target: string; version: string } | undefined {
  const begin = scan.begin;
  const end = scan.ends[0]!;
  let sp1 = begin;
  while (sp1 < end && bytes[sp1] !== 0x20) {
    if (TOKEN_BYTES[bytes[sp1]!] === 0) return undefined;
    sp1++;
  }
  if (sp1 === begin || sp1 === end) return undefined;
  let sp2 = sp1 + 1;
  while (sp2 < end && bytes[sp2] !== 0x20) {
    const c = bytes[sp2]!;
    if (c < 0x21 || c > 0x7e) return undefined;
    sp2++;
  }
  if (sp2 === sp1 + 1 || end - sp2 !== 9) return undefined;
  if (!spellsAt(bytes, sp2 + 1, HTTP_1_PREFIX)) return undefined;
  const minor = bytes[end - 1];
  if (minor !== 0x30 && minor !== 0x31) return undefined;
  const method = knownMethod(bytes, begin, sp1) ?? text.slice(0, sp1 - begin);
  return { method, target: text.slice(sp1 + 1 - begin, sp2 - begin), version: minor === 0x30 ? "1.0" : "1.1" };
}

/** What the protocol of a request or status line the proxy reads starts with (the minor version follows). */
const HTTP_1_PREFIX = "HTTP/1.";

/** Methods common enough to be matched in place and given as constants. */
const KNOWN_METHODS: readonly string[] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PATCH", "TRACE"];

/** The one of {@link KNOWN_METHODS} that `bytes` from `from` to `to` spell exactly, if any. */
function knownMethod(bytes: Uint8Array, from: number, to: number): string | undefined {
  for (const method of KNOWN_METHODS) if (method.length === to - from && spellsAt(bytes, from, method)) return method;
  return undefined;
}

/**
 * A response head as received. Its fields are read in place ({@link HeaderFields}); `headers`
 * and `reason` are made into strings only when asked for.
 */
export class ResponseHead {
  private reasonText: string | undefined;

  /**
   * @param reasonStart where the reason phrase starts in `fields.bytes` (at `reasonEnd` when there is none)
   * @param reasonEnd where the status line ends (its CR)
   */
  constructor(
    /** `1.0` or `1.1`. */
    readonly version: string,
    readonly status: number,
    readonly fields: HeaderFields,
    readonly reasonStart: number,
    readonly reasonEnd: number,
  ) {}

  /** The reason phrase, possibly empty. */
  get reason(): string {
    return (this.reasonText ??= latin1(this.fields.bytes, this.reasonStart, this.reasonEnd));
  }

  /** Every header field as strings (made on first use). */
  get headers(): readonly HttpHeader[] {
    return this.fields.headers();
  }
}

/** Parse a response head (from an upstream server). */
export function parseResponseHead(bytes: Uint8Array): HeadResult<ResponseHead> {
  const scan = scanHead(bytes);
  if (scan.kind !== "ok") return scan;
  const status = parseStatusLine(bytes, scan.begin, scan.ends[0]!);
  if (!status) return headError(400, `malformed status line ${JSON.stringify(latin1(bytes, scan.begin, Math.min(scan.ends[0]!, scan.begin + 64)))}`);
  if (!scan.checked) return headerLinesError(headLines(headText(bytes, scan), scan));
  // A head read from a large buffer (a bulk read) is copied out, so a response that lives long
  // (a stream, an upgraded connection) holds its head and not the whole buffer.
  let own = bytes;
  if (bytes.buffer.byteLength > HEAD_BUFFER_KEPT_BYTES) {
    own = allocBytes(scan.size);
    own.set(bytes.subarray(0, scan.size));
  }
  const fields = new HeaderFields(own, scan.starts, scan.colons, scan.ends);
  return { kind: "ok", head: new ResponseHead(status.version, status.status, fields, status.reasonStart, scan.ends[0]!), size: scan.size };
}

/**
 * The largest buffer a parsed response head refers to in place; a head in a larger one is
 * copied. Small reads (a 2 KiB read into Node's 8 KiB pool, a Bun or Deno read of a small
 * response) stay in place; a 64 KiB bulk read does not stay pinned by its head.
 */
export const HEAD_BUFFER_KEPT_BYTES = 16 * 1024;

/**
 * `HTTP/1.0` or `HTTP/1.1`, SP, three digits, then nothing or SP and a reason phrase of HTAB,
 * SP, visible ASCII and obs-text (RFC 9112 §4), in `bytes` from `start` to `end`. `undefined`
 * for anything else.
 */
function parseStatusLine(bytes: Uint8Array, start: number, end: number): { version: string; status: number; reasonStart: number } | undefined {
  if (end - start < 12) return undefined;
  if (!spellsAt(bytes, start, HTTP_1_PREFIX)) return undefined;
  const minor = bytes[start + 7];
  if ((minor !== 0x30 && minor !== 0x31) || bytes[start + 8] !== 0x20) return undefined;
  let status = 0;
  for (let i = start + 9; i < start + 12; i++) {
    const d = bytes[i]! - 0x30;
    if (d < 0 || d > 9) return undefined;
    status = status * 10 + d;
  }
  const version = minor === 0x30 ? "1.0" : "1.1";
  if (end - start === 12) return { version, status, reasonStart: end };
  if (bytes[start + 12] !== 0x20) return undefined;
  for (let i = start + 13; i < end; i++) {
    const c = bytes[i]!;
    if ((c < 0x20 && c !== 9) || c === 0x7f) return undefined;
  }
  return { version, status, reasonStart: start + 13 };
}


/**
 * Where a head's lines are, from a scan of its bytes (absolute offsets into them; line 0 is the
 * start line). `colons[n]` is where line `n` has its first `:` when the scan found every header
 * line plainly valid (`checked`): a name of token characters, then a value without controls.
 * Otherwise `checked` is false and the lines are checked again, as strings, by the rules that
 * name the problem (every such head is malformed).
 */
type Scan = { kind: "incomplete" } | HeadError | {
  kind: "ok";
  /** Where the start line begins (after any empty lines before it). */
  begin: number;
  starts: number[];
  colons: number[];
  /** Where each line ends (its CR). */
  ends: number[];
  size: number;
  checked: boolean;
  /** Every byte ORed together: below 0x80 means an all-ASCII head. */
  high: number;
};

type ScannedHead = Extract<Scan, { kind: "ok" }>;

/** Decodes an all-ASCII head, where UTF-8 and latin1 agree, natively and in one call. */
const asciiDecoder = new TextDecoder();

/**
 * Find the end of the head and where its lines are. Leading empty lines before the start line
 * are skipped (RFC 9112 §2.2). Every line must end in CRLF.
 */
function scanHead(bytes: Uint8Array): Scan {
  let begin = 0;
  while (begin + 1 < bytes.length && bytes[begin] === 13 && bytes[begin + 1] === 10) begin += 2;
  const starts: number[] = [begin];
  const ends: number[] = [];
  const colons: number[] = [begin];
  let lineStart = begin;
  let high = 0;
  /** The `:` of the current header line (-1: still in the name). */
  let colon = -1;
  /** Every header line so far is plainly valid (see {@link Scan}). */
  let checked = true;
  const limit = Math.min(bytes.length, MAX_HEAD_BYTES);
  for (let i = begin; i < limit; i++) {
    const b = bytes[i]!;
    high |= b;
    if (b === 10) return headError(400, "bare LF in head");
    if (b !== 13) {
      // Header lines only (the start line has its own rules): a token name up to the first
      // `:`, then no control but HTAB. A blank first byte is obs-fold, not a token character.
      if (ends.length > 0 && checked) {
        if (colon < 0) {
          if (b === 0x3a && i > lineStart) colon = i;
          else if (TOKEN_BYTES[b] === 0) checked = false;
        } else if ((b < 0x20 && b !== 9) || b === 0x7f) {
          checked = false;
        }
      }
      continue;
    }
    if (i + 1 >= bytes.length) return { kind: "incomplete" };
    if (bytes[i + 1] !== 10) return headError(400, "bare CR in head");
    if (i === lineStart) {
      if (ends.length === 0) return headError(400, "empty start line");
      starts.pop(); // the blank line that ends the head
      return { kind: "ok", begin, starts, colons, ends, size: i + 2, checked, high };
    }
    if (ends.length > 0) {
      if (colon < 0) checked = false; // no `:` in a header line
      colons.push(colon);
    }
    ends.push(i);
    if (ends.length > MAX_HEADER_COUNT + 1) {
      return headError(431, `too many header fields (limit ${MAX_HEADER_COUNT})`);
    }
    i++;
    lineStart = i + 1;
    starts.push(lineStart);
    colon = -1;
  }
  if (bytes.length >= MAX_HEAD_BYTES) {
    return headError(431, `header section larger than ${MAX_HEAD_BYTES} bytes`);
  }
  return { kind: "incomplete" };
}

/** The scanned head decoded, from its start line to the end of its last field line. */
function headText(bytes: Uint8Array, scan: ScannedHead): string {
  const last = scan.ends[scan.ends.length - 1]!;
  return scan.high < 0x80 ? asciiDecoder.decode(bytes.subarray(scan.begin, last)) : latin1(bytes, scan.begin, last);
}

/** The scanned head's lines, cut from its {@link headText}. */
function headLines(text: string, scan: ScannedHead): string[] {
  const { begin, starts, ends } = scan;
  const lines: string[] = new Array<string>(ends.length);
  for (let n = 0; n < ends.length; n++) lines[n] = text.slice(starts[n]! - begin, ends[n]! - begin);
  return lines;
}

/** RFC 9110 §5.6.2 token characters, as a table by char code (0x00-0x7F). */
const TOKEN_CHARS: Uint8Array = (() => {
  const table = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") table[c.charCodeAt(0)] = 1;
  return table;
})();

/** {@link TOKEN_CHARS} over every byte value: 1 for a token character, 0 for any other byte. */
const TOKEN_BYTES: Uint8Array = (() => {
  const table = new Uint8Array(256);
  table.set(TOKEN_CHARS);
  return table;
})();

/** A non-empty RFC 9110 token. */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || TOKEN_CHARS[c] === 0) return false;
  }
  return true;
}

/** Non-empty, visible ASCII only: no spaces, controls or obs-text (a request target, a `Host`). */
export function isVisibleAscii(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

function parseRequestLine(line: string): { method: string; target: string; version: string } | HeadError {
  // Exactly two single spaces: method SP target SP version.
  const sp1 = line.indexOf(" ");
  const sp2 = sp1 < 0 ? -1 : line.indexOf(" ", sp1 + 1);
  if (sp2 < 0 || line.indexOf(" ", sp2 + 1) >= 0) return headError(400, `malformed request line ${JSON.stringify(line.slice(0, 64))}`);
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const proto = line.slice(sp2 + 1);
  if (!isToken(method)) return headError(400, `malformed method ${JSON.stringify(method.slice(0, 32))}`);
  if (!isVisibleAscii(target)) return headError(400, `malformed request target ${JSON.stringify(target.slice(0, 64))}`);
  // `HTTP/` DIGIT `.` DIGIT (RFC 9112 §2.3); only major version 1 is served.
  const major = proto.charCodeAt(5) - 0x30;
  const minor = proto.charCodeAt(7) - 0x30;
  if (proto.length !== 8 || !proto.startsWith("HTTP/") || proto.charCodeAt(6) !== 0x2e || !(major >= 0 && major <= 9) || !(minor >= 0 && minor <= 9)) {
    return headError(400, `malformed protocol version ${JSON.stringify(proto.slice(0, 16))}`);
  }
  if (major !== 1) return headError(505, `unsupported protocol version ${proto}`);
  return { method, target, version: minor === 0 ? "1.0" : "1.1" };
}

/**
 * What is wrong with the header lines of a head the byte scan did not pass (see {@link Scan}):
 * every rule is checked again on the strings, so the error names the line and the problem.
 */
function headerLinesError(lines: readonly string[]): HeadError {
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const c0 = line.charCodeAt(0);
    if (c0 === 32 || c0 === 9) return headError(400, "obs-fold (header line starting with whitespace) is not allowed");
    const colon = line.indexOf(":");
    if (colon <= 0) return headError(400, `malformed header line ${JSON.stringify(line.slice(0, 64))}`);
    const name = line.slice(0, colon);
    if (!isToken(name)) return headError(400, `malformed header name ${JSON.stringify(name.slice(0, 64))}`);
    // The value without surrounding blanks: visible ASCII, obs-text, SP and HTAB inside; no
    // other control character (a NUL is named as such).
    let from = colon + 1;
    let to = line.length;
    while (from < to && isBlank(line.charCodeAt(from))) from++;
    while (to > from && isBlank(line.charCodeAt(to - 1))) to--;
    let control = false;
    for (let j = from; j < to; j++) {
      const c = line.charCodeAt(j);
      if (c === 0) return headError(400, `NUL in header ${name}`);
      if ((c < 0x20 && c !== 9) || c === 0x7f) control = true;
    }
    if (control) return headError(400, `control character in header ${name}`);
  }
  // The byte scan and these checks apply the same rules, so this is never reached.
  return headError(400, "malformed header section");
}



/** All values of a header (case-insensitive name), in order. */
export function headerValues(headers: readonly HttpHeader[], name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (const h of headers) if ((h.lower ?? h.name.toLowerCase()) === lower) out.push(h.value);
  return out;
}

/** Comma-separated list items of a header, lower-cased and trimmed, empties dropped. */
export function headerTokens(headers: readonly HttpHeader[], name: string): string[] {
  return listTokens(headerValues(headers, name));
}

/** The comma-separated items of field values, lower-cased and trimmed, empties dropped. */
export function listTokens(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    // the usual value is one token (`keep-alive`, `close`): no list to split
    if (!v.includes(",")) {
      const t = v.trim().toLowerCase();
      if (t) out.push(t);
      continue;
    }
    for (const item of v.split(",")) {
      const t = item.trim().toLowerCase();
      if (t) out.push(t);
    }
  }
  return out;
}
