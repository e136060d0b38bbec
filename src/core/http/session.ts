/**
 * One client connection to the HTTP proxy listener: read a request head, decide, then forward
 * it (absolute-form or origin-form) or open a CONNECT tunnel; repeat while the client keeps
 * the connection alive. Every request is decided on its own.
 *
 * @module
 */
import { formatAddr, type Conn } from "../net/contract.ts";
import { BufferedReader, ReadTimeoutError } from "../net/reader.ts";
import { TARGET } from "../log.ts";
import type { SessionContext } from "../session-context.ts";
import { handleConnect } from "./connect.ts";
import { forwardRequest } from "./forward.ts";
import { MAX_HEAD_BYTES, parseRequestHead, type RequestHead } from "./parser.ts";
import { closeGracefully } from "./linger.ts";
import { writeQuietly } from "../net/write.ts";
import { textResponse } from "./responses.ts";
import type { UpstreamSlot } from "./upstream.ts";
import { releaseUpstream } from "./upstream-pool.ts";

/** How long a client may take to send a complete request head (also the keep-alive idle limit). */
export const HEADER_TIMEOUT_MS = 30_000;

/** Serve one accepted client connection until it closes. Never throws. */
export async function serveHttpConnection(client: Conn, ctx: SessionContext): Promise<void> {
  const untrack = ctx.track(client);
  const reader = new BufferedReader(client);
  const upstream: UpstreamSlot = { current: undefined };
  /** Set once a response was written and the connection is to end: close it gracefully. */
  let answered = false;
  try {
    for (;;) {
      const head = await readRequestHead(reader, ctx);
      if (head === "end") break;
      if (head === "answered") {
        answered = true;
        break;
      }
      const outcome =
        head.method === "CONNECT"
          ? await handleConnect(head, reader, ctx, upstream)
          : await forwardRequest(head, reader, ctx, upstream);
      if (outcome === "close") {
        answered = true;
        break;
      }
    }
    releaseUpstream(upstream, ctx.pool); // idle between exchanges: kept for another client
    if (answered) await closeGracefully(reader);
  } catch (e) {
    ctx.log.log("debug", TARGET.http, `client ${formatAddr(client.remote)}: ${(e as Error).message}`);
  } finally {
    upstream.current?.close();
    client.close();
    untrack();
  }
}

/**
 * Read and parse the next request head. `end` when the connection should end quietly (clean
 * close between requests, timeout); `answered` after a parse error was answered.
 */
async function readRequestHead(reader: BufferedReader, ctx: SessionContext): Promise<RequestHead | "end" | "answered"> {
  const deadline = Date.now() + HEADER_TIMEOUT_MS;
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
        if (reader.buffered.length > 0) {
          ctx.log.log("debug", TARGET.http, `client ${formatAddr(reader.conn.remote)} closed inside a request head`);
        }
        return "end";
      }
    } catch (e) {
      if (e instanceof ReadTimeoutError) {
        ctx.log.log("debug", TARGET.http, `client ${formatAddr(reader.conn.remote)}: no complete request head within ${HEADER_TIMEOUT_MS} ms`);
        return "end";
      }
      throw e;
    }
  }
}
