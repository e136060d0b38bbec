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
import { serveRequests } from "./request-loop.ts";
import { answerRefusal } from "./reply.ts";
import type { Refusal } from "../gate/types.ts";

export { HEADER_TIMEOUT_MS } from "./request-loop.ts";

/**
 * Serve one accepted client connection until it closes. Never throws. `refused`: the connection
 * came over `max_connections` (already recorded): its first request is answered `503` with
 * `Retry-After`, and the connection closed.
 */
export function serveHttpConnection(client: Conn, ctx: SessionContext, refused?: Refusal): Promise<void> {
  if (refused) {
    return serveRequests(
      client,
      ctx,
      (head) => answerRefusal(client, { ...refused, protocol: head.method === "CONNECT" ? "https_connect" : "http" }, head.method, false),
      `refused client ${formatAddr(client.remote)}`,
    );
  }
  return serveRequests(
    client,
    ctx,
    (head, reader, slot) => (head.method === "CONNECT" ? handleConnect(head, reader, ctx, slot) : forwardRequest(head, reader, ctx, slot)),
    `client ${formatAddr(client.remote)}`,
  );
}
