/**
 * Message body framing (RFC 9112 §6): how long a body is, and never a guess when a request is
 * ambiguous (the request-smuggling cases: Content-Length with Transfer-Encoding, conflicting
 * Content-Lengths).
 *
 * @module
 */
import type { HeaderFields } from "./fields.ts";
import { headerTokens, headerValues, type RequestHead, type ResponseHead } from "./parser.ts";

/** How a body is delimited. */
export type BodyFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  /** Response only: the body runs until the server closes (RFC 9112 §6.3 rule 8). */
  | { readonly kind: "close" };

/** A framing problem: the status to answer and what was wrong. */
export interface FramingError {
  readonly status: 400 | 501 | 502;
  readonly message: string;
}

/** Longest Content-Length we accept, in digits (keeps the value an exact JS integer). */
const MAX_CONTENT_LENGTH_DIGITS = 15;

/** What the `Content-Length` fields of a message say. */
type ContentLength =
  | { readonly kind: "absent" }
  | { readonly kind: "length"; readonly length: number }
  /** Not digits, too long, or values that disagree: the message cannot be framed. */
  | { readonly kind: "invalid"; readonly message: string };

/** The single length the `Content-Length` field values say (RFC 9112 §6.3 rule 5: a list of one value is that value). */
function contentLength(values: readonly string[]): ContentLength {
  if (values.length === 0) return { kind: "absent" };
  // The usual case: one value of plain digits, no list, no leading zeros.
  if (values.length === 1 && isPlainLength(values[0]!)) return { kind: "length", length: Number(values[0]) };
  let found: string | undefined;
  for (const v of values) {
    for (const item of v.split(",")) {
      const t = item.replace(/^[ \t]+|[ \t]+$/g, ""); // OWS is SP and HTAB only (RFC 9110 §5.6.1)
      if (!/^\d+$/.test(t) || t.length > MAX_CONTENT_LENGTH_DIGITS) return { kind: "invalid", message: `invalid Content-Length ${JSON.stringify(v)}` };
      const canonical = t.replace(/^0+(?=\d)/, "");
      if (found !== undefined && found !== canonical) {
        return { kind: "invalid", message: `conflicting Content-Length values ${JSON.stringify(values.join(", "))}` };
      }
      found = canonical;
    }
  }
  return { kind: "length", length: Number(found) };
}

/** Digits only, at most {@link MAX_CONTENT_LENGTH_DIGITS}, no leading zero unless it is `0`. */
function isPlainLength(v: string): boolean {
  return v.length <= MAX_CONTENT_LENGTH_DIGITS && !(v.length > 1 && v.charCodeAt(0) === 0x30) && isDigits(v);
}

/** Non-empty, ASCII digits only. */
export function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * The Content-Length of fields read in place: a single field of plain digits (the usual case) is
 * read from its bytes by the rules of {@link isPlainLength}; anything else as strings.
 */
function fieldsContentLength(fields: HeaderFields): ContentLength {
  let found = -1;
  for (let i = 0; i < fields.length; i++) {
    if (!fields.nameIs(i, "content-length")) continue;
    if (found >= 0) return contentLength(fields.values("content-length"));
    found = i;
  }
  if (found < 0) return { kind: "absent" };
  const bytes = fields.bytes;
  const from = fields.valueStart(found);
  const to = fields.valueEnd(found);
  const digits = to - from;
  if (digits <= 0 || digits > MAX_CONTENT_LENGTH_DIGITS || (digits > 1 && bytes[from] === 0x30)) return contentLength(fields.values("content-length"));
  let length = 0;
  for (let i = from; i < to; i++) {
    const d = bytes[i]! - 0x30;
    if (d < 0 || d > 9) return contentLength(fields.values("content-length"));
    length = length * 10 + d;
  }
  return { kind: "length", length };
}

/** Framing of a request body, or why the request must be refused. */
export function requestFraming(head: RequestHead): BodyFraming | FramingError {
  const te = headerTokens(head.headers, "transfer-encoding");
  const cl = contentLength(headerValues(head.headers, "content-length"));
  if (cl.kind === "invalid") return { status: 400, message: cl.message };
  if (te.length > 0 || headerValues(head.headers, "transfer-encoding").length > 0) {
    if (cl.kind === "length") return { status: 400, message: "both Content-Length and Transfer-Encoding present" };
    if (head.version === "1.0") return { status: 400, message: "Transfer-Encoding in an HTTP/1.0 request" };
    const codings = JSON.stringify(te.join(", "));
    // RFC 9112 §6.3: without chunked last the body length cannot be determined (400, close);
    // chunked applied twice is not allowed either (RFC 9112 §6.1).
    if (te.at(-1) !== "chunked") return { status: 400, message: `Transfer-Encoding ${codings} does not end in chunked: the body length cannot be determined` };
    if (te.indexOf("chunked") !== te.length - 1) return { status: 400, message: `Transfer-Encoding ${codings} applies chunked more than once` };
    // Other codings before chunked are valid, but this proxy re-frames every body it forwards.
    if (te.length !== 1) return { status: 501, message: `unsupported Transfer-Encoding ${codings}` };
    return { kind: "chunked" };
  }
  // An explicit `Content-Length: 0` is kept (origins may demand a length on POST, RFC 9110 §8.6).
  return cl.kind === "absent" ? { kind: "none" } : { kind: "length", length: cl.length };
}

/** True when a message of this framing has body bytes to read (a zero length has none). */
export function carriesBody(framing: BodyFraming): boolean {
  return framing.kind === "chunked" || framing.kind === "close" || (framing.kind === "length" && framing.length > 0);
}

/** Framing of a response body, given the request method it answers. */
export function responseFraming(head: ResponseHead, requestMethod: string): BodyFraming | FramingError {
  const s = head.status;
  if (requestMethod === "HEAD" || (s >= 100 && s < 200) || s === 204 || s === 304) return { kind: "none" };
  const te = head.fields.tokens("transfer-encoding");
  if (te.length > 0) {
    // Only plain chunked is re-framed; other codings would need the Transfer-Encoding header
    // to survive, and this proxy re-frames every body it forwards.
    if (te.length !== 1 || te[0] !== "chunked") {
      return { status: 502, message: `unsupported upstream Transfer-Encoding ${JSON.stringify(te.join(", "))}` };
    }
    return { kind: "chunked" };
  }
  const cl = fieldsContentLength(head.fields);
  if (cl.kind === "invalid") return { status: 502, message: `upstream sent ${cl.message}` };
  if (cl.kind === "absent") return { kind: "close" };
  return cl.length === 0 ? { kind: "none" } : { kind: "length", length: cl.length };
}

/** True when the value is a {@link FramingError}. */
export function isFramingError(v: BodyFraming | FramingError): v is FramingError {
  return "status" in v;
}
