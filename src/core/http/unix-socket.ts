/**
 * `x-unix-socket: /abs/path` on plain requests (behavior.md §5). The header is never ignored:
 * a path outside `allow_unix_sockets` is refused with 403 (host `unix-socket`, reason
 * `not_allowed`), limited mode applies, and a listed path is answered 501
 * `unix sockets unsupported` because this build cannot dial unix sockets yet. The request
 * never falls through to the TCP host named in its target.
 *
 * @module
 */
import { formatAddr, type Conn } from "../net/contract.ts";
import { TARGET } from "../log.ts";
import { recordStateBlock, type SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";
import { LIMITED_MODE_METHODS } from "./methods.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { simpleResponse } from "./responses.ts";
import { answerRefusal, type RequestOutcome } from "./reply.ts";

/** The header naming a unix socket to forward to. */
export const UNIX_SOCKET_HEADER = "x-unix-socket";
/** Host reported for unix-socket refusals (and their audit events). */
export const UNIX_SOCKET_HOST = "unix-socket";

/** The socket path a request asks for, or `undefined` when it has no such header. */
export function requestedUnixSocket(head: RequestHead): string | undefined {
  const values = headerValues(head.headers, UNIX_SOCKET_HEADER);
  return values.length === 0 ? undefined : values.join(",");
}

/** Decide a request that carries `x-unix-socket`. */
export async function handleUnixSocketRequest(
  head: RequestHead,
  path: string,
  snap: ProxySnapshot,
  client: Conn,
  ctx: SessionContext,
  keep: boolean,
): Promise<RequestOutcome> {
  const facts = { protocol: "http" as const, port: 0, method: head.method, client: formatAddr(client.remote) };
  const refuse = (reason: string, source: "proxy_state" | "mode_guard"): Promise<RequestOutcome> => {
    recordStateBlock(ctx, snap, UNIX_SOCKET_HOST, facts, source, reason);
    return answerRefusal(ctx, client, { host: UNIX_SOCKET_HOST, port: 0, reason, decision: "deny", source, protocol: "http" }, head.method, keep);
  };
  if (!snap.network.allow_unix_sockets.includes(path)) return refuse("not_allowed", "proxy_state");
  if (snap.mode === "limited" && !LIMITED_MODE_METHODS.has(head.method)) return refuse("method_not_allowed", "mode_guard");
  recordStateBlock(ctx, snap, UNIX_SOCKET_HOST, facts, "proxy_state", "unix_socket_unsupported");
  ctx.log.log("info", TARGET.http, `unix socket requested by ${facts.client}: not supported in this build`);
  await client.write(simpleResponse(501, [["content-type", "text/plain; charset=utf-8"], ["x-proxy-error", "blocked-by-policy"]], "unix sockets unsupported", keep));
  return keep ? "keep" : "close";
}
