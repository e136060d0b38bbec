/**
 * Byte-exact HTTP over plain sockets: a small client with an HTTP/1.1 response parser
 * (Content-Length, chunked, close-delimited), and `rawRequest` for one-shot exchanges.
 */
import { connect, type Socket } from "node:net";
import { withDeadline } from "./util.ts";

/** A parsed HTTP response. Header names are lower-cased; repeated headers are joined by ", ". */
export interface RawResponse {
  readonly version: string;
  readonly status: number;
  readonly statusText: string;
  readonly headers: Record<string, string>;
  /** Header lines as received (name: value). */
  readonly headerLines: string[];
  readonly body: Buffer;
  /** Text of the body (utf8). */
  readonly text: string;
  /** Framing the body used. */
  readonly framing: "none" | "length" | "chunked" | "close";
}

/** Parse one response from the start of `buf`. `null` when more bytes are needed. */
export function tryParseResponse(
  buf: Buffer,
  opts: { noBody?: boolean; ended?: boolean; connect?: boolean } = {},
): { response: RawResponse; size: number } | null {
  const headEnd = buf.indexOf("\r\n\r\n");
  if (headEnd < 0) {
    if (opts.ended) throw new Error(`connection ended inside a response head: ${JSON.stringify(buf.toString("latin1").slice(0, 200))}`);
    return null;
  }
  const lines = buf.subarray(0, headEnd).toString("latin1").split("\r\n");
  const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]!);
  if (!m) throw new Error(`malformed status line ${JSON.stringify(lines[0])}`);
  const status = Number(m[2]);
  const headers: Record<string, string> = {};
  const headerLines = lines.slice(1);
  for (const line of headerLines) {
    const c = line.indexOf(":");
    if (c <= 0) throw new Error(`malformed header line ${JSON.stringify(line)}`);
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const bodyStart = headEnd + 4;
  const make = (body: Buffer, framing: RawResponse["framing"]): RawResponse => ({
    version: m[1]!,
    status,
    statusText: m[3] ?? "",
    headers,
    headerLines,
    body,
    text: body.toString("utf8"),
    framing,
  });
  if (opts.noBody || (opts.connect && status >= 200 && status < 300) || (status >= 100 && status < 200) || status === 204 || status === 304) {
    return { response: make(Buffer.alloc(0), "none"), size: bodyStart };
  }
  const te = headers["transfer-encoding"];
  if (te !== undefined && te.toLowerCase().split(",").map((s) => s.trim()).includes("chunked")) {
    const parts: Buffer[] = [];
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", pos);
      if (lineEnd < 0) return incomplete(opts.ended, "chunk size");
      const size = parseInt(buf.subarray(pos, lineEnd).toString("latin1").split(";")[0]!.trim(), 16);
      if (Number.isNaN(size)) throw new Error("malformed chunk size");
      pos = lineEnd + 2;
      if (size === 0) {
        // trailers until an empty line
        for (;;) {
          const tEnd = buf.indexOf("\r\n", pos);
          if (tEnd < 0) return incomplete(opts.ended, "trailers");
          const empty = tEnd === pos;
          pos = tEnd + 2;
          if (empty) return { response: make(Buffer.concat(parts), "chunked"), size: pos };
        }
      }
      if (buf.length < pos + size + 2) return incomplete(opts.ended, "chunk data");
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
  }
  const cl = headers["content-length"];
  if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < bodyStart + n) return incomplete(opts.ended, "content-length body");
    return { response: make(Buffer.from(buf.subarray(bodyStart, bodyStart + n)), "length"), size: bodyStart + n };
  }
  if (!opts.ended) return null;
  return { response: make(Buffer.from(buf.subarray(bodyStart)), "close"), size: buf.length };
}

function incomplete(ended: boolean | undefined, what: string): null {
  if (ended) throw new Error(`connection ended inside the ${what}`);
  return null;
}

