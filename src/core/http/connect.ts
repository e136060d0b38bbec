/**
 * CONNECT tunnels: decide, refuse in limited mode (a tunnel would bypass method enforcement),
 * connect upstream first and only then answer 200, so a failed dial is a visible 502 rather
 * than a tunnel that closes at once (ours, docs/behaviour.md §5). The tunnel carries half-close.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { dialScope, ProxyLoopError } from "../net/dial.ts";
import { openTunnel, type Tunnel } from "../net/upstream-proxy.ts";
import { PeerLeftError, whileWatching, type BufferedReader, type LeaveWatch } from "../net/reader.ts";
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
  // Deciding and dialling end as soon as the client leaves; the watch is over before the relay.
  const ask: ConnectAsk = { head, target, keep, snap, facts };
  const opened = await whileWatching(reader, (presence) => decideAndOpen(ask, ctx, client, presence));
  if (opened instanceof PeerLeftError) {
    ctx.log.log("debug", TARGET.http, `client ${facts.client} left before its CONNECT ${target.host}:${target.port} was answered: ${opened.detail}`);
    return "close";
  }
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

/** What a CONNECT asks for, as {@link decideAndOpen} needs it. */
interface ConnectAsk {
  readonly head: RequestHead;
  readonly target: RequestTarget;
  /** The client asked to keep its connection (for a refusal's answer). */
  readonly keep: boolean;
  readonly snap: ProxySnapshot;
  readonly facts: RequestFacts & { readonly method: string };
}

/** Decide, then open the tunnel; a refusal or failure is answered here. */
async function decideAndOpen(
  { head, target, keep, snap, facts }: ConnectAsk,
  ctx: SessionContext,
  client: Conn,
  presence: LeaveWatch,
): Promise<{ readonly tunnel: Tunnel; readonly host: string } | RequestOutcome> {
  // Limited mode refuses every tunnel: it would bypass method enforcement.
  const decided = await decideRequest(ctx, snap, head, client, facts, target.host, keep, true, presence);
  if ("answered" in decided) return decided.answered;
  const { host, addresses } = decided.allowed;
  try {
    const tunnel = await openTunnel(dialScope(ctx, presence.signal), snap.network.allow_upstream_proxy, host, target.port, addresses);
    if (presence.reason) tunnel.conn.close(); // the client left as the tunnel opened
    presence.throwIfLeft();
    return { tunnel, host };
  } catch (e) {
    presence.throwIfLeft();
    if (e instanceof ProxyLoopError) return refuseByState(ctx, snap, client, facts, host, "proxy_state", "proxy_loop", keep);
    ctx.log.log("info", TARGET.http, `CONNECT ${host}:${target.port} upstream failed: ${(e as Error).message}`);
    await writeQuietly(client, textResponse(502, "upstream failure", keep));
    return keep ? "keep" : "close";
  }
}
