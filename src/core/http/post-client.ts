/**
 * An HTTP/1.1 client that POSTs to one plain-HTTP origin over the runtime's own connections
 * ({@link Net}): the audit export's transport (`runtimes/shared/otlp-conn-transport.ts`), which
 * costs the proxy's thread a fraction of what a batch POSTed through `node:http` does (about
 * 1 ms on Deno, BENCHMARKS.md, profile notes 18 and 19). It writes the request head with
 * `head-bytes.ts` and reads the answer with the parser and framing the proxy uses for origins'
 * answers.
 *
 * - Connections are kept alive (RFC 9112 §9.3) and reused, at most
 *   {@link POST_MAX_IDLE_CONNECTIONS} idle at once, each closed after {@link POST_IDLE_MS} idle. An
 *   idle connection is read while it waits: a byte or a close from the server drops it, so a
 *   connection the server closed is not written to.
 * - A kept connection whose write the runtime reports failed (the server closed it as the
 *   request went out) is replaced once by a new connection: the server cannot have acted on a
 *   request it did not get whole, the one case in which RFC 9112 §9.3.1.1 lets a client repeat a
 *   request that is not idempotent. Any other failure is the caller's to retry. (Writes are
 *   buffered, so a close the server makes as the request goes out is more often seen as a read
 *   that fails.)
 * - The answer's body is read whole, within a size limit; content-length, chunked and
 *   close-delimited bodies are read. 1xx interim answers are skipped; a 101 fails.
 * - One deadline covers the whole request: resolving, connecting, writing and reading. Past it
 *   the connection is aborted and the request fails with kind `timeout` (with the answer's
 *   status when its head had arrived).
 * - `Host` and `Content-Length` are the client's; fields of the caller's that frame the message
 *   or manage the connection ({@link CLIENT_OWNED_FIELDS}) are left out, as `fetch` leaves out
 *   its forbidden request headers. A field name that is not a token, or a value with a control
 *   character or a character above U+00FF, fails the request, naming the field.
 *
 * @module
 */
import type { Conn, Net } from "../net/contract.ts";
import { dialVetted } from "../net/dial.ts";
import { BufferedReader } from "../net/reader.ts";
import { concatBytes } from "../net/bytes.ts";
import { copyBody } from "./body.ts";
import type { HttpHeader } from "./fields.ts";
import { isFramingError, responseFraming } from "./framing.ts";
import { headBytes } from "./head-bytes.ts";
import { keepsAlive } from "./headers.ts";
import { isToken, parseResponseHead, type ResponseHead } from "./parser.ts";

/** Most idle connections kept for later requests; more are closed when their request is done. */
export const POST_MAX_IDLE_CONNECTIONS = 4;

/**
 * Longest a connection is kept idle: then it is closed (and one found older when taken, its
 * timer late, is not reused). Shorter than the keep-alive timeout of common collectors and
 * servers (nginx 75 s, the OpenTelemetry Collector's Go server: none), so a connection is rarely
 * reused just as the server closes it.
 */
export const POST_IDLE_MS = 15_000;

/**
 * Fields the client writes itself, or that would change how the message is framed or what
 * becomes of the connection (RFC 9110 §7.6.1, RFC 9112 §6): the caller's are left out.
 */
export const CLIENT_OWNED_FIELDS: ReadonlySet<string> = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect"]);

/** Limits of a {@link PostClient}. */
export interface PostClientOptions {
  /** Largest answer body read; a larger one fails the request (kind `answer`). */
  readonly maxAnswerBytes: number;
  /** Most idle connections kept (default {@link POST_MAX_IDLE_CONNECTIONS}). */
  readonly maxIdle?: number;
  /** How long an idle connection is kept (default {@link POST_IDLE_MS}). */
  readonly idleMs?: number;
}

/** Where the client POSTs. */
export interface PostTarget {
  /** A host name, or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** The request target in origin form: the path and query (`/v1/logs`). */
  readonly path: string;
}

/** A server's answer to a POST. */
export interface PostAnswer {
  readonly head: ResponseHead;
  /** The whole body (empty when there is none). */
  readonly body: Uint8Array;
}

/**
 * What failed:
 * - `timeout`: the deadline passed (resolving, connecting, writing or reading);
 * - `connection`: the name did not resolve, no address took the connection, or it broke or
 *   closed before the whole answer arrived;
 * - `answer`: the server's answer cannot be read as one (malformed, too large, a 101);
 * - `request`: the request cannot be written (a field name or value that is not valid).
 */
export type PostFailureKind = "timeout" | "connection" | "answer" | "request";

