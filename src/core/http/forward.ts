/**
 * Forwarding of one plain HTTP request (absolute-form or origin-form): decide, apply the
 * limited-mode method guard, send it upstream in origin-form without hop-by-hop headers, and
 * stream both bodies re-framed. Upstream connections are kept alive and reused for the next
 * request of the same client to the same vetted destination.
 *
 * @module
 */
import { latin1Bytes } from "../net/bytes.ts";
import { dialVetted, ProxyLoopError } from "../net/dial.ts";
import { dialProxy, proxyFor, type UpstreamProxy } from "../net/upstream-proxy.ts";
import { relay } from "../net/relay.ts";
import { ReadTimeoutError, type BufferedReader } from "../net/reader.ts";
import { DialError, formatAddr, type Conn } from "../net/contract.ts";
import { TARGET } from "../log.ts";
import type { SessionContext } from "../session-context.ts";
import { BodyError, copyBody, type BodyOutput } from "./body.ts";
import { decideRequest } from "./decide.ts";
import { carriesBody, isFramingError, requestFraming, responseFraming, type BodyFraming } from "./framing.ts";
import { endToEndHeaders, requestedUpgrade, serializeHead, wantsKeepAlive } from "./headers.ts";
import { headerValues, parseResponseHead, type HttpHeader, type RequestHead, type ResponseHead } from "./parser.ts";
import { textResponse } from "./responses.ts";
import { refuseByState, refuseMalformed, writeQuietly, type RequestOutcome } from "./reply.ts";
import { LIMITED_MODE_METHODS } from "./methods.ts";
import { isTargetError, requestTarget, type RequestTarget } from "./target.ts";
import { allowUnixSocket, requestedUnixSocket } from "./unix-socket.ts";
import { Upstream, upstreamKey, type UpstreamSlot } from "./upstream.ts";

/** How long an upstream may take to start its response after the request was sent. */
export const RESPONSE_HEAD_TIMEOUT_MS = 300_000;
/** Most interim (1xx) responses relayed before the final one. */
const MAX_INTERIM_RESPONSES = 10;

/** Decide and forward one non-CONNECT request. */
export async function forwardRequest(head: RequestHead, reader: BufferedReader, ctx: SessionContext, slot: UpstreamSlot): Promise<RequestOutcome> {
  const client = reader.conn;
  const target = requestTarget(head);
  if (isTargetError(target)) return refuseMalformed(ctx, client, target.status, target.message);
  const framing = requestFraming(head);
  if (isFramingError(framing)) return refuseMalformed(ctx, client, framing.status, framing.message);
  const hasBody = carriesBody(framing);
  const keepAlive = wantsKeepAlive(head.version, head.headers);
  // A refused request's body is not read, so the connection cannot carry another request.
  const keepAfterRefusal = keepAlive && !hasBody;

  const snap = ctx.state.snapshot();
  const socketPath = requestedUnixSocket(head);
  if (socketPath !== undefined) {
    const to = await allowUnixSocket(head, socketPath, snap, client, ctx, keepAfterRefusal);
    return to.kind === "answered" ? to.outcome : exchange(head, target, framing, keepAlive, to.destination, reader, ctx, slot);
  }
  const facts = { protocol: "http" as const, port: target.port, method: head.method, client: formatAddr(client.remote) };
  // An upgrade (WebSocket…) opens a two-way channel: a write channel limited mode must refuse.
  const upgrade = hasBody ? undefined : requestedUpgrade(head.headers);
  const limitedRefuses = !LIMITED_MODE_METHODS.has(head.method) || upgrade !== undefined;
  const decided = await decideRequest(ctx, snap, head, client, facts, target.host, keepAfterRefusal, limitedRefuses);
  if ("answered" in decided) return decided.answered;
  const verdict = decided.allowed;
  ctx.log.log("debug", TARGET.http, `${head.method} ${verdict.host}:${target.port} allowed for ${facts.client}`);
  const proxy = snap.network.allow_upstream_proxy && ctx.upstream ? proxyFor(ctx.upstream, target.tls ? "tunnel" : "plain", verdict.host, target.port) : undefined;
  if (target.tls) {
    const connectTls = ctx.net.connectTls;
    if (!connectTls) return refuseMalformed(ctx, client, 501, "absolute-form https:// is not supported on this runtime; use CONNECT");
    if (proxy) return refuseMalformed(ctx, client, 501, "absolute-form https:// through an upstream proxy is not supported; use CONNECT");
    const tls = { serverName: verdict.host, extraCa: ctx.extraCa };
    const dest: Destination = {
      key: `tls|${upstreamKey(verdict.host, target.port, verdict.addresses)}`,
      host: verdict.host,
      port: target.port,
      dial: () => dialVetted(ctx, verdict.host, target.port, verdict.addresses, (addr, options) => connectTls(addr, tls, options)),
    };
    return exchange(head, target, framing, keepAlive, dest, reader, ctx, slot, upgrade);
  }
  const destination: Destination = proxy
    ? { key: `proxy|${proxy.display}`, host: verdict.host, port: target.port, dial: () => dialProxy(ctx, proxy), via: proxy }
    : {
        key: upstreamKey(verdict.host, target.port, verdict.addresses),
        host: verdict.host,
        port: target.port,
        dial: () => dialVetted(ctx, verdict.host, target.port, verdict.addresses),
      };
  return exchange(head, target, framing, keepAlive, destination, reader, ctx, slot, upgrade);
}

