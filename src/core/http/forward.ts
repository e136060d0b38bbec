/**
 * Forwarding of one plain HTTP request (absolute-form or origin-form): decide (the limited-mode
 * method guard included), then pick the destination (the vetted origin, TLS to it for
 * `https://` targets, an upstream proxy, or an allowed unix socket) and hand it to the
 * {@link exchange}. From the parsed head on, every wait ends when the client leaves.
 *
 * @module
 */
import { basicProxyUser } from "../attribution.ts";
import { passGate, refuseLoopAtDial, refuseTunnel } from "../gate/gate.ts";
import type { GateRequest } from "../gate/types.ts";
import { dialScope, dialVetted } from "../net/dial.ts";
import { dialProxy } from "../net/upstream-proxy.ts";
import { PeerLeftError, whileWatching, type BufferedReader, type LeaveWatch } from "../net/reader.ts";
import { formatAddr } from "../net/contract.ts";
import { TARGET } from "../log.ts";
import { applyHook } from "../mitm/hooks.ts";
import type { SessionContext } from "../session-context.ts";
import { exchange, type Destination, type ExchangeRequest } from "./exchange.ts";
import { checkRequest } from "./checked-request.ts";
import { carriesBody, type BodyFraming } from "./framing.ts";
import { requestedUpgrade, wantsKeepAlive } from "./headers.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { answerRefusal, refuseMalformed, type RequestOutcome } from "./reply.ts";
import { requestTarget, type RequestTarget, type TargetError } from "./target.ts";
import { requestedUnixSocket } from "./unix-socket.ts";
import { destinationKey, type UpstreamSlot } from "./upstream.ts";

/**
 * Decide and forward one non-CONNECT request. `targetOf` finds where it goes (by default from
 * its target and `Host`; inside an intercepted tunnel, the tunnel's origin over TLS), and
 * `tunnelCredential` is the attribution credential of that tunnel's CONNECT.
 */
export async function forwardRequest(
  head: RequestHead,
  reader: BufferedReader,
  ctx: SessionContext,
  slot: UpstreamSlot,
  targetOf: (head: RequestHead) => RequestTarget | TargetError = requestTarget,
  tunnelCredential?: string,
): Promise<RequestOutcome> {
  const client = reader.conn;
  const checked = checkRequest(head, targetOf);
  if ("problem" in checked) return refuseMalformed(ctx, client, checked.problem.status, checked.problem.message);
  const { target, framing } = checked;
  // From here on, every wait (DNS vetting, dial, the upstream's answer) ends when the client leaves.
  const outcome = await whileWatching(reader, (presence) => decideAndForward(head, target, framing, reader, ctx, slot, presence, tunnelCredential));
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
  tunnelCredential: string | undefined,
): Promise<RequestOutcome> {
  const client = reader.conn;
  const hasBody = carriesBody(framing);
  const keepAlive = wantsKeepAlive(head.version, head.headers);
  // A refused request's body is not read, so the connection cannot carry another request.
  const keepAfterRefusal = keepAlive && !hasBody;
  const socketPath = requestedUnixSocket(head);
  // An upgrade (WebSocket…) opens a two-way channel: a write channel limited mode must refuse.
  const upgrade = hasBody || socketPath !== undefined ? undefined : requestedUpgrade(head.headers);
  const ask: GateRequest = {
    protocol: "http",
    host: target.host,
    port: socketPath === undefined ? target.port : 0,
    method: head.method,
    client: formatAddr(client.remote),
    // inside an intercepted tunnel, clients sent their proxy credential on the CONNECT only
    credential: basicProxyUser(headerValues(head.headers, "proxy-authorization")[0]) ?? tunnelCredential,
    upgrade: upgrade !== undefined,
    unixSocket: socketPath,
    tls: target.tls,
    content: { path: target.path, headers: head.headers },
  };
  // Read before deciding: a connection opened for this request is pooled only while this policy lasts.
  const generation = ctx.state.snapshot();
  // An upgrade becomes a two-way channel: it holds a tunnel slot (`max_tunnels`) until it ends.
  const release = upgrade !== undefined && generation.network.enabled ? ctx.limits?.openTunnel(generation.network.max_tunnels) : undefined;
  if (upgrade !== undefined && generation.network.enabled && ctx.limits && !release) {
    return answerRefusal(client, refuseTunnel(ctx, ask), head.method, keepAfterRefusal);
  }
  try {
    const verdict = await passGate(ctx, ask, presence);
    if (verdict.kind === "refused") return answerRefusal(client, verdict.refusal, head.method, keepAfterRefusal);
    const { host, plan } = verdict;
    // the line is made only when it is logged: a request per line is the hot path
    if (ctx.log.enabled("debug", TARGET.http)) ctx.log.log("debug", TARGET.http, `${head.method} ${host}:${target.port} allowed for ${ask.client}`);
    const request: ExchangeRequest = {
      // a matching `mitm_hooks` entry strips and injects headers (its secrets never reach a log)
      head: verdict.hook ? { ...head, headers: applyHook(head.headers, verdict.hook) } : head,
      target,
      framing,
      keepAlive,
      presence,
      upgrade,
      bodyIdleMs: bodyIdleMs(generation.network.request_body_idle_timeout_secs),
      refuseLoop: () => refuseLoopAtDial(ctx, ask, host),
      generation,
    };
    const dialCtx = () => dialScope(ctx, presence.signal);
    if (plan.kind === "unix") {
      const connectUnix = ctx.net.connectUnix!;
      return await exchange(request, { key: destinationKey.unix(plan.path), host, port: 0, dial: () => connectUnix(plan.path) }, reader, ctx, slot);
    }
    if (target.tls) {
      const connectTls = ctx.net.connectTls;
      if (!connectTls) return refuseMalformed(ctx, client, 501, "absolute-form https:// is not supported on this runtime; use CONNECT");
      if (plan.kind === "upstream") return refuseMalformed(ctx, client, 501, "absolute-form https:// through an upstream proxy is not supported; use CONNECT");
      const tls = { serverName: host, extraCa: ctx.extraCa };
      const dest: Destination = {
        key: destinationKey.tls(host, target.port, plan.addresses),
        host,
        port: target.port,
        dial: () => dialVetted(dialCtx(), host, target.port, plan.addresses, (addr, options) => connectTls(addr, tls, options)),
      };
      return await exchange(request, dest, reader, ctx, slot);
    }
    const destination: Destination =
      plan.kind === "upstream"
        ? { key: destinationKey.proxy(plan.proxy.display, plan.addresses), host, port: target.port, dial: () => dialProxy(dialCtx(), plan.proxy, plan.addresses), via: plan.proxy }
        : { key: destinationKey.direct(host, target.port, plan.addresses), host, port: target.port, dial: () => dialVetted(dialCtx(), host, target.port, plan.addresses) };
    return await exchange(request, destination, reader, ctx, slot);
  } finally {
    release?.();
  }
}

/** `request_body_idle_timeout_secs` in ms; 0 means no limit. */
function bodyIdleMs(secs: number): number | undefined {
  return secs > 0 ? secs * 1000 : undefined;
}
