/**
 * CONNECT tunnels: decide, refuse in limited mode (a tunnel would bypass method enforcement),
 * connect upstream first and only then answer 200, so a failed dial is a visible 502 rather
 * than a tunnel that closes at once (ours, behavior.md §5). The tunnel carries half-close.
 *
 * @module
 */
import type { BufferedReader } from "../net/reader.ts";
import { dialVetted, ProxyLoopError } from "../net/dial.ts";
import { relay } from "../net/relay.ts";
import { TARGET } from "../log.ts";
import { recordModeBlock, recordStateBlock, recordVerdict, type SessionContext } from "../session-context.ts";
import { carriesBody, isFramingError, requestFraming } from "./framing.ts";
import { wantsKeepAlive } from "./headers.ts";
import type { RequestHead } from "./parser.ts";
import { blockedConnectResponse, textResponse } from "./responses.ts";
import { clientAddr, CONNECT_ESTABLISHED, refuseMalformed, writeQuietly, type RequestOutcome } from "./session.ts";
import { connectTarget, isTargetError } from "./target.ts";
import type { UpstreamSlot } from "./upstream.ts";

/** Decide a CONNECT request and, when allowed, relay until both sides are done. */
export async function handleConnect(head: RequestHead, reader: BufferedReader, ctx: SessionContext, slot: UpstreamSlot): Promise<RequestOutcome> {
  const client = reader.conn;
  const target = connectTarget(head);
  if (isTargetError(target)) return refuseMalformed(ctx, client, target.status, target.message);
  const framing = requestFraming(head);
  if (isFramingError(framing)) return refuseMalformed(ctx, client, framing.status, framing.message);
  if (carriesBody(framing)) return refuseMalformed(ctx, client, 400, "CONNECT request with a body");
  const keepAlive = wantsKeepAlive(head.version, head.headers);
  const snap = ctx.state.snapshot();
  const facts = { protocol: "https_connect" as const, port: target.port, method: "CONNECT", client: clientAddr(client) };
  const verdict = await snap.policy.decide({ protocol: "https_connect", host: target.host, port: target.port, method: "CONNECT", client_addr: facts.client });
  recordVerdict(ctx, snap, verdict, facts);
  if (!verdict.allowed) {
    ctx.log.log("info", TARGET.http, `blocked CONNECT ${verdict.host}:${target.port} (${verdict.reason}) from ${facts.client}`);
    const r = { host: verdict.host, port: target.port, reason: verdict.reason, decision: verdict.decision, source: verdict.source, protocol: "https_connect" as const };
    await client.write(blockedConnectResponse(r, keepAlive));
    return keepAlive ? "keep" : "close";
  }
  if (snap.mode === "limited") {
    recordModeBlock(ctx, snap, verdict.host, facts);
    ctx.log.log("info", TARGET.http, `blocked CONNECT ${verdict.host}:${target.port} (method_not_allowed, limited mode) from ${facts.client}`);
    const r = { host: verdict.host, port: target.port, reason: "method_not_allowed", decision: "deny" as const, source: "mode_guard" as const, protocol: "https_connect" as const };
    await client.write(blockedConnectResponse(r, keepAlive));
    return keepAlive ? "keep" : "close";
  }
  slot.current?.close();
  slot.current = undefined;
  let upstream;
  try {
    upstream = await dialVetted(ctx, verdict.host, target.port, verdict.addresses);
  } catch (e) {
    if (e instanceof ProxyLoopError) {
      recordStateBlock(ctx, snap, verdict.host, facts, "proxy_state", "proxy_loop");
      ctx.log.log("info", TARGET.http, `blocked CONNECT ${verdict.host}:${target.port} (proxy_loop: our own listener) from ${facts.client}`);
      const r = { host: verdict.host, port: target.port, reason: "proxy_loop", decision: "deny" as const, source: "proxy_state" as const, protocol: "https_connect" as const };
      await client.write(blockedConnectResponse(r, keepAlive));
      return keepAlive ? "keep" : "close";
    }
    ctx.log.log("info", TARGET.http, `CONNECT ${verdict.host}:${target.port} upstream failed: ${(e as Error).message}`);
    await writeQuietly(client, textResponse(502, "upstream failure", keepAlive));
    return keepAlive ? "keep" : "close";
  }
  const untrack = ctx.track(upstream);
  try {
    ctx.log.log("info", TARGET.http, `CONNECT ${verdict.host}:${target.port} allowed for ${facts.client}`);
    await client.write(CONNECT_ESTABLISHED);
    await relay(ctx.net, client, upstream, reader.takeBuffered());
  } finally {
    upstream.close();
    untrack();
  }
  return "close";
}