/** Where an allowed request goes: a vetted TCP origin or an allowed unix socket. */
export interface Destination {
  /** Identity for upstream reuse: equal keys may share a kept-alive connection. */
  readonly key: string;
  /** Host and port for logs and refusals (`unix-socket` and 0 for a unix socket). */
  readonly host: string;
  readonly port: number;
  /** Open a fresh connection; may throw `ProxyLoopError` or `DialError`. */
  dial(): Promise<Conn>;
  /** Set when the connection goes to an upstream proxy: requests are sent in absolute-form. */
  readonly via?: UpstreamProxy;
}

/** Send the request to `dest` and relay the response. */
export async function exchange(
  head: RequestHead,
  target: RequestTarget,
  framing: BodyFraming,
  keepAlive: boolean,
  dest: Destination,
  reader: BufferedReader,
  ctx: SessionContext,
  slot: UpstreamSlot,
  upgrade?: string,
): Promise<RequestOutcome> {
  const client = reader.conn;
  const hasBody = carriesBody(framing);
  const key = dest.key;
  if (slot.current && slot.current.key !== key) {
    slot.current.close();
    slot.current = undefined;
  }
  const requestBytes = latin1Bytes(upstreamRequestHead(head, target, framing, upgrade, dest.via));
  const upstreamFailure = async (why: string, tlsFailure = false): Promise<RequestOutcome> => {
    ctx.log.log("info", TARGET.http, `upstream ${dest.host}:${dest.port} failed: ${why}`);
    slot.current?.close();
    slot.current = undefined;
    // A certificate the proxy cannot verify is named as such: the client must not mistake it for an outage.
    const text = tlsFailure ? `upstream failure: ${why}` : "upstream failure";
    await writeQuietly(client, textResponse(502, text, keepAlive && !hasBody));
    return keepAlive && !hasBody ? "keep" : "close";
  };

  // Send the head; a reused connection the origin closed meanwhile is retried once on a fresh
  // one when nothing but the head was sent.
  let up: Upstream;
  let response: ResponseHead | undefined;
  let pump: Promise<void> | undefined;
  let pumpError: unknown;
  let pumpDone = false;
  for (;;) {
    if (!slot.current) {
      try {
        const conn = await dest.dial();
        slot.current = new Upstream(key, conn, ctx.track(conn));
      } catch (e) {
        if (e instanceof ProxyLoopError) {
          const facts = { protocol: "http" as const, port: dest.port, method: head.method, client: formatAddr(client.remote) };
          return refuseByState(ctx, ctx.state.snapshot(), client, facts, dest.host, "proxy_state", "proxy_loop", keepAlive && !hasBody);
        }
        return upstreamFailure((e as Error).message, e instanceof DialError && e.kind === "tls");
      }
    }
    up = slot.current;
    const reused = up.used;
    up.used = true;
    try {
      await up.conn.write(requestBytes);
    } catch (e) {
      if (reused && !hasBody) {
        up.close();
        slot.current = undefined;
        continue;
      }
      return upstreamFailure((e as Error).message);
    }
    if (hasBody && !pump) {
      const current = up;
      const output: BodyOutput = framing.kind === "chunked" ? "chunked" : "raw";
      pump = copyBody(reader, framing, current.conn, output).then(
        () => {
          pumpDone = true;
        },
        (e) => {
          pumpError = e;
          pumpDone = true;
          current.close(); // unblock the response read: the upstream will not get a complete request
        },
      );
    }
    try {
      response = await readFinalResponseHead(up, head, client, upgrade !== undefined);
    } catch (e) {
      if (pumpError instanceof BodyError) {
        slot.current = undefined;
        return refuseMalformed(ctx, client, 400, pumpError.message);
      }
      if (e instanceof StaleUpstream && reused && !hasBody) {
        up.close();
        slot.current = undefined;
        continue;
      }
      return upstreamFailure((e as Error).message);
    }
    break;
  }

  if (response.status === 101) return switchProtocols(response, reader, up, ctx, slot, dest);
  // The upstream proxy refused our credentials: that is our failure, not something the client
  // can answer (its own Proxy-Authorization is never passed on), so no 407 reaches it.
  if (dest.via && response.status === 407) return upstreamFailure(`upstream proxy ${dest.via.display} answered 407 Proxy Authentication Required`);
  const rf = responseFraming(response, head.method);
  if (isFramingError(rf)) return upstreamFailure(rf.message);
  let clientKeep = keepAlive;
  let output: BodyOutput = "raw";
  const headers = endToEndHeaders(response.headers);
  if (rf.kind === "length") {
    headers.push({ name: "Content-Length", value: String(rf.length) });
  } else if (rf.kind === "chunked" || rf.kind === "close") {
    if (head.version === "1.1") {
      headers.push({ name: "Transfer-Encoding", value: "chunked" });
      output = "chunked";
    } else {
      clientKeep = false;
    }
  } else {
    const cl = headerValues(response.headers, "content-length")[0];
    if (cl !== undefined && /^\d+$/.test(cl.trim())) headers.push({ name: "Content-Length", value: cl.trim() });
  }
  let upstreamReusable = wantsKeepAlive(response.version, response.headers) && rf.kind !== "close";
  headers.push({ name: "Connection", value: clientKeep ? "keep-alive" : "close" });
  await client.write(latin1Bytes(serializeHead(`HTTP/1.1 ${response.status} ${response.reason}`, headers)));
  try {
    await copyBody(up.reader, rf, client, output);
  } catch (e) {
    if (!(e instanceof BodyError)) throw e; // the client went away: the session closes everything
    ctx.log.log("info", TARGET.http, `upstream ${dest.host}:${dest.port} body failed: ${e.message}`);
    up.close();
    slot.current = undefined;
    return "close";
  }
  // The response is complete. If the request body was not fully sent (the origin answered
  // early, or the client sent a bad body), neither connection is in a known state any more.
  if (hasBody && (!pumpDone || pumpError !== undefined)) {
    clientKeep = false;
    upstreamReusable = false;
  }
  if (!upstreamReusable) {
    up.close();
    slot.current = undefined;
  }
  return clientKeep ? "keep" : "close";
}

