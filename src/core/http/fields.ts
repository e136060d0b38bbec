/**
 * The header fields of a parsed head read in place: where each field's name and value lie in
 * the bytes received, with strings made only for the fields a caller asks about. Relaying a
 * response needs a handful of its fields as strings (framing, `Connection`); the rest are copied
 * to the client as bytes (see `head-bytes.ts`). On Bun every string cut from a head is an
 * allocation of its own, and a response's fields as strings cost about a fifth of the proxy's CPU
 * per keep-alive request (BENCHMARKS.md, profile note 16).
 *
 * @module
 */
import { latin1, spellsAt, spellsLowerAt } from "../net/bytes.ts";

/** One header field as received (name keeps its case). */
export interface HttpHeader {
  readonly name: string;
  readonly value: string;
  /** The name in lower case; set by the parser, so lookups need not lower-case every name again. */
  readonly lower?: string;
}

/** The header fields of a valid head, as offsets into its bytes. */
export class HeaderFields {
  private list: HttpHeader[] | undefined;

  /**
   * @param bytes the bytes the head was parsed from; never written to afterwards (read buffers
   *   are not reused while a chunk of them is referred to, see `BufferedReader`)
   * @param starts where each line starts: the head's start line first, then each field's line
   * @param colons where each field line has its first `:` (index 0, the start line's, is unused)
   * @param ends where each line ends (its CR)
   * @param text the head already decoded from its start line on, when the caller has it: names
   *   and values are then cut from it, else decoded from `bytes` one by one
   */
  constructor(
    readonly bytes: Uint8Array,
    private readonly starts: readonly number[],
    private readonly colons: readonly number[],
    private readonly ends: readonly number[],
    private readonly text?: string,
  ) {}

  /** The chars of `bytes` from `from` to `to`. */
  private cut(from: number, to: number): string {
    if (this.text === undefined) return latin1(this.bytes, from, to);
    const begin = this.starts[0]!;
    return this.text.slice(from - begin, to - begin);
  }

  /** How many fields. */
  get length(): number {
    return this.starts.length - 1;
  }

  /** Whether field `i`'s name is `lower` (an ASCII name in lower case), in any case. */
  nameIs(i: number, lower: string): boolean {
    const start = this.starts[i + 1]!;
    return this.colons[i + 1]! - start === lower.length && spellsLowerAt(this.bytes, start, lower);
  }

  /** Field `i`'s name as received. */
  name(i: number): string {
    return this.cut(this.starts[i + 1]!, this.colons[i + 1]!);
  }

  /** Where field `i`'s value starts: after the `:` and any blanks. */
  valueStart(i: number): number {
    return skipBlanks(this.bytes, this.colons[i + 1]! + 1, this.ends[i + 1]!);
  }

  /** Where field `i`'s value ends: before any trailing blanks. */
  valueEnd(i: number): number {
    return trimBlanks(this.bytes, this.colons[i + 1]! + 1, this.ends[i + 1]!);
  }

  /** Field `i`'s value without the blanks around it. */
  value(i: number): string {
    const from = this.valueStart(i);
    return this.cut(from, Math.max(from, this.valueEnd(i)));
  }

  /** Every value of the fields named `lower` (an ASCII name in lower case), in order. */
  values(lower: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.length; i++) if (this.nameIs(i, lower)) out.push(this.value(i));
    return out;
  }

  /**
   * The comma-separated items of the fields named `lower`, lower-cased and trimmed, empties
   * dropped: what `listTokens` gives for their values. An item that is one of
   * {@link COMMON_TOKENS} is matched in place and given as that constant, with no string made.
   */
  tokens(lower: string): string[] {
    const out: string[] = [];
    const bytes = this.bytes;
    for (let i = 0; i < this.length; i++) {
      if (!this.nameIs(i, lower)) continue;
      const end = this.valueEnd(i);
      let from = this.valueStart(i);
      while (from < end) {
        let comma = from;
        while (comma < end && bytes[comma] !== 0x2c) comma++;
        const a = skipBlanks(bytes, from, comma);
        const b = trimBlanks(bytes, a, comma);
        const known = a < b ? commonToken(bytes, a, b) : undefined;
        if (known !== undefined) out.push(known);
        else {
          // Anything else goes the string way, with JavaScript's own trim and lower-casing.
          const t = latin1(bytes, from, comma).trim().toLowerCase();
          if (t) out.push(t);
        }
        from = comma + 1;
      }
    }
    return out;
  }

  /** The bytes of field `i`'s line: from its name to its CR (the CRLF not included). */
  lineStart(i: number): number {
    return this.starts[i + 1]!;
  }

  /** See {@link lineStart}. */
  lineEnd(i: number): number {
    return this.ends[i + 1]!;
  }

  /** Where field `i`'s name ends: its `:`. */
  colon(i: number): number {
    return this.colons[i + 1]!;
  }

  /**
   * Whether field `i`'s line already reads `name: value` as the proxy writes a field: one space
   * after the colon, no blanks around the value. Such a line is copied as it is.
   */
  canonical(i: number): boolean {
    const colon = this.colons[i + 1]!;
    return this.bytes[colon + 1] === 0x20 && this.valueStart(i) === colon + 2 && this.valueEnd(i) === this.ends[i + 1];
  }

  /** The fields as strings, made once, on first use: names as received, values trimmed. */
  headers(): readonly HttpHeader[] {
    if (this.list) return this.list;
    const { bytes, starts, colons, ends } = this;
    const list: HttpHeader[] = new Array<HttpHeader>(this.length);
    for (let n = 1; n < starts.length; n++) {
      const start = starts[n]!;
      const colon = colons[n]!;
      const from = skipBlanks(bytes, colon + 1, ends[n]!);
      const value = this.cut(from, trimBlanks(bytes, from, ends[n]!));
      const known = knownFieldName(bytes, start, colon);
      if (known !== undefined) list[n - 1] = { name: known.name, value, lower: known.lower };
      else {
        const name = this.cut(start, colon);
        list[n - 1] = { name, value, lower: name.toLowerCase() };
      }
    }
    return (this.list = list);
  }
}