/** A POST that failed; `status` is the answer's final status when its head had arrived. */
export class PostFailure extends Error {
  constructor(
    readonly kind: PostFailureKind,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "PostFailure";
  }
}

/** A kept connection whose idle read is withdrawn; never surfaces. */
const TAKEN = new Error("taken for a request");

/** An open connection and its read buffer. */
class PostConn {
  readonly reader: BufferedReader;
  /** When it was last put back idle (`Date.now()`). */
  idleSince = 0;
  /** Closes it once idle too long; set while idle. */
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while idle: the idle read, settled with whether the connection is still usable once it ended. */
  watch: Promise<boolean> | undefined;

  constructor(readonly conn: Conn) {
    this.reader = new BufferedReader(conn);
  }

  close(): void {
    this.conn.close();
  }

  abort(): void {
    this.conn.abort();
  }
}

/** The request could not be written whole: on a kept connection, it may be sent once more on a new one. */
class NotSent extends Error {
  constructor(readonly reason: unknown) {
    super("the request could not be written", { cause: reason });
  }
}

/** The client of one origin. Concurrent requests each take a connection of their own. */
export class PostClient {
  private readonly idle: PostConn[] = [];
  private closed = false;
  private readonly authority: string;
  private readonly maxAnswerBytes: number;
  private readonly maxIdle: number;
  private readonly idleMs: number;

  constructor(
    private readonly net: Net,
    private readonly target: PostTarget,
    options: PostClientOptions,
  ) {
    const host = target.host.includes(":") ? `[${target.host}]` : target.host;
    this.authority = target.port === 80 ? host : `${host}:${target.port}`;
    this.maxAnswerBytes = options.maxAnswerBytes;
    this.maxIdle = options.maxIdle ?? POST_MAX_IDLE_CONNECTIONS;
    this.idleMs = options.idleMs ?? POST_IDLE_MS;
  }

  /** Idle connections kept now (for tests). */
  get idleCount(): number {
    return this.idle.length;
  }

