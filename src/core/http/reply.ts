/**
 * What the HTTP paths (plain forwarding, CONNECT, unix sockets) share to answer a request
 * themselves: refusals, malformed-input errors, and the outcome type of one request.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { latin1Bytes } from "../net/bytes.ts";
import { recordStateBlock, type RequestFacts, type SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";
import { blockedConnectResponse, blockedHttpResponse, textResponse, type Refusal } from "./responses.ts";

/** What happens to the client connection after one request. */
export type RequestOutcome = "keep" | "close";

/** `HTTP/1.1 200 OK` + blank line: the answer to an allowed CONNECT. */
export const CONNECT_ESTABLISHED = latin1Bytes("HTTP/1.1 200 OK\r\n\r\n");

/** Write and ignore failure (the peer may already be gone). */
export async function writeQuietly(conn: Conn, bytes: Uint8Array): Promise<void> {
  try {
    await conn.write(bytes);
  } catch {
    // nothing more to tell a client that went away
  }
}

/** Answer a malformed request with a plain-text error and end the connection. */
export async function refuseMalformed(ctx: SessionContext, client: Conn, status: number, message: string): Promise<RequestOutcome> {
  ctx.log.log("debug", TARGET.http, `client ${formatAddr(client.remote)}: ${status} ${message}`);
  await writeQuietly(client, textResponse(status, message));
  return "close";
}

/**
 * Log a refusal at info and answer it: the JSON 403 for plain requests, the text 403 for
 * CONNECT (docs/behaviour.md §5). The caller has recorded the decision.
 */
export async function answerRefusal(ctx: SessionContext, client: Conn, r: Refusal, method: string, keep: boolean): Promise<RequestOutcome> {
  ctx.log.log("info", TARGET.http, `blocked ${method} ${r.host}:${r.port} (${r.reason}) from ${formatAddr(client.remote)}`);
  await client.write(r.protocol === "https_connect" ? blockedConnectResponse(r, keep) : blockedHttpResponse(r, keep, method));
  return keep ? "keep" : "close";
}

/**
 * Record a mode-guard or proxy-state refusal (limited mode, proxy disabled, proxy loop, unix
 * socket) and answer it like any refusal.
 */
export function refuseByState(
  ctx: SessionContext,
  snap: ProxySnapshot,
  client: Conn,
  facts: RequestFacts & { readonly method: string },
  host: string,
  scope: "mode_guard" | "proxy_state",
  reason: string,
  keep: boolean,
): Promise<RequestOutcome> {
  recordStateBlock(ctx, snap, host, facts, scope, reason);
  return answerRefusal(ctx, client, { host, port: facts.port, reason, decision: "deny", source: scope, protocol: facts.protocol }, facts.method, keep);
}
