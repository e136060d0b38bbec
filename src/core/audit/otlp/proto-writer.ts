/**
 * A minimal protocol-buffers writer (the wire format of https://protobuf.dev/programming-guides/encoding/)
 * for the OTLP log encoder (`logs-request.ts`): varints, fixed64, length-delimited strings and
 * nested messages, into one growing buffer reused from batch to batch. Every length is written
 * as the shortest varint, as protobuf's own writers do, so the bytes equal theirs.
 *
 * A nested message reserves room for its length, is written, and then gets its length; when the
 * length's varint needs another size than was reserved, the message moves by the difference.
 *
 * @module
 */

/** First size of the writer's buffer. */
export const PROTO_WRITER_INITIAL_BYTES = 64 * 1024;

/**
 * Largest buffer a writer keeps from one batch to the next (a batch of 512 ordinary records
 * takes about 300 KB); one grown past it by an unusual batch is let go at the next start.
 */
export const PROTO_WRITER_KEEP_BYTES = 1024 * 1024;

/** Wire types (the low three bits of a tag). */
export const WIRE = { varint: 0, fixed64: 1, bytes: 2 } as const;

/** The tag of field `field` with wire type `wire`, as one byte (fields 1 to 15). */
export function tag(field: number, wire: number): number {
  if (!Number.isInteger(field) || field < 1 || field > 15) throw new RangeError(`a one-byte protobuf tag holds fields 1 to 15; got ${field}`);
  return (field << 3) | wire;
}

/** Bytes the shortest varint of `n` (a whole number, 0 ≤ n < 2^53) takes. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

const utf8 = new TextEncoder();

/** Bytes into one growing buffer, reused from batch to batch: the base of the protobuf writer, and the JSON writer itself. */
export class ByteWriter {
  protected buf: Uint8Array;
  protected pos = 0;

  /** `size`: the buffer to start with (it grows as needed; at least 16 bytes). */
  constructor(size: number = PROTO_WRITER_INITIAL_BYTES) {
    this.buf = new Uint8Array(Math.max(16, size));
  }

  /** Start again, keeping the buffer unless a large batch grew it past {@link PROTO_WRITER_KEEP_BYTES}. */
  reset(): void {
    this.pos = 0;
    if (this.buf.length > PROTO_WRITER_KEEP_BYTES) this.buf = new Uint8Array(PROTO_WRITER_INITIAL_BYTES);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** What was written, without a copy: valid until the next write or {@link reset}. */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** Drop what was written from `at` on (`at` at most {@link length}). */
  truncate(at: number): void {
    if (at >= 0 && at < this.pos) this.pos = at;
  }

  /** A copy of what was written from `start` on. */
  copyFrom(start: number): Uint8Array {
    return this.buf.slice(start, this.pos);
  }

  /** Room for `n` more bytes. */
  protected ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Bytes already encoded (a constant part of every message). */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** `s` as UTF-8, with no length before it (lone surrogates become U+FFFD). */
  utf8(s: string): void {
    const n = s.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 128) {
        // the rest is not all ASCII: the platform's encoder takes it from here
        this.pos = p;
        const rest = s.length - i;
        this.ensure(rest * 3);
        this.pos += utf8.encodeInto(s.slice(i), this.buf.subarray(this.pos, this.pos + rest * 3)).written;
        return;
      }
      buf[p++] = c;
    }
    this.pos = p;
  }
}

/** The protobuf writer. */
export class ProtoWriter extends ByteWriter {
  /** A varint of a whole number 0 ≤ n < 2^53. */
  varint(n: number): void {
    this.ensure(10);
    this.pos = this.varintAt(this.pos, n);
  }

  /** Write the varint of `n` (0 ≤ n < 2^53) at `p`, in room already there; returns where it ends. */
  private varintAt(p: number, n: number): number {
    const buf = this.buf;
    while (n >= 128) {
      buf[p++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    buf[p++] = n;
    return p;
  }

  /** A varint of a negative 64-bit integer, in two's complement (always ten bytes). */
  negativeVarint(n: number): void {
    let v = BigInt.asUintN(64, BigInt(n));
    this.ensure(10);
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  /** A little-endian fixed64 of `hi · 2^32 + lo`. */
  fixed64(hi: number, lo: number): void {
    this.ensure(8);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = lo & 255;
    buf[p++] = (lo >>> 8) & 255;
    buf[p++] = (lo >>> 16) & 255;
    buf[p++] = lo >>> 24;
    buf[p++] = hi & 255;
    buf[p++] = (hi >>> 8) & 255;
    buf[p++] = (hi >>> 16) & 255;
    buf[p++] = hi >>> 24;
    this.pos = p;
  }

  /** A little-endian IEEE 754 double. */
  double(v: number): void {
    this.ensure(8);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).setFloat64(0, v, true);
    this.pos += 8;
  }

  /**
   * A length-delimited UTF-8 string (lone surrogates become U+FFFD, as with every UTF-8 encoder):
   * {@link utf8} after room for its length, one byte for a string under 128 characters (the
   * usual, ASCII case), room for three bytes a character otherwise.
   */
  string(s: string): void {
    const length = this.begin(s.length < 128 ? 1 : varintSize(s.length * 3));
    this.utf8(s);
    this.end(length);
  }

  /** Start a nested message: reserves `reserve` bytes for its length; pass the result to {@link end}. */
  begin(reserve: number): number {
    this.ensure(reserve);
    const at = this.pos;
    this.pos += reserve;
    return at * 8 + reserve; // where the length goes and how much room it has, in one number
  }

  /** End the nested message {@link begin} started: its length goes before it. */
  end(begun: number): void {
    const reserved = begun % 8;
    this.fitLength((begun - reserved) / 8, reserved);
  }

  /**
   * Write the length of what follows `at + reserved` (up to the end) at `at`, moving it when the
   * length's varint is not `reserved` bytes long.
   */
  private fitLength(at: number, reserved: number): void {
    const from = at + reserved;
    const len = this.pos - from;
    const size = varintSize(len);
    if (size !== reserved) {
      this.ensure(size - reserved);
      this.buf.copyWithin(at + size, from, this.pos);
      this.pos += size - reserved;
    }
    this.varintAt(at, len);
  }
}
