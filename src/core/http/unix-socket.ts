/**
 * `x-unix-socket: /abs/path` on plain requests (docs/behaviour.md §5): the request is forwarded over
 * that unix socket when the path is in `allow_unix_sockets`, byte-equal or the same file after
 * resolving symlinks; else 403 (host `unix-socket`, reason `not_allowed`). Limited mode
 * applies. Where the runtime cannot dial unix sockets: 501 `unix sockets unsupported`. The
 * header is never ignored: such a request never falls through to the TCP host in its target.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { recordStateBlock, type SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";
import type { Destination } from "./exchange.ts";
import { LIMITED_MODE_METHODS } from "./methods.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { refuseByState, type RequestOutcome } from "./reply.ts";
import { simpleResponse, UNIX_SOCKET_HOST } from "./responses.ts";

/** The header naming a unix socket to forward to. */
export const UNIX_SOCKET_HEADER = "x-unix-socket";

/** The socket path a request asks for, or `undefined` when it has no such header. */
export function requestedUnixSocket(head: RequestHead): string | undefined {
  const values = headerValues(head.headers, UNIX_SOCKET_HEADER);
  return values.length === 0 ? undefined : values.join(",");
}

/** Either where to forward, or the answer already given. */
export type UnixSocketDecision = { kind: "forward"; destination: Destination } | { kind: "answered"; outcome: RequestOutcome };

/** Decide a request that carries `x-unix-socket`. */
export async function allowUnixSocket(
  head: RequestHead,
  path: string,
  snap: ProxySnapshot,
  client: Conn,
  ctx: SessionContext,
  keep: boolean,
): Promise<UnixSocketDecision> {
  const facts = { protocol: "http" as const, port: 0, method: head.method, client: formatAddr(client.remote) };
  const refuse = async (reason: string, scope: "proxy_state" | "mode_guard"): Promise<UnixSocketDecision> => ({
    kind: "answered",
    outcome: await refuseByState(ctx, snap, client, facts, UNIX_SOCKET_HOST, scope, reason, keep),
  });
  // A disabled proxy refuses everything, unix sockets included.
  if (!snap.network.enabled) return refuse("proxy_disabled", "proxy_state");
  const allowed = await matchAllowed(path, snap.network.allow_unix_sockets, ctx);
  if (allowed === undefined) return refuse("not_allowed", "proxy_state");
  if (snap.mode === "limited" && !LIMITED_MODE_METHODS.has(head.method)) return refuse("method_not_allowed", "mode_guard");
  const connectUnix = ctx.net.connectUnix;
  if (!connectUnix) {
    recordStateBlock(ctx, snap, UNIX_SOCKET_HOST, facts, "proxy_state", "unix_socket_unsupported");
    ctx.log.log("info", TARGET.http, `unix socket requested by ${facts.client}: this runtime cannot dial unix sockets`);
    const body = simpleResponse(501, [["content-type", "text/plain; charset=utf-8"], ["x-proxy-error", "blocked-by-policy"]], "unix sockets unsupported", keep);
    await client.write(body);
    return { kind: "answered", outcome: keep ? "keep" : "close" };
  }
  ctx.state.record({ timestamp: Date.now(), scope: "domain_rule", decision: "allow", source: "baseline_policy", reason: "allowed", override: false, host: UNIX_SOCKET_HOST, mode: snap.mode, ...facts });
  ctx.log.log("debug", TARGET.http, `${head.method} via unix socket allowed for ${facts.client}`);
  // Dial the allowlisted entry itself, not the client's spelling: a symlink swapped after the
  // check cannot redirect the connection.
  return { kind: "forward", destination: { key: `unix|${allowed}`, host: UNIX_SOCKET_HOST, port: 0, dial: () => connectUnix(allowed) } };
}

/**
 * The allowed socket `path` stands for: an entry byte-equal to it, else the entry whose real
 * file is the same as `path`'s (symlinks resolved). Relative paths never match.
 */
async function matchAllowed(path: string, allowed: readonly string[], ctx: SessionContext): Promise<string | undefined> {
  if (!path.startsWith("/")) return undefined;
  if (allowed.includes(path)) return path;
  const realPath = ctx.net.realPath;
  if (!realPath || allowed.length === 0) return undefined;
  const target = await realPath(path).catch(() => undefined);
  if (target === undefined) return undefined;
  for (const entry of allowed) {
    if ((await realPath(entry).catch(() => undefined)) === target) return entry;
  }
  return undefined;
}
