/**
 * CONNECT tunnels: decide through the gate, connect upstream first and only then answer 200, so
 * a failed dial is a visible 502 rather than a tunnel that closes at once (ours,
 * docs/behaviour.md §5). The tunnel carries half-close. Limited mode refuses a tunnel (it would
 * bypass method enforcement) unless TLS interception is on (`mitm`): then the tunnel is
 * intercepted and every request inside decided on its own (`intercept.ts`).
 *
 * @module
 */
import { basicProxyUser } from "../attribution.ts";
import { passGate, refuseLoopAtDial, refuseTunnel } from "../gate/gate.ts";
import type { GateRequest } from "../gate/types.ts";
import { TARGET } from "../log.ts";
import { formatAddr, type Conn } from "../net/contract.ts";
import { dialScope, ProxyLoopError } from "../net/dial.ts";
import { openPlannedTunnel } from "../net/dial-plan.ts";
import type { Tunnel } from "../net/upstream-proxy.ts";
import { PeerLeftError, whileWatching, type BufferedReader, type LeaveWatch } from "../net/reader.ts";
import { relayOpenedTunnel, type TunnelFront } from "../net/opened-tunnel.ts";
import type { SessionContext } from "../session-context.ts";
import { checkRequest } from "./checked-request.ts";
import { carriesBody } from "./framing.ts";
import { wantsKeepAlive } from "./headers.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { answerRefusal, answerUpstreamFailure, CONNECT_ESTABLISHED, refuseMalformed, type RequestOutcome } from "./reply.ts";
import { connectTarget, type RequestTarget } from "./target.ts";
import { interceptTunnel } from "./intercept.ts";
import type { UpstreamSlot } from "./upstream.ts";
import { releaseUpstream } from "./upstream-pool.ts";

/** Decide a CONNECT request and, when allowed, relay until both sides are done. */
export async function handleConnect(head: RequestHead, reader: BufferedReader, ctx: SessionContext, slot: UpstreamSlot): Promise<RequestOutcome> {
  const client = reader.conn;
  const checked = checkRequest(head, connectTarget);
  if ("problem" in checked) return refuseMalformed(ctx, client, checked.problem.status, checked.problem.message);
  const { target, framing } = checked;
  if (carriesBody(framing)) return refuseMalformed(ctx, client, 400, "CONNECT request with a body");
  const keep = wantsKeepAlive(head.version, head.headers);
  const who = formatAddr(client.remote);
  releaseUpstream(slot, ctx.pool);
  // A tunnel slot (`max_tunnels`) is held from here until the tunnel ends, intercepted or not.
  // (A disabled proxy refuses it as such, in the gate.)
  const network = ctx.state.snapshot().network;
  const release = network.enabled ? ctx.limits?.openTunnel(network.max_tunnels) : undefined;
  if (network.enabled && ctx.limits && !release) {
    const ask: GateRequest = { protocol: "https_connect", host: target.host, port: target.port, method: "CONNECT", client: who };
    return answerRefusal(client, refuseTunnel(ctx, ask), "CONNECT", keep);
  }
  // Not awaited here: an open tunnel keeps no frame of this one.
  return openAndRelay(head, target, keep, reader, ctx, release);
}

/**
 * Decide, open (or intercept) and relay one CONNECT; then `release` its tunnel slot (held since
 * {@link handleConnect}, also through an intercepted tunnel).
 */
async function openAndRelay(
  head: RequestHead,
  target: RequestTarget,
  keep: boolean,
  reader: BufferedReader,
  ctx: SessionContext,
  release: (() => void) | undefined,
): Promise<RequestOutcome> {
  let handedOver = false;
  try {
    const client = reader.conn;
    const who = formatAddr(client.remote);
    // Deciding and dialling end as soon as the client leaves; the watch is over before the relay.
    const opened = await whileWatching(reader, (presence) => decideAndOpen(head, target, keep, ctx, client, presence));
    if (opened instanceof PeerLeftError) {
      ctx.log.log("debug", TARGET.http, `client ${who} left before its CONNECT ${target.host}:${target.port} was answered: ${opened.detail}`);
      return "close";
    }
    if (typeof opened === "string") return opened;
    handedOver = true;
    // Neither is awaited: an open tunnel keeps no frame of this one, nor the request's head.
    if ("intercept" in opened) return interceptTunnel(reader, ctx, opened.intercept, target.port, ctx.mitmCa, opened.credential).finally(() => release?.());
    const { conn, early } = opened.tunnel;
    return relayOpenedTunnel(ctx, reader, conn, early, CONNECT_ESTABLISHED, CONNECT_FRONT, opened.host, target.port, who, release);
  } finally {
    if (!handedOver) release?.();
  }
}

/** How HTTP CONNECT tunnels are recorded and logged. */
const CONNECT_FRONT: TunnelFront = { protocol: "https_connect", target: TARGET.http, label: "CONNECT" };

/** Decide through the gate, then open the tunnel; a refusal or failure is answered here. */
async function decideAndOpen(
  head: RequestHead,
  target: RequestTarget,
  keep: boolean,
  ctx: SessionContext,
  client: Conn,
  presence: LeaveWatch,
): Promise<{ readonly tunnel: Tunnel; readonly host: string } | { readonly intercept: string; readonly credential?: string } | RequestOutcome> {
  const credential = basicProxyUser(headerValues(head.headers, "proxy-authorization")[0]);
  const ask: GateRequest = { protocol: "https_connect", host: target.host, port: target.port, method: "CONNECT", client: formatAddr(client.remote), credential };
  const verdict = await passGate(ctx, ask, presence);
  if (verdict.kind === "refused") return answerRefusal(client, verdict.refusal, "CONNECT", keep);
  const { host, plan } = verdict;
  // Limited mode lets a CONNECT through only to be intercepted (`mitm`): never an opaque tunnel.
  if (verdict.intercept === true) return { intercept: host, credential };
  try {
    const tunnel = await openPlannedTunnel(dialScope(ctx, presence.signal), plan, host, target.port);
    if (presence.reason) tunnel.conn.close(); // the client left as the tunnel opened
    presence.throwIfLeft();
    return { tunnel, host };
  } catch (e) {
    presence.throwIfLeft();
    if (e instanceof ProxyLoopError) return answerRefusal(client, refuseLoopAtDial(ctx, ask, host), "CONNECT", keep);
    return answerUpstreamFailure(ctx, client, { host, port: target.port, tunnel: true }, (e as Error).message, keep);
  }
}
