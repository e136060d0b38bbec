/**
 * Strict HTTP/1.x head parser (RFC 9112 §2–§5) as pure functions over bytes. Heads are
 * decoded as latin1 so obs-text round-trips. Anything ambiguous is an error, never a guess:
 * obs-fold, bare CR or LF, NUL, whitespace before a colon, or a malformed start line.
 *
 * @module
 */
import { latin1 } from "../net/bytes.ts";

/** Largest head section (start line + headers + blank line) we accept: beyond it, 431. */
export const MAX_HEAD_BYTES = 32 * 1024;
/** Most header fields in one head: beyond it, 431. */
export const MAX_HEADER_COUNT = 100;

/** One header field as received (name keeps its case). */
export interface HttpHeader {
  readonly name: string;
  readonly value: string;
  /** The name in lower case; set by the parser, so lookups need not lower-case every name again. */
  readonly lower?: string;
}

/** A parsed request head. */
export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** `1.0` or `1.1`. */
  readonly version: string;
  readonly headers: readonly HttpHeader[];
}

/** A parsed response head. */
export interface ResponseHead {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
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
  const split = splitHead(bytes);
  if (split.kind !== "ok") return split;
  const { lines, size } = split;
  const start = parseRequestLine(lines[0]!);
  if (isHeadError(start)) return start;
  const headers = split.checked ? checkedHeaderLines(lines, split.colons) : parseHeaderLines(lines);
  if (isHeadError(headers)) return headers;
  return { kind: "ok", head: { method: start.method, target: start.target, version: start.version, headers }, size };
}

/** Parse a response head (from an upstream server). */
export function parseResponseHead(bytes: Uint8Array): HeadResult<ResponseHead> {
  const split = splitHead(bytes);
  if (split.kind !== "ok") return split;
  const { lines, size } = split;
  const status = parseStatusLine(lines[0]!);
  if (!status) return headError(400, `malformed status line ${JSON.stringify(lines[0]!.slice(0, 64))}`);
  const headers = split.checked ? checkedHeaderLines(lines, split.colons) : parseHeaderLines(lines);
  if (isHeadError(headers)) return headers;
  return { kind: "ok", head: { version: status.version, status: status.status, reason: status.reason, headers }, size };
}

/**
 * `HTTP/1.0` or `HTTP/1.1`, SP, three digits, then nothing or SP and a reason phrase of HTAB,
 * SP, visible ASCII and obs-text (RFC 9112 §4). `undefined` for anything else.
 */
function parseStatusLine(line: string): { version: string; status: number; reason: string } | undefined {
  if (line.length < 12 || !line.startsWith("HTTP/1.") || line.charCodeAt(8) !== 0x20) return undefined;
  const minor = line.charCodeAt(7);
  if (minor !== 0x30 && minor !== 0x31) return undefined;
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = line.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    status = status * 10 + d;
  }
  if (line.length === 12) return { version: minor === 0x30 ? "1.0" : "1.1", status, reason: "" };
  if (line.charCodeAt(12) !== 0x20) return undefined;
  for (let i = 13; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if ((c < 0x20 && c !== 9) || c === 0x7f) return undefined;
  }
  return { version: minor === 0x30 ? "1.0" : "1.1", status, reason: line.slice(13) };
}

/**
 * A head cut into lines. `colons[n]` is where header line `n` (1-based, as in `lines`) has its
 * first `:`, when the byte scan found every header line plainly valid (`checked`): a name of
 * token characters, then a value without controls. Otherwise `checked` is false and the lines
 * are checked again, as strings, by the rules that name the problem.
 */
type Split = { kind: "incomplete" } | { kind: "ok"; lines: string[]; size: number; colons: number[]; checked: boolean } | HeadError;

/** Decodes an all-ASCII head, where UTF-8 and latin1 agree, natively and in one call. */
const asciiDecoder = new TextDecoder();

/**
 * Find the end of the head and cut it into lines. Leading empty lines before the start line
 * are skipped (RFC 9112 §2.2). Every line must end in CRLF. The head is decoded once, as a
 * whole, and the lines are cut from that string.
 */
function splitHead(bytes: Uint8Array): Split {
  let begin = 0;
  while (begin + 1 < bytes.length && bytes[begin] === 13 && bytes[begin + 1] === 10) begin += 2;
  /** Where each line ends (its CR), relative to `begin`. */
  const ends: number[] = [];
  /** Where each header line has its first `:`, relative to the line's start (index 0: the start line). */
  const colons: number[] = [0];
  let lineStart = begin;
  let high = 0;
  /** The `:` of the current header line, relative to `begin` (-1: still in the name). */
  let colon = -1;
  /** Every header line so far is plainly valid (see {@link Split}). */
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
          if (b === 0x3a && i > lineStart) colon = i - begin;
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
      const text = high < 0x80 ? asciiDecoder.decode(bytes.subarray(begin, i)) : latin1(bytes, begin, i);
      const lines: string[] = new Array<string>(ends.length);
      let from = 0;
      for (let n = 0; n < ends.length; n++) {
        lines[n] = text.slice(from, ends[n]);
        from = ends[n]! + 2;
      }
      return { kind: "ok", lines, size: i + 2, colons, checked };
    }
    if (ends.length > 0) {
      if (colon < 0) checked = false; // no `:` in a header line
      colons.push(colon - (lineStart - begin));
    }
    ends.push(i - begin);
    if (ends.length > MAX_HEADER_COUNT + 1) {
      return headError(431, `too many header fields (limit ${MAX_HEADER_COUNT})`);
    }
    i++;
    lineStart = i + 1;
    colon = -1;
  }
  if (bytes.length >= MAX_HEAD_BYTES) {
    return headError(431, `header section larger than ${MAX_HEAD_BYTES} bytes`);
  }
  return { kind: "incomplete" };
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
function isToken(text: string): boolean {
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

function parseHeaderLines(lines: readonly string[]): HttpHeader[] | HeadError {
  const headers: HttpHeader[] = [];
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
    headers.push({ name, value: line.slice(from, to), lower: name.toLowerCase() });
  }
  return headers;
}

/**
 * The header fields of lines the byte scan in {@link splitHead} already found valid, cut at the
 * `:` it found: the same fields {@link parseHeaderLines} gives for them, without checking again.
 */
function checkedHeaderLines(lines: readonly string[], colons: readonly number[]): HttpHeader[] {
  const headers: HttpHeader[] = new Array<HttpHeader>(lines.length - 1);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = colons[i]!;
    const name = line.slice(0, colon);
    let from = colon + 1;
    let to = line.length;
    while (from < to && isBlank(line.charCodeAt(from))) from++;
    while (to > from && isBlank(line.charCodeAt(to - 1))) to--;
    headers[i - 1] = { name, value: line.slice(from, to), lower: name.toLowerCase() };
  }
  return headers;
}

/** SP or HTAB. */
function isBlank(c: number): boolean {
  return c === 32 || c === 9;
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
  const out: string[] = [];
  for (const v of headerValues(headers, name)) {
    for (const item of v.split(",")) {
      const t = item.trim().toLowerCase();
      if (t) out.push(t);
    }
  }
  return out;
}
