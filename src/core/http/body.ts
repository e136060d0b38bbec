/**
 * Streaming of message bodies from a {@link BufferedReader} to a {@link Conn}, re-framed on
 * the way: chunked input is decoded and re-encoded (extensions and trailers dropped), so the
 * next hop never sees framing we did not produce. Nothing is buffered beyond one read.
 *
 * @module
 */
import { concatBytes, indexOfCrlf, latin1, latin1Bytes } from "../net/bytes.ts";
import type { Conn } from "../net/contract.ts";
import type { BufferedReader } from "../net/reader.ts";
import type { BodyFraming } from "./framing.ts";

/** Longest chunk-size line (size, extensions, CRLF) we accept. */
export const MAX_CHUNK_LINE_BYTES = 4096;
/** Largest trailer section we read (and drop) after the last chunk. */
export const MAX_TRAILER_BYTES = 32 * 1024;
/** Largest slice handed to one write while copying a body. */
export const BODY_SLICE_BYTES = 256 * 1024;

/** The body was malformed or cut short by the side that sent it. */
export class BodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BodyError";
  }
}

/** How the body is written out: as it came (length or close-delimited) or chunk-encoded. */
export type BodyOutput = "raw" | "chunked";

const LAST_CHUNK = latin1Bytes("0\r\n\r\n");
const CRLF = latin1Bytes("\r\n");

/** Copy one body of `framing` from `src` to `dst`. Read problems throw {@link BodyError}. */
export async function copyBody(src: BufferedReader, framing: BodyFraming, dst: Conn, output: BodyOutput): Promise<void> {
  const emit = output === "chunked" ? (data: Uint8Array) => dst.write(encodeChunk(data)) : (data: Uint8Array) => dst.write(data);
  switch (framing.kind) {
    case "none":
      break;
    case "length": {
      let left = framing.length;
      while (left > 0) {
        const data = await src.readUpTo(Math.min(left, BODY_SLICE_BYTES));
        if (data === null) throw new BodyError(`body ended after ${framing.length - left} of ${framing.length} bytes`);
        left -= data.length;
        await emit(data);
      }
      break;
    }
    case "close":
      for (;;) {
        const data = await src.readUpTo(BODY_SLICE_BYTES);
        if (data === null) break;
        await emit(data);
      }
      break;
    case "chunked":
      await decodeChunked(src, emit);
      break;
  }
  if (output === "chunked" && framing.kind !== "none") await dst.write(LAST_CHUNK);
}

/** One chunk in chunked encoding. */
export function encodeChunk(data: Uint8Array): Uint8Array {
  return concatBytes([latin1Bytes(data.length.toString(16) + "\r\n"), data, CRLF]);
}

/** Decode a chunked body (RFC 9112 §7.1), passing each data slice to `emit`. */
async function decodeChunked(src: BufferedReader, emit: (data: Uint8Array) => Promise<void>): Promise<void> {
  for (;;) {
    const line = await readLine(src, MAX_CHUNK_LINE_BYTES, "chunk-size line");
    const m = /^([0-9a-fA-F]{1,15})[ \t]*(?:;.*)?$/.exec(line);
    if (!m) throw new BodyError(`malformed chunk-size line ${JSON.stringify(line.slice(0, 32))}`);
    let left = parseInt(m[1]!, 16);
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
async function readLine(src: BufferedReader, max: number, what: string): Promise<string> {
  for (;;) {
    const buf = src.buffered;
    const at = indexOfCrlf(buf, 0);
    if (at >= 0) {
      if (at > max) throw new BodyError(`${what} longer than ${max} bytes`);
      const line = latin1(buf, 0, at);
      if (line.includes("\n") || line.includes("\r")) throw new BodyError(`bare CR or LF in ${what}`);
      src.consume(at + 2);
      return line;
    }
    if (buf.length > max + 1) throw new BodyError(`${what} longer than ${max} bytes`);
    if (!(await src.fill())) throw new BodyError(`body ended inside a ${what}`);
  }
}
