/**
 * CONNECT tunnels: decide, refuse in limited mode (a tunnel would bypass method enforcement),
 * connect upstream first and only then answer 200, so a failed dial is a visible 502 rather
 * than a tunnel that closes at once (ours, behavior.md §5). The tunnel carries half-close.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { ProxyLoopError } from "../net/dial.ts";
import { openTunnel } from "../net/upstream-proxy.ts";
import type { BufferedReader } from "../net/reader.ts";
import { relay } from "../net/relay.ts";
import { basicProxyUser } from "../attribution.ts";
import { attributed, recordStateBlock, recordVerdict, type SessionContext } from "../session-context.ts";
import { carriesBody, isFramingError, requestFraming } from "./framing.ts";
import { wantsKeepAlive } from "./headers.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { answerRefusal, CONNECT_ESTABLISHED, refuseMalformed, writeQuietly, type RequestOutcome } from "./reply.ts";
import { textResponse } from "./responses.ts";
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
  const keep = wantsKeepAlive(head.version, head.headers);
  const snap = ctx.state.snapshot();
  const protocol = "https_connect" as const;
  const facts = { protocol, port: target.port, method: "CONNECT", client: formatAddr(client.remote) };
  if (!snap.network.enabled) {
    recordStateBlock(ctx, snap, target.host, facts, "proxy_state", "proxy_disabled");
    const r = { host: target.host, port: target.port, reason: "proxy_disabled", decision: "deny", source: "proxy_state", protocol } as const;
    return answerRefusal(ctx, client, r, "CONNECT", keep);
  }
  const credential = basicProxyUser(headerValues(head.headers, "proxy-authorization")[0]);
  const verdict = await snap.policy.decide({
    protocol,
    host: target.host,
    port: target.port,
    method: "CONNECT",
    client_addr: facts.client,
    ...attributed(ctx, credential),
  });
  recordVerdict(ctx, snap, verdict, facts);
  const host = verdict.host;
  if (!verdict.allowed) {
    const { reason, decision, source } = verdict;
    return answerRefusal(ctx, client, { host, port: target.port, reason, decision, source, protocol }, "CONNECT", keep);
  }
  if (snap.mode === "limited") {
    recordStateBlock(ctx, snap, host, facts, "mode_guard", "method_not_allowed");
    const r = { host, port: target.port, reason: "method_not_allowed", decision: "deny", source: "mode_guard", protocol } as const;
    return answerRefusal(ctx, client, r, "CONNECT", keep);
  }
  slot.current?.close();
  slot.current = undefined;
  let upstream: Conn;
  let early: Uint8Array;
  try {
    ({ conn: upstream, early } = await openTunnel(ctx, snap.network.allow_upstream_proxy, host, target.port, verdict.addresses));
  } catch (e) {
    if (e instanceof ProxyLoopError) {
      recordStateBlock(ctx, snap, host, facts, "proxy_state", "proxy_loop");
      const r = { host, port: target.port, reason: "proxy_loop", decision: "deny", source: "proxy_state", protocol } as const;
      return answerRefusal(ctx, client, r, "CONNECT", keep);
    }
    ctx.log.log("info", TARGET.http, `CONNECT ${host}:${target.port} upstream failed: ${(e as Error).message}`);
    await writeQuietly(client, textResponse(502, "upstream failure", keep));
    return keep ? "keep" : "close";
  }
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
