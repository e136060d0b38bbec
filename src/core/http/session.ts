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

export { HEADER_TIMEOUT_MS } from "./request-loop.ts";

/** Serve one accepted client connection until it closes. Never throws. */
export function serveHttpConnection(client: Conn, ctx: SessionContext): Promise<void> {
  return serveRequests(
    client,
    ctx,
    (head, reader, slot) => (head.method === "CONNECT" ? handleConnect(head, reader, ctx, slot) : forwardRequest(head, reader, ctx, slot)),
    `client ${formatAddr(client.remote)}`,
  );
}
