/**
 * What the HTTP paths (plain forwarding, CONNECT, unix sockets) share to answer a request
 * themselves: refusals, malformed-input errors, and the outcome type of one request.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { writeQuietly } from "../net/write.ts";
import { latin1Bytes } from "../net/bytes.ts";
import type { SessionContext } from "../session-context.ts";
import { blockedConnectResponse, blockedHttpResponse, simpleResponse, textResponse, type Refusal } from "./responses.ts";

/** What happens to the client connection after one request. */
export type RequestOutcome = "keep" | "close";

/** `HTTP/1.1 200 OK` + blank line: the answer to an allowed CONNECT. */
export const CONNECT_ESTABLISHED = latin1Bytes("HTTP/1.1 200 OK\r\n\r\n");

/** Answer a malformed request with a plain-text error and end the connection. */
export async function refuseMalformed(ctx: SessionContext, client: Conn, status: number, message: string): Promise<RequestOutcome> {
  ctx.log.log("debug", TARGET.http, `client ${formatAddr(client.remote)}: ${status} ${message}`);
  await writeQuietly(client, textResponse(status, message));
  return "close";
}

/** Body of the `501` for an `x-unix-socket` request on a runtime that cannot dial unix sockets. */
export const UNIX_SOCKETS_UNSUPPORTED = "unix sockets unsupported";

/**
 * Answer a refusal of the gate (which recorded and logged it): the JSON 403 for plain
 * requests, the text 403 for CONNECT (docs/behaviour.md §5); `501` when the runtime cannot dial
 * unix sockets.
 */
export async function answerRefusal(client: Conn, r: Refusal, method: string, keep: boolean): Promise<RequestOutcome> {
  const bytes =
    r.source === "proxy_state" && r.reason === "unix_socket_unsupported"
      ? simpleResponse(501, [["content-type", "text/plain; charset=utf-8"], ["x-proxy-error", "blocked-by-policy"]], UNIX_SOCKETS_UNSUPPORTED, keep)
      : r.protocol === "https_connect"
        ? blockedConnectResponse(r, keep)
        : blockedHttpResponse(r, keep, method);
  await client.write(bytes);
  return keep ? "keep" : "close";
}

/**
 * Log an upstream failure at info (`upstream HOST:PORT failed: …`, or `CONNECT HOST:PORT
 * upstream failed: …` for a tunnel) and answer `502 upstream failure` (TLS failures named).
 */
export async function answerUpstreamFailure(
  ctx: SessionContext,
  client: Conn,
  dest: { readonly host: string; readonly port: number; readonly tunnel?: boolean },
  why: string,
  keep: boolean,
  tlsFailure = false,
): Promise<RequestOutcome> {
  const where = `${dest.host}:${dest.port}`;
  ctx.log.log("info", TARGET.http, dest.tunnel ? `CONNECT ${where} upstream failed: ${why}` : `upstream ${where} failed: ${why}`);
  // A certificate the proxy cannot verify is named as such: the client must not mistake it for an outage.
  await writeQuietly(client, textResponse(502, tlsFailure ? `upstream failure: ${why}` : "upstream failure", keep));
  return keep ? "keep" : "close";
}