/** A set of field names (ASCII, lower case) that fields are matched against in place. */
export class FieldNames {
  /** The names by length: most fields are ruled out by their name's length alone. */
  private readonly byLength: (string[] | undefined)[] = [];

  constructor(names: Iterable<string>) {
    for (const name of names) (this.byLength[name.length] ??= []).push(name);
  }

  /** Whether field `i` of `fields` has one of these names. */
  matches(fields: HeaderFields, i: number): boolean {
    const candidates = this.byLength[fields.colon(i) - fields.lineStart(i)];
    if (candidates === undefined) return false;
    for (const name of candidates) if (fields.nameIs(i, name)) return true;
    return false;
  }
}

/** A field name as written and in lower case. */
export interface FieldName {
  readonly name: string;
  readonly lower: string;
}

/**
 * Field names common enough in requests and responses to be matched in place and given as
 * constants, each as usually written and in lower case (as HTTP/2-minded clients write them).
 */
const KNOWN_FIELD_NAMES: readonly (FieldName[] | undefined)[] = (() => {
  const names = [
    "Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Authorization", "Cache-Control",
    "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date", "ETag", "Expires", "If-Modified-Since",
    "If-None-Match", "Keep-Alive", "Last-Modified", "Location", "Origin", "Pragma", "Proxy-Authorization", "Proxy-Connection",
    "Range", "Referer", "Server", "Set-Cookie", "TE", "Transfer-Encoding", "Upgrade", "Vary", "Via", "WWW-Authenticate",
  ];
  const byLength: FieldName[][] = [];
  for (const name of names) {
    const lower = name.toLowerCase();
    (byLength[name.length] ??= []).push({ name, lower }, { name: lower, lower });
  }
  return byLength;
})();

/** The {@link KNOWN_FIELD_NAMES} entry that `bytes` from `from` to `to` spell exactly, if any. */
function knownFieldName(bytes: Uint8Array, from: number, to: number): FieldName | undefined {
  const candidates = KNOWN_FIELD_NAMES[to - from];
  if (candidates === undefined) return undefined;
  for (const known of candidates) if (spellsAt(bytes, from, known.name)) return known;
  return undefined;
}

/** List items common enough in `Connection` and `Transfer-Encoding` to be matched in place. */
const COMMON_TOKENS: readonly string[] = ["keep-alive", "close", "chunked", "upgrade"];

/** The one of {@link COMMON_TOKENS} that `bytes` from `from` to `to` spell in any case, if any. */
function commonToken(bytes: Uint8Array, from: number, to: number): string | undefined {
  for (const token of COMMON_TOKENS) if (token.length === to - from && spellsLowerAt(bytes, from, token)) return token;
  return undefined;
}

/** SP or HTAB. */
export function isBlank(c: number): boolean {
  return c === 0x20 || c === 9;
}

/** Where the blanks (SP, HTAB) of `bytes` from `from` end, at most `to`. */
export function skipBlanks(bytes: Uint8Array, from: number, to: number): number {
  while (from < to && isBlank(bytes[from]!)) from++;
  return from;
}

/** Where `bytes` from `from` to `to` end without their trailing blanks (SP, HTAB). */
export function trimBlanks(bytes: Uint8Array, from: number, to: number): number {
  while (to > from && isBlank(bytes[to - 1]!)) to--;
  return to;
}
