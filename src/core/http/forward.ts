/**
 * Forwarding of one plain HTTP request (absolute-form or origin-form): decide (the limited-mode
 * method guard included), then pick the destination (the vetted origin, TLS to it for
 * `https://` targets, an upstream proxy, or an allowed unix socket) and hand it to the
 * {@link exchange}. From the parsed head on, every wait ends when the client leaves.
 *
 * @module
 */
import { dialScope, dialVetted } from "../net/dial.ts";
import { dialProxy, proxyFor } from "../net/upstream-proxy.ts";
import { PeerLeftError, whileWatching, type BufferedReader, type LeaveWatch } from "../net/reader.ts";
import { formatAddr } from "../net/contract.ts";
import { TARGET } from "../log.ts";
import type { SessionContext } from "../session-context.ts";
import { decideRequest } from "./decide.ts";
import { exchange, type Destination, type ExchangeRequest } from "./exchange.ts";
import { carriesBody, isFramingError, requestFraming, type BodyFraming } from "./framing.ts";
import { requestedUpgrade, wantsKeepAlive } from "./headers.ts";
import type { RequestHead } from "./parser.ts";
import { refuseMalformed, type RequestOutcome } from "./reply.ts";
import { LIMITED_MODE_METHODS } from "./methods.ts";
import { isTargetError, requestTarget, type RequestTarget } from "./target.ts";
import { allowUnixSocket, requestedUnixSocket } from "./unix-socket.ts";
import { upstreamKey, type UpstreamSlot } from "./upstream.ts";

/** Decide and forward one non-CONNECT request. */
export async function forwardRequest(head: RequestHead, reader: BufferedReader, ctx: SessionContext, slot: UpstreamSlot): Promise<RequestOutcome> {
  const client = reader.conn;
  const target = requestTarget(head);
  if (isTargetError(target)) return refuseMalformed(ctx, client, target.status, target.message);
  const framing = requestFraming(head);
  if (isFramingError(framing)) return refuseMalformed(ctx, client, framing.status, framing.message);
  // From here on, every wait (DNS vetting, dial, the upstream's answer) ends when the client leaves.
  const outcome = await whileWatching(reader, (presence) => decideAndForward(head, target, framing, reader, ctx, slot, presence));
  if (!(outcome instanceof PeerLeftError)) return outcome;
  ctx.log.log("debug", TARGET.http, `client ${formatAddr(client.remote)} left before its ${head.method} was answered: ${outcome.detail}`);
  slot.current?.close();
  slot.current = undefined;
  return "close";
}

async function decideAndForward(
  head: RequestHead,
  target: RequestTarget,
  framing: BodyFraming,
  reader: BufferedReader,
  ctx: SessionContext,
  slot: UpstreamSlot,
  presence: LeaveWatch,
): Promise<RequestOutcome> {
  const client = reader.conn;
  const hasBody = carriesBody(framing);
  const keepAlive = wantsKeepAlive(head.version, head.headers);
  // A refused request's body is not read, so the connection cannot carry another request.
  const keepAfterRefusal = keepAlive && !hasBody;

  const snap = ctx.state.snapshot();
  const request: ExchangeRequest = { head, target, framing, keepAlive, presence, bodyIdleMs: bodyIdleMs(snap.network.request_body_idle_timeout_secs) };
  const socketPath = requestedUnixSocket(head);
  if (socketPath !== undefined) {
    const to = await allowUnixSocket(head, socketPath, snap, client, ctx, keepAfterRefusal);
    return to.kind === "answered" ? to.outcome : exchange(request, to.destination, reader, ctx, slot);
  }
  const facts = { protocol: "http" as const, port: target.port, method: head.method, client: formatAddr(client.remote) };
  // An upgrade (WebSocket…) opens a two-way channel: a write channel limited mode must refuse.
  const upgrade = hasBody ? undefined : requestedUpgrade(head.headers);
  const limitedRefuses = !LIMITED_MODE_METHODS.has(head.method) || upgrade !== undefined;
  const decided = await decideRequest(ctx, snap, head, client, facts, target.host, keepAfterRefusal, limitedRefuses, presence);
  if ("answered" in decided) return decided.answered;
  const verdict = decided.allowed;
  ctx.log.log("debug", TARGET.http, `${head.method} ${verdict.host}:${target.port} allowed for ${facts.client}`);
  const proxy = snap.network.allow_upstream_proxy && ctx.upstream ? proxyFor(ctx.upstream, target.tls ? "tunnel" : "plain", verdict.host, target.port) : undefined;
  const withUpgrade: ExchangeRequest = { ...request, upgrade };
  if (target.tls) {
    const connectTls = ctx.net.connectTls;
    if (!connectTls) return refuseMalformed(ctx, client, 501, "absolute-form https:// is not supported on this runtime; use CONNECT");
    if (proxy) return refuseMalformed(ctx, client, 501, "absolute-form https:// through an upstream proxy is not supported; use CONNECT");
    const tls = { serverName: verdict.host, extraCa: ctx.extraCa };
    const dest: Destination = {
      key: `tls|${upstreamKey(verdict.host, target.port, verdict.addresses)}`,
      host: verdict.host,
      port: target.port,
      dial: () => dialVetted(dialScope(ctx, presence.signal), verdict.host, target.port, verdict.addresses, (addr, options) => connectTls(addr, tls, options)),
    };
    return exchange(withUpgrade, dest, reader, ctx, slot);
  }
  const destination: Destination = proxy
    ? { key: `proxy|${proxy.display}`, host: verdict.host, port: target.port, dial: () => dialProxy(dialScope(ctx, presence.signal), proxy), via: proxy }
    : {
        key: upstreamKey(verdict.host, target.port, verdict.addresses),
        host: verdict.host,
        port: target.port,
        dial: () => dialVetted(dialScope(ctx, presence.signal), verdict.host, target.port, verdict.addresses),
      };
  return exchange(withUpgrade, destination, reader, ctx, slot);
}

/** `request_body_idle_timeout_secs` in ms; 0 means no limit. */
function bodyIdleMs(secs: number): number | undefined {
  return secs > 0 ? secs * 1000 : undefined;
}
