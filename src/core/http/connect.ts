/**
 * CONNECT tunnels: decide, refuse in limited mode (a tunnel would bypass method enforcement),
 * connect upstream first and only then answer 200, so a failed dial is a visible 502 rather
 * than a tunnel that closes at once (ours, behavior.md §5). The tunnel carries half-close.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { dialScope, ProxyLoopError } from "../net/dial.ts";
import { openTunnel, type Tunnel } from "../net/upstream-proxy.ts";
import { LeaveWatch, PeerLeftError, type BufferedReader } from "../net/reader.ts";
import { relay } from "../net/relay.ts";
import type { RequestFacts, SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";
import { carriesBody, isFramingError, requestFraming } from "./framing.ts";
import { wantsKeepAlive } from "./headers.ts";
import { decideRequest } from "./decide.ts";
import type { RequestHead } from "./parser.ts";
import { CONNECT_ESTABLISHED, refuseByState, refuseMalformed, writeQuietly, type RequestOutcome } from "./reply.ts";
import { textResponse } from "./responses.ts";
import { connectTarget, isTargetError, type RequestTarget } from "./target.ts";
import type { UpstreamSlot } from "./upstream.ts";

/** Decide a CONNECT request and, when allowed, relay until both sides are done. */
export async function handleConnect(head: RequestHead, reader: BufferedReader, ctx: SessionContext, slot: UpstreamSlot): Promise<RequestOutcome> {
  const client = reader.conn;
  const target = connectTarget(head);
  if (isTargetError(target)) return refuseMalformed(ctx, client, target.status, target.message);
  const framing = requestFraming(head);
  if (isFramingError(framing)) return refuseMalformed(ctx, client, framing.status, framing.message);
  if (carriesBody(framing)) return refuseMalformed(ctx, client, 400, "CONNECT request with a body");
  const keep = wantsKeepAlive(head.version, head.headers);
  const snap = ctx.state.snapshot();
  const facts = { protocol: "https_connect" as const, port: target.port, method: "CONNECT", client: formatAddr(client.remote) };
  slot.current?.close();
  slot.current = undefined;
  const opened = await openWatched(head, target, keep, snap, facts, ctx, reader);
  if (typeof opened === "string") return opened;
  const { tunnel, host } = opened;
  const { conn: upstream, early } = tunnel;
  const untrack = ctx.track(upstream);
  try {
    ctx.log.log("info", TARGET.http, `CONNECT ${host}:${target.port} allowed for ${facts.client}`);
    await client.write(CONNECT_ESTABLISHED);
    if (early.length > 0) await client.write(early); // what the upstream proxy sent past its 200
    await relay(ctx.net, client, upstream, reader.takeBuffered());
  } finally {
    upstream.close();
    untrack();
  }
  return "close";
}

/**
 * Decide and open the tunnel while watching the client: both end as soon as it leaves (then
 * `close`), and the watch is over before the relay reads the client. Its own function, so the
 * watch is not held by the frame that waits on the tunnel for its whole life.
 */
async function openWatched(
  head: RequestHead,
  target: RequestTarget,
  keep: boolean,
  snap: ProxySnapshot,
  facts: RequestFacts & { readonly method: string },
  ctx: SessionContext,
  reader: BufferedReader,
): Promise<{ readonly tunnel: Tunnel; readonly host: string } | RequestOutcome> {
  const presence = new LeaveWatch(reader);
  presence.start();
  let opened: { readonly tunnel: Tunnel; readonly host: string } | RequestOutcome;
  try {
    opened = await decideAndOpen(head, target, keep, snap, facts, ctx, reader.conn, presence);
  } catch (e) {
    if (!(e instanceof PeerLeftError)) throw e;
    ctx.log.log("debug", TARGET.http, `client ${facts.client} left before its CONNECT ${target.host}:${target.port} was answered: ${e.detail}`);
    return "close";
  } finally {
    await presence.pause();
  }
  if (typeof opened !== "string" && presence.reason) {
    opened.tunnel.conn.close(); // the client left as the tunnel opened
    return "close";
  }
  return opened;
}

/** Decide, then open the tunnel; a refusal or failure is answered here. */
async function decideAndOpen(
  head: RequestHead,
  target: RequestTarget,
  keep: boolean,
  snap: ProxySnapshot,
  facts: RequestFacts & { readonly method: string },
  ctx: SessionContext,
  client: Conn,
  presence: LeaveWatch,
): Promise<{ readonly tunnel: Tunnel; readonly host: string } | RequestOutcome> {
  // Limited mode refuses every tunnel: it would bypass method enforcement.
  const decided = await decideRequest(ctx, snap, head, client, facts, target.host, keep, true, presence);
  if ("answered" in decided) return decided.answered;
  const { host, addresses } = decided.allowed;
  try {
    return { tunnel: await openTunnel(dialScope(ctx, presence.signal), snap.network.allow_upstream_proxy, host, target.port, addresses), host };
  } catch (e) {
    presence.throwIfLeft();
    if (e instanceof ProxyLoopError) return refuseByState(ctx, snap, client, facts, host, "proxy_state", "proxy_loop", keep);
    ctx.log.log("info", TARGET.http, `CONNECT ${host}:${target.port} upstream failed: ${(e as Error).message}`);
    await writeQuietly(client, textResponse(502, "upstream failure", keep));
    return keep ? "keep" : "close";
  }
}