/** A plain TCP client with buffered reads. */
export class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  /** The peer sent FIN. */
  ended = false;
  /** The socket is fully closed. */
  closed = false;
  error: Error | undefined;
  private wake: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.notify();
    });
    socket.on("end", () => {
      this.ended = true;
      this.notify();
    });
    socket.on("close", () => {
      this.closed = true;
      this.ended = true;
      this.notify();
    });
    socket.on("error", (e) => {
      this.error = e;
      this.notify();
    });
  }

  /** Connect to `host:port`. With `allowHalfOpen`, receiving FIN does not end our side. */
  static async connect(port: number, host = "127.0.0.1", opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    const socket = connect({ port, host, allowHalfOpen: opts.allowHalfOpen ?? false });
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("error", reject);
      }),
      5_000,
      `connect to ${host}:${port}`,
    );
    return new RawClient(socket);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  /** Resolves on the next socket event, or after 25 ms (so predicates on outside state are re-checked). */
  private changed(): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, 25);
      this.wake.push(() => {
        clearTimeout(t);
        r();
      });
    });
  }

  /** Bytes received and not consumed yet. */
  get buffered(): Buffer {
    return this.buf;
  }

  /** Write bytes; strings are sent as latin1 (one byte per char) so control bytes are exact. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    await withDeadline(
      new Promise<void>((resolve, reject) => this.socket.write(bytes, (e) => (e ? reject(e) : resolve()))),
      10_000,
      "socket write",
    );
  }

  /** Half-close: send FIN, keep reading. */
  endWrite(): void {
    this.socket.end();
  }

  /** Wait until `pred()` holds (checked on every event). */
  async waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const loop = async () => {
      while (!pred()) {
        if (this.closed && !pred()) throw new Error(`connection closed while waiting for ${what}; received ${JSON.stringify(this.buf.toString("latin1").slice(0, 300))}`);
        await this.changed();
      }
    };
    await withDeadline(loop(), timeoutMs, `${what}; received so far ${JSON.stringify(this.buf.toString("latin1").slice(0, 300))}`);
  }

  /** Read and consume one HTTP response (`noBody` for answers to HEAD, `connect` for answers to CONNECT). */
  async readResponse(opts: { noBody?: boolean; connect?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    let parsed: { response: RawResponse; size: number } | null = null;
    await this.waitUntil(
      () => {
        parsed = tryParseResponse(this.buf, { noBody: opts.noBody, connect: opts.connect, ended: this.ended });
        return parsed !== null;
      },
      opts.timeoutMs ?? 10_000,
      "a complete HTTP response",
    );
    const p = parsed as unknown as { response: RawResponse; size: number };
    this.buf = this.buf.subarray(p.size);
    return p.response;
  }

  /** Wait for exactly `n` more bytes and consume them. */
  async readBytes(n: number, timeoutMs = 10_000): Promise<Buffer> {
    await this.waitUntil(() => this.buf.length >= n, timeoutMs, `${n} bytes`);
    const out = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Wait for the peer's FIN and return (consume) everything received until then. */
  async readToEnd(timeoutMs = 10_000): Promise<Buffer> {
    await this.waitUntil(() => this.ended, timeoutMs, "the peer to close");
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }

  /** Wait until the socket is closed by the peer; `false` if it is still open after `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    try {
      await withDeadline(
        (async () => {
          while (!this.ended) await this.changed();
        })(),
        timeoutMs,
        "close",
      );
      return true;
    } catch {
      return false;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The outcome of {@link rawRequest}. */
export interface RawExchange {
  /** Every byte received. */
  readonly data: Buffer;
  /** The peer closed (FIN) within the wait. */
  readonly closed: boolean;
  /** The first response, parsed. */
  readonly response: RawResponse;
}

/**
 * Send `bytes` on a fresh connection and collect the answer: until the peer closes, or until
 * `waitMs` passed (then `closed` is false). The first response is parsed.
 */
export async function rawRequest(
  port: number,
  bytes: string | Uint8Array,
  opts: { waitMs?: number; host?: string; noBody?: boolean } = {},
): Promise<RawExchange> {
  const c = await RawClient.connect(port, opts.host ?? "127.0.0.1");
  try {
    await c.write(bytes).catch(() => undefined); // the proxy may close before reading it all
    const closed = await c.waitClosed(opts.waitMs ?? 3_000);
    const data = Buffer.from(c.buffered);
    if (data.length === 0) throw new Error(`no response at all (closed=${closed}${c.error ? `, error ${c.error.message}` : ""})`);
    const parsed = tryParseResponse(data, { noBody: opts.noBody, ended: true });
    return { data, closed, response: parsed!.response };
  } finally {
    c.destroy();
  }
}

/** An absolute-form GET for `http://authority/path` with a matching Host header. */
export function absoluteGet(authority: string, path = "/", extra = ""): string {
  return `GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\n${extra}\r\n`;
}

/** Send `bytes` on a fresh connection, read one response and close (does not wait for the peer to close). */
export async function requestOnce(port: number, bytes: string | Uint8Array, opts: { noBody?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
  const c = await RawClient.connect(port);
  try {
    await c.write(bytes);
    return await c.readResponse(opts);
  } finally {
    c.destroy();
  }
}

/** One absolute-form GET through the proxy at `proxyPort` (Host header = the same authority). */
export function proxyGet(proxyPort: number, authority: string, path = "/"): Promise<RawResponse> {
  return requestOnce(proxyPort, absoluteGet(authority, path));
}

/** One CONNECT through the proxy at `proxyPort`; the response head only (a 200 opens a tunnel). */
export async function proxyConnect(proxyPort: number, authority: string): Promise<RawResponse> {
  const c = await RawClient.connect(proxyPort);
  try {
    await c.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    return await c.readResponse({ connect: true });
  } finally {
    c.destroy();
  }
}