  /**
   * POST `body` with `fields`, and read the answer, all within `timeoutMs`. Rejects with
   * {@link PostFailure}.
   */
  async post(fields: readonly HttpHeader[], body: Uint8Array, timeoutMs: number): Promise<PostAnswer> {
    const head = this.requestHead(fields, body.length);
    const abort = new AbortController();
    /** The final answer's status, once its head arrived. */
    const seen: { status?: number } = {};
    let current: PostConn | undefined;
    const timer = setTimeout(() => {
      abort.abort(new PostFailure("timeout", `no answer within ${timeoutMs} ms`));
      current?.abort();
    }, timeoutMs);
    try {
      let kept = await this.takeIdle();
      for (;;) {
        current = kept ?? (await this.open(abort.signal));
        try {
          const answer = await this.exchange(current, head, body, seen);
          this.putIdle(current, answer);
          return answer.answer;
        } catch (e) {
          current.abort();
          if (abort.signal.aborted) throw new PostFailure("timeout", `no answer within ${timeoutMs} ms`, seen.status, { cause: e });
          // a kept connection the server closed as the request went out: once more, on a new one
          if (kept !== undefined && e instanceof NotSent) {
            kept = undefined;
            continue;
          }
          throw e instanceof NotSent ? connectionFailure(e.reason) : e;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Close every idle connection, and keep none from now on. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) {
      clearTimeout(c.idleTimer);
      c.close();
    }
  }

  /** The request head, or a `request` failure naming the field that cannot be sent. */
  private requestHead(fields: readonly HttpHeader[], length: number): Uint8Array {
    const out: HttpHeader[] = [{ name: "Host", value: this.authority }];
    for (const f of fields) {
      if (!isToken(f.name)) throw new PostFailure("request", `header name ${JSON.stringify(f.name)} is not a token (RFC 9110 §5.1)`);
      const bad = badValueChar(f.value);
      if (bad !== undefined) throw new PostFailure("request", `header ${f.name} has a value with ${bad} (RFC 9110 §5.5)`);
      if (!CLIENT_OWNED_FIELDS.has(f.name.toLowerCase())) out.push(f);
    }
    out.push({ name: "Content-Length", value: String(length) });
    return headBytes(`POST ${this.target.path} HTTP/1.1`, out);
  }

  /** A kept connection still open, or `undefined`. */
  private async takeIdle(): Promise<PostConn | undefined> {
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
      const watch = c.watch!;
      c.watch = undefined;
      clearTimeout(c.idleTimer);
      // withdraw the idle read; it settles with whether the connection is still usable
      c.conn.cancelRead(TAKEN);
      if ((await watch) && Date.now() - c.idleSince <= this.idleMs) return c;
      c.close();
    }
    return undefined;
  }

  /** Keep `c` for a later request when it may carry one, else close it. */
  private putIdle(c: PostConn, how: { keepAlive: boolean }): void {
    if (this.closed || !how.keepAlive || c.reader.bufferedLength > 0 || c.reader.ended || this.idle.length >= this.maxIdle) {
      c.close();
      return;
    }
    c.idleSince = Date.now();
    c.idleTimer = setTimeout(() => this.dropIdle(c), this.idleMs);
    // nothing is owed by the server now: a byte or a close means the connection is done
    c.watch = c.reader.fill().then(
      () => this.dropIdle(c),
      (e: unknown) => e === TAKEN || this.dropIdle(c),
    );
    this.idle.push(c);
  }

  /** Remove `c` from the idle list, if there, and close it; `false` (it is not usable). */
  private dropIdle(c: PostConn): false {
    clearTimeout(c.idleTimer);
    const at = this.idle.indexOf(c);
    if (at >= 0) this.idle.splice(at, 1);
    c.close();
    return false;
  }

  /** A new connection to the target. */
  private async open(signal: AbortSignal): Promise<PostConn> {
    const { host, port } = this.target;
    // the proxy's own dial: a bounded lookup, then each address in turn, each attempt bounded;
    // the request's deadline stops it (nothing here is one of the proxy's listeners to refuse)
    try {
      return new PostConn(await dialVetted({ net: this.net, isOwnListener: () => false, abandoned: signal }, host, port, undefined));
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      throw connectionFailure(e);
    }
  }

  /** Send the request on `c` and read the whole answer. */
  private async exchange(c: PostConn, head: Uint8Array, body: Uint8Array, seen: { status?: number }): Promise<{ answer: PostAnswer; keepAlive: boolean }> {
    try {
      await c.conn.write(head);
      if (body.length > 0) await c.conn.write(body);
    } catch (e) {
      throw new NotSent(e);
    }
    const answerHead = await this.readHead(c);
    seen.status = answerHead.status;
    const framing = responseFraming(answerHead, "POST");
    if (isFramingError(framing)) throw new PostFailure("answer", `the server's answer cannot be read: ${framing.message}`, answerHead.status);
    const parts: Uint8Array[] = [];
    let total = 0;
    const limit = this.maxAnswerBytes;
    try {
      await copyBody(c.reader, framing, {
        write(bytes) {
          total += bytes.length;
          if (total > limit) throw new PostFailure("answer", `the server's answer is larger than ${limit} bytes`, answerHead.status);
          parts.push(bytes);
          return Promise.resolve();
        },
      }, "raw");
    } catch (e) {
      if (e instanceof PostFailure) throw e;
      throw new PostFailure("connection", `the answer's body broke off: ${(e as Error).message}`, answerHead.status, { cause: e });
    }
    // a close-delimited body leaves the reader at its end: such a connection is never kept
    const keepAlive = keepsAlive(answerHead.version, answerHead.fields.tokens("connection"));
    return { answer: { head: answerHead, body: concatBytes(parts) }, keepAlive };
  }

  /** The answer's final head (1xx interim heads skipped), consumed from the reader. */
  private async readHead(c: PostConn): Promise<ResponseHead> {
    const { reader } = c;
    for (;;) {
      const parsed = parseResponseHead(reader.buffered);
      if (parsed.kind === "ok") {
        reader.consume(parsed.size);
        const { status } = parsed.head;
        if (status === 101) throw new PostFailure("answer", "the server switched protocols (101) in answer to a POST", status);
        if (status >= 200) return parsed.head;
        continue; // an interim answer (100 Continue, 103 Early Hints): the final one follows
      }
      if (parsed.kind === "error") throw new PostFailure("answer", `the server's answer cannot be read: ${parsed.message}`);
      let more: boolean;
      try {
        more = await reader.fill();
      } catch (e) {
        throw connectionFailure(e);
      }
      if (!more) {
        const why = reader.bufferedLength > 0 ? "the server closed the connection in the answer's head" : "the server closed the connection without answering";
        throw new PostFailure("connection", why);
      }
    }
  }
}

/** The first character of `value` a field value cannot hold (RFC 9110 §5.5), described, or `undefined`. */
function badValueChar(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return `the control character U+${c.toString(16).padStart(4, "0").toUpperCase()}`;
    if (c > 0xff) return `the character ${JSON.stringify(value[i])} (above U+00FF)`;
  }
  return undefined;
}

/** A `connection` failure for `cause` (a dial or socket error), keeping its words. */
function connectionFailure(cause: unknown): PostFailure {
  if (cause instanceof PostFailure) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  return new PostFailure("connection", message, undefined, { cause });
}
