/**
 * The request loop of an HTTP/1.1 connection (the proxy listener's, or an intercepted tunnel's):
 * read the next head within {@link HEADER_TIMEOUT_MS} (a malformed one is answered here), hand
 * it on, repeat while the connection stays open; then close gracefully when a response ended it.
 *
 * @module
 */
import { type Conn, formatAddr } from "../net/contract.ts";
import { BufferedReader, ReadTimeoutError } from "../net/reader.ts";
import { writeQuietly } from "../net/write.ts";
import { TARGET } from "../log.ts";
import type { SessionContext } from "../session-context.ts";
import { tunnelEndOf, type ConnectionEnd } from "../audit/connection.ts";
import { MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from "./parser.ts";
import { textResponse } from "./responses.ts";
import { closeGracefully } from "./linger.ts";
import type { RequestOutcome } from "./reply.ts";
import type { UpstreamSlot } from "./upstream.ts";
import { releaseUpstream } from "./upstream-pool.ts";

/**
 * What a connection does with each request head: answer it, and say whether to go on. It gets
 * the loop's `ctx` too, so a handler needs no closure of its own per connection.
 */
export type RequestHandler = (head: RequestHead, reader: BufferedReader, slot: UpstreamSlot, ctx: SessionContext) => Promise<RequestOutcome>;

/**
 * Serve the requests on `conn` with `handle` until the connection ends. `what` names it in the
 * debug line of an unexpected failure (a function: made only then). Never throws; `conn` is
 * closed at the end. Resolves with how it ended: the client closed it (or went silent), the
 * proxy ended it after a response, or a failure.
 */
export async function serveRequests(conn: Conn, ctx: SessionContext, handle: RequestHandler, what: string | ((conn: Conn) => string)): Promise<ConnectionEnd> {
  let ended: ConnectionEnd = "client_closed";
  ctx.track(conn);
  // one timer for the connection's per-request head deadlines, cleared when it ends
  const reader = new BufferedReader(conn, { keepTimer: true });
  const slot: UpstreamSlot = { current: undefined };
  /** Set once a response was written and the connection is to end: close it gracefully. */
  let answered = false;
  try {
    for (;;) {
      let head: RequestHead | "end" | "answered" | undefined = await readRequestHead(reader, ctx);
      if (head === "end") break;
      let outcome: Promise<RequestOutcome> | undefined;
      if (head !== "answered") {
        outcome = handle(head, reader, slot, ctx);
        // not kept in this frame while the request runs: a tunnel's lasts as long as the tunnel
        head = undefined;
      }
      if (outcome === undefined || (await outcome) === "close") {
        answered = true;
        // a connection that carried a tunnel ends as the tunnel did
        ended = tunnelEndOf(conn) ?? "proxy_closed";
        break;
      }
    }
    releaseUpstream(slot, ctx.pool); // idle between exchanges: kept for another client
    if (answered) await closeGracefully(reader);
  } catch (e) {
    ended = "error";
    ctx.log.log("debug", TARGET.http, `${typeof what === "string" ? what : what(conn)}: ${(e as Error).message}`);
  } finally {
    slot.current?.close();
    reader.release();
    conn.close();
    ctx.untrack(conn);
  }
  return ended;
}

/** How long a client may take to send a complete request head (also the keep-alive idle limit). */
export const HEADER_TIMEOUT_MS = 30_000;

/**
 * Read and parse the next request head. `end` when the connection should end quietly (clean
 * close between requests, timeout); `answered` after a parse error was answered.
 */
export async function readRequestHead(reader: BufferedReader, ctx: SessionContext, timeoutMs: number = HEADER_TIMEOUT_MS): Promise<RequestHead | "end" | "answered"> {
  const deadline = Date.now() + timeoutMs;
  let scanned = 0;
  for (;;) {
    const buf = reader.buffered;
    // Re-parse only when a new line ended (or the limit is reached): keeps byte-at-a-time
    // clients from making parsing quadratic.
    if (buf.length > 0 && (buf.indexOf(10, scanned) >= 0 || buf.length >= MAX_HEAD_BYTES)) {
      const r = parseRequestHead(buf);
      if (r.kind === "ok") {
        reader.consume(r.size);
        return r.head;
      }
      if (r.kind === "error") {
        ctx.log.log("debug", TARGET.http, `client ${formatAddr(reader.conn.remote)}: ${r.status} ${r.message}`);
        await writeQuietly(reader.conn, textResponse(r.status, r.message));
        return "answered";
      }
    }
    scanned = buf.length;
    try {
      if (!(await reader.fill(deadline))) {
        if (reader.bufferedLength > 0) {
          ctx.log.log("debug", TARGET.http, `client ${formatAddr(reader.conn.remote)} closed inside a request head`);
        }
        return "end";
      }
    } catch (e) {
      if (e instanceof ReadTimeoutError) {
        ctx.log.log("debug", TARGET.http, `client ${formatAddr(reader.conn.remote)}: no complete request head within ${timeoutMs} ms`);
        return "end";
      }
      throw e;
    }
  }
}
