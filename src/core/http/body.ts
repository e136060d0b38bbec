/**
 * Streaming of message bodies from a {@link BufferedReader} to a {@link Conn}, re-framed on
 * the way: chunked input is decoded and re-encoded (extensions and trailers dropped), so the
 * next hop never sees framing we did not produce. Nothing is buffered beyond one read.
 *
 * @module
 */
import { concatBytes, indexOfCrlf, latin1, latin1Bytes } from "../net/bytes.ts";
import { ReadTimeoutError, type BufferedReader } from "../net/reader.ts";
import { withTimeout } from "../net/timeout.ts";
import type { BodyFraming } from "./framing.ts";

/** Longest chunk-size line (size, extensions, CRLF) we accept. */
export const MAX_CHUNK_LINE_BYTES = 4096;
/**
 * Most hex digits of a chunk size: a 64-bit length needs 16. More is refused at once, leading
 * zeros included (RFC 9112 §7.1 lets a recipient bound what it parses).
 */
export const MAX_CHUNK_SIZE_DIGITS = 16;
/**
 * Largest chunk we accept: 2^53 - 1 bytes (8 PiB), the largest length kept exact as a JS number
 * and far beyond any real body. A larger size is refused at once, not waited for.
 */
export const MAX_CHUNK_SIZE = Number.MAX_SAFE_INTEGER;
/** Largest trailer section we read (and drop) after the last chunk. */
export const MAX_TRAILER_BYTES = 32 * 1024;
/** Largest slice handed to one write while copying a body. */
export const BODY_SLICE_BYTES = 256 * 1024;
/**
 * Largest already-received first body slice sent in the same write as the head before it
 * (`CopyOptions.head`): one write instead of two for a small response, at the cost of copying
 * at most this many bytes once.
 */
export const HEAD_COALESCE_BYTES = 16 * 1024;

/** The body was malformed or cut short by the side that sent it. */
export class BodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BodyError";
  }
}

/** The sender paused inside a body for longer than the idle limit. */
export class BodyIdleError extends BodyError {
  constructor(readonly ms: number) {
    super(`no body byte within ${ms} ms`);
    this.name = "BodyIdleError";
  }
}

/**
 * The destination took no body byte for longer than the idle limit (an origin that stopped
 * reading the request). Not the sender's fault, so not a {@link BodyError}.
 */
export class BodyStallError extends Error {
  constructor(readonly ms: number) {
    super(`the next hop took no body byte within ${ms} ms`);
    this.name = "BodyStallError";
  }
}

/** How the body is written out: as it came (length or close-delimited) or chunk-encoded. */
export type BodyOutput = "raw" | "chunked";

/** Where a body is copied to: a connection, or anything else that takes bytes with backpressure. */
export interface BodySink {
  write(bytes: Uint8Array): Promise<void>;
}

/** Options of {@link copyBody}. */
export interface CopyOptions {
  /**
   * Longest the copy may make no progress: no byte from the source ({@link BodyIdleError}), or
   * the destination taking none ({@link BodyStallError}); unset: no limit.
   */
  readonly idleMs?: number;
  /**
   * Stops the copy once `stop.stopped` is set: no further read starts, and the copy rejects
   * with {@link COPY_STOPPED} (a pending read is withdrawn by the caller with
   * `conn.cancelRead(COPY_STOPPED)`; nothing is lost).
   */
  readonly stop?: { readonly stopped: boolean };
  /**
   * Bytes to send before the body (a response head). They go out in the same write as the
   * first body slice when that slice has already arrived and is at most
   * {@link HEAD_COALESCE_BYTES}; otherwise at once, alone, so a head never waits for the body.
   */
  readonly head?: Uint8Array;
}

/** What a stopped copy rejects with: one instance, so stopping allocates nothing. */
export const COPY_STOPPED: Error = new Error("body copy stopped");

const LAST_CHUNK = latin1Bytes("0\r\n\r\n");
const CRLF = latin1Bytes("\r\n");

/**
 * Copy one body of `framing` from `src` to `dst`. Read problems throw {@link BodyError}
 * ({@link BodyIdleError} past `options.idleMs` without a byte).
 */
export async function copyBody(src: BufferedReader, framing: BodyFraming, dst: BodySink, output: BodyOutput, options: CopyOptions = {}): Promise<void> {
  const send = options.idleMs === undefined ? (data: Uint8Array) => dst.write(data) : boundedWrite(dst, options.idleMs);
  let head = options.head;
  if (head !== undefined && !firstSliceReady(src, framing)) {
    await send(head);
    head = undefined;
  }
  const write =
    head === undefined
      ? send
      : (data: Uint8Array): Promise<void> => {
          if (head === undefined) return send(data);
          const joined = concatBytes([head, data]);
          head = undefined;
          return send(joined);
        };
  const emit = output === "chunked" ? (data: Uint8Array) => write(encodeChunk(data)) : write;
  const input = new BodyInput(src, options.idleMs, options.stop);
  switch (framing.kind) {
    case "none":
      break;
    case "length": {
      let left = framing.length;
      while (left > 0) {
        const data = await input.readUpTo(Math.min(left, BODY_SLICE_BYTES));
        if (data === null) throw new BodyError(`body ended after ${framing.length - left} of ${framing.length} bytes`);
        left -= data.length;
        await emit(data);
      }
      break;
    }
    case "close":
      for (;;) {
        const data = await input.readUpTo(BODY_SLICE_BYTES);
        if (data === null) break;
        await emit(data);
      }
      break;
    case "chunked":
      await decodeChunked(input, emit);
      break;
  }
  if (head !== undefined) await send(head); // a body of no bytes
  if (output === "chunked" && framing.kind !== "none") await dst.write(LAST_CHUNK);
}

