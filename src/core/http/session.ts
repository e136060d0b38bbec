/**
 * One client connection to the HTTP proxy listener: read a request head, decide, then forward
 * it (absolute-form or origin-form) or open a CONNECT tunnel; repeat while the client keeps
 * the connection alive. Every request is decided on its own.
 *
 * @module
 */
import { formatAddr, type Conn } from "../net/contract.ts";
import type { SessionContext } from "../session-context.ts";
import { handleConnect } from "./connect.ts";
import { forwardRequest } from "./forward.ts";
import { readRequestHead, serveRequests, type RequestHandler } from "./request-loop.ts";
import { BufferedReader } from "../net/reader.ts";
import { TARGET } from "../log.ts";
import { answerRefusal } from "./reply.ts";
import type { Refusal } from "../gate/types.ts";
import type { ConnectionEnd } from "../audit/connection.ts";

export { HEADER_TIMEOUT_MS } from "./request-loop.ts";

/**
 * A connection over `max_connections`: its first request head, if it comes within
 * {@link REFUSED_HEAD_TIMEOUT_MS}, is answered `503` with `Retry-After`; then the connection is
 * closed at once (no draining: a refused client holds nothing longer than that).
 */
async function answerRefusedConnection(client: Conn, ctx: SessionContext, refused: Refusal): Promise<void> {
  ctx.track(client);
  try {
    const head = await readRequestHead(new BufferedReader(client), ctx, REFUSED_HEAD_TIMEOUT_MS);
    if (typeof head === "string") return;
    await answerRefusal(client, { ...refused, protocol: head.method === "CONNECT" ? "https_connect" : "http" }, head.method, false);
  } catch (e) {
    ctx.log.log("debug", TARGET.http, `refused client ${formatAddr(client.remote)}: ${(e as Error).message}`);
  } finally {
    client.close();
    ctx.untrack(client);
  }
}

/** How long a connection over `max_connections` may take to send the request it is refused. */
export const REFUSED_HEAD_TIMEOUT_MS = 2_000;

/**
 * Serve one accepted client connection until it closes. Never throws. `refused`: the connection
 * came over `max_connections` (already recorded): its first request is answered `503` with
 * `Retry-After`, and the connection closed.
 */
export async function serveHttpConnection(client: Conn, ctx: SessionContext, refused?: Refusal): Promise<ConnectionEnd> {
  if (refused) {
    await answerRefusedConnection(client, ctx, refused);
    return "proxy_closed";
  }
  return serveRequests(client, ctx, serveProxyRequest, clientLabel);
}

/** One request to the proxy listener: a CONNECT tunnel, or a request forwarded. */
const serveProxyRequest: RequestHandler = (head, reader, slot, ctx) =>
  head.method === "CONNECT" ? handleConnect(head, reader, ctx, slot) : forwardRequest(head, reader, ctx, slot);

/** How the proxy listener's connections are named in a debug line. */
const clientLabel = (client: Conn): string => `client ${formatAddr(client.remote)}`;