/**
 * The origin accepted an upgrade (101): pass its answer on, then both connections become one
 * byte relay (with half-close) until both sides are done. The connections are not reused.
 */
async function switchProtocols(
  response: ResponseHead,
  reader: BufferedReader,
  up: Upstream,
  ctx: SessionContext,
  slot: UpstreamSlot,
  dest: Destination,
): Promise<RequestOutcome> {
  const client = reader.conn;
  slot.current = undefined;
  try {
    const headers = endToEndHeaders(response.headers);
    const to = requestedUpgrade(response.headers) ?? headerValues(response.headers, "upgrade").join(", ");
    headers.push({ name: "Connection", value: "Upgrade" }, { name: "Upgrade", value: to });
    await client.write(latin1Bytes(serializeHead(`HTTP/1.1 101 ${response.reason}`, headers)));
    const early = up.reader.takeBuffered(); // frames the origin sent right after its 101
    if (early.length > 0) await client.write(early);
    ctx.log.log("info", TARGET.http, `upgrade to ${to} with ${dest.host}:${dest.port} for ${formatAddr(client.remote)}`);
    await relay(ctx.net, client, up.conn, reader.takeBuffered());
  } finally {
    up.close();
  }
  return "close";
}

/** The upstream closed before answering a request sent on a reused connection. */
class StaleUpstream extends Error {}