/**
 * Whether the copy's first emitted slice is already buffered (so joining the head to it delays
 * nothing): a length or close-delimited body with at most {@link HEAD_COALESCE_BYTES} received,
 * or an empty body. A chunked body's first slice may still wait on its size line: not joined.
 */
function firstSliceReady(src: BufferedReader, framing: BodyFraming): boolean {
  if (framing.kind === "none" || (framing.kind === "length" && framing.length === 0)) return true;
  if (framing.kind !== "length" && framing.kind !== "close") return false;
  const n = src.bufferedLength;
  return n > 0 && n <= HEAD_COALESCE_BYTES;
}

/**
 * Writes to `dst` that reject with {@link BodyStallError} when one is not taken within `ms`.
 * The caller then drops the destination, which settles the abandoned write.
 */
function boundedWrite(dst: BodySink, ms: number): (data: Uint8Array) => Promise<void> {
  return (data) =>
    withTimeout(dst.write(data), ms, () => {
      throw new BodyStallError(ms);
    });
}

/** The source side of a copy: the reader, each wait bounded by the idle limit. */
class BodyInput {
  constructor(
    readonly reader: BufferedReader,
    private readonly idleMs: number | undefined,
    private readonly stop: { readonly stopped: boolean } | undefined,
  ) {}

  private deadline(): number | undefined {
    return this.idleMs === undefined ? undefined : Date.now() + this.idleMs;
  }

  private idle(e: unknown): never {
    if (e instanceof ReadTimeoutError) throw new BodyIdleError(this.idleMs ?? e.ms);
    throw e;
  }

  readUpTo(max: number): Promise<Uint8Array | null> {
    if (this.stop?.stopped) return Promise.reject(COPY_STOPPED);
    return this.reader.readUpTo(max, this.deadline()).catch((e: unknown) => this.idle(e));
  }

  fill(): Promise<boolean> {
    if (this.stop?.stopped) return Promise.reject(COPY_STOPPED);
    return this.reader.fill(this.deadline()).catch((e: unknown) => this.idle(e));
  }
}

/** One chunk in chunked encoding. */
export function encodeChunk(data: Uint8Array): Uint8Array {
  return concatBytes([latin1Bytes(data.length.toString(16) + "\r\n"), data, CRLF]);
}

/** Whether `c` is a hex digit. */
function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * The size a chunk-size line declares: the hex size, then optional blanks and extensions (RFC
 * 9112 §7.1.1), read with a loop (a line per chunk is on the body's path). The line is latin1
 * (every char below U+0100), so a CR or LF is the only line break it can hold. Throws
 * {@link BodyError} naming a malformed or oversized one.
 */
export function parseChunkSize(line: string): number {
  let end = 0;
  while (end < line.length && isHexDigit(line.charCodeAt(end))) end++;
  let at = end;
  while (at < line.length && (line.charCodeAt(at) === 0x20 || line.charCodeAt(at) === 0x09)) at++;
  let wellFormed = end > 0 && (at === line.length || line.charCodeAt(at) === 0x3b);
  // extensions run to the line's end, never across a line break
  for (let i = at; wellFormed && i < line.length; i++) wellFormed = line.charCodeAt(i) !== 0x0a && line.charCodeAt(i) !== 0x0d;
  if (!wellFormed) throw new BodyError(`malformed chunk-size line ${JSON.stringify(line.slice(0, 32))}`);
  const digits = line.slice(0, end);
  const size = parseInt(digits, 16);
  if (digits.length > MAX_CHUNK_SIZE_DIGITS || size > MAX_CHUNK_SIZE) {
    throw new BodyError(`chunk size ${JSON.stringify(digits.slice(0, 32))} is larger than ${MAX_CHUNK_SIZE} bytes`);
  }
  return size;
}

/** Decode a chunked body (RFC 9112 §7.1), passing each data slice to `emit`. */
async function decodeChunked(src: BodyInput, emit: (data: Uint8Array) => Promise<void>): Promise<void> {
  for (;;) {
    const line = await readLine(src, MAX_CHUNK_LINE_BYTES, "chunk-size line");
    let left = parseChunkSize(line);
    if (left === 0) break;
    while (left > 0) {
      const data = await src.readUpTo(Math.min(left, BODY_SLICE_BYTES));
      if (data === null) throw new BodyError("chunked body ended inside a chunk");
      left -= data.length;
      await emit(data);
    }
    const end = await readLine(src, 2, "chunk end");
    if (end !== "") throw new BodyError("chunk data longer than its declared size");
  }
  // Trailer section: read and drop, bounded.
  let trailerBytes = 0;
  for (;;) {
    const line = await readLine(src, MAX_TRAILER_BYTES, "trailer");
    trailerBytes += line.length + 2;
    if (trailerBytes > MAX_TRAILER_BYTES) throw new BodyError(`trailer section larger than ${MAX_TRAILER_BYTES} bytes`);
    if (line === "") return;
  }
}

/** Read a CRLF-terminated line of at most `max` bytes (CRLF excluded). */
async function readLine(src: BodyInput, max: number, what: string): Promise<string> {
  for (;;) {
    const buf = src.reader.buffered;
    const at = indexOfCrlf(buf, 0);
    if (at >= 0) {
      if (at > max) throw new BodyError(`${what} longer than ${max} bytes`);
      const line = latin1(buf, 0, at);
      if (line.includes("\n") || line.includes("\r")) throw new BodyError(`bare CR or LF in ${what}`);
      src.reader.consume(at + 2);
      return line;
    }
    if (buf.length > max + 1) throw new BodyError(`${what} longer than ${max} bytes`);
    if (!(await src.fill())) throw new BodyError(`body ended inside a ${what}`);
  }
}