/** Read the final response head, relaying interim 1xx responses to HTTP/1.1 clients. */
async function readFinalResponseHead(up: Upstream, head: RequestHead, client: Conn, upgrading: boolean): Promise<ResponseHead> {
  const deadline = Date.now() + RESPONSE_HEAD_TIMEOUT_MS;
  for (let interim = 0; ; interim++) {
    const r = await readResponseHead(up, deadline);
    if (r.status >= 200) return r;
    if (r.status === 101) {
      if (upgrading) return r;
      throw new Error("101 Switching Protocols to a request that asked for no upgrade");
    }
    if (interim >= MAX_INTERIM_RESPONSES) throw new Error(`more than ${MAX_INTERIM_RESPONSES} interim responses`);
    if (head.version === "1.1") {
      await client.write(latin1Bytes(serializeHead(`HTTP/1.1 ${r.status} ${r.reason}`, endToEndHeaders(r.headers))));
    }
  }
}

async function readResponseHead(up: Upstream, deadline: number): Promise<ResponseHead> {
  const reader = up.reader;
  for (;;) {
    if (reader.buffered.length > 0) {
      const r = parseResponseHead(reader.buffered);
      if (r.kind === "ok") {
        reader.consume(r.size);
        return r.head;
      }
      if (r.kind === "error") throw new Error(`bad response head: ${r.message}`);
    }
    const hadBytes = reader.buffered.length > 0;
    let more: boolean;
    try {
      more = await reader.fill(deadline);
    } catch (e) {
      if (e instanceof ReadTimeoutError) throw new Error(`no response head within ${RESPONSE_HEAD_TIMEOUT_MS} ms`);
      if (!hadBytes) throw new StaleUpstream((e as Error).message);
      throw e;
    }
    if (!more) {
      if (!hadBytes) throw new StaleUpstream("upstream closed before responding");
      throw new Error("upstream closed inside the response head");
    }
  }
}

/** The request head as sent upstream: origin-form, end-to-end headers, our own framing. */
function upstreamRequestHead(head: RequestHead, target: RequestTarget, framing: BodyFraming, upgrade?: string, via?: UpstreamProxy): string {
  // Host is always the authority the policy decided on, first, whatever `Connection` named.
  const headers: HttpHeader[] = [{ name: "Host", value: target.authority }];
  for (const h of endToEndHeaders(head.headers)) if (h.name.toLowerCase() !== "host") headers.push(h);
  if (framing.kind === "length") headers.push({ name: "Content-Length", value: String(framing.length) });
  else if (framing.kind === "chunked") headers.push({ name: "Transfer-Encoding", value: "chunked" });
  if (upgrade !== undefined) headers.push({ name: "Connection", value: "Upgrade" }, { name: "Upgrade", value: upgrade });
  if (!via) return serializeHead(`${head.method} ${target.path} HTTP/1.1`, headers);
  // Through an upstream proxy: absolute-form, and its credentials (the client's never pass).
  if (via.authorization) headers.push({ name: "Proxy-Authorization", value: via.authorization });
  const authority = target.host.includes(":") ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return serializeHead(`${head.method} http://${authority}${target.path === "*" ? "" : target.path} HTTP/1.1`, headers);
}

