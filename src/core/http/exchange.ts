/**
 * One allowed request sent upstream and its response relayed back: the head in origin-form
 * (absolute-form through an upstream proxy) without hop-by-hop headers, both bodies streamed
 * and re-framed, interim responses passed on, an accepted upgrade turned into a byte relay.
 * Upstream connections are kept alive and reused for the next request of the same client to
 * the same destination.
 *
 * What ends an exchange early, each without harm to anything else:
 * - the client leaving, seen by its {@link LeaveWatch} while the proxy waits on the upstream
 *   (dial, response head, response body): the upstream is dropped at once;
 * - a request body that makes no progress for `request_body_idle_timeout_secs`: no byte from
 *   the client (`408`), or an origin that takes none (`502`). While the body is copied, the copy
 *   itself reads the client; when the origin stops reading, flow control stops the client too,
 *   and a client leaving then is seen only through this limit;
 * - a response complete before the request body was (the origin answered early): the response
 *   says `Connection: close`, the upstream is dropped, and the session's graceful close reads
 *   and discards the rest of the body, so the client can read the whole response (RFC 9112
 *   §9.6).
 *
 * @module
 */
import { DialError, formatAddr, type Conn } from "../net/contract.ts";
import { ProxyLoopError } from "../net/dial.ts";
import { ReadTimeoutError, type BufferedReader, type LeaveWatch } from "../net/reader.ts";
import { relay, tunnelIdle } from "../net/relay.ts";
import { countsNow, noteTunnelEnd, tunnelEnd, tunnelRecord } from "../audit/connection.ts";
import type { UpstreamProxy } from "../net/upstream-proxy.ts";
import { TARGET } from "../log.ts";
import type { SessionContext } from "../session-context.ts";
import { BodyError, BodyIdleError, BodyStallError, copyBody, COPY_STOPPED, type BodyOutput } from "./body.ts";
import { carriesBody, isDigits, isFramingError, responseFraming, type BodyFraming } from "./framing.ts";
import { endToEndHeaders, keepsAlive, requestedUpgrade } from "./headers.ts";
import { headBytes, responseHeadBytes } from "./head-bytes.ts";
import { headerValues, parseResponseHead, type HttpHeader, type RequestHead, type ResponseHead } from "./parser.ts";
import { answerRefusal, answerUpstreamFailure, refuseMalformed, type RequestOutcome } from "./reply.ts";
import type { Refusal } from "./responses.ts";
import type { RequestTarget } from "./target.ts";
import { bindsConnection, Upstream, type UpstreamSlot } from "./upstream.ts";
import { releaseUpstream } from "./upstream-pool.ts";

/** How long an upstream may take to start its response after the request was sent. */
export const RESPONSE_HEAD_TIMEOUT_MS = 300_000;
/** Most interim (1xx) responses relayed before the final one. */
const MAX_INTERIM_RESPONSES = 10;

/** Where an allowed request goes: a vetted TCP origin or an allowed unix socket. */
export interface Destination {
  /** Identity for upstream reuse: equal keys may share a kept-alive connection. */
  readonly key: string;
  /** Host and port for logs and refusals (`unix-socket` and 0 for a unix socket). */
  readonly host: string;
  readonly port: number;
  /** Open a fresh connection; may throw `DialError`, or `ProxyLoopError` for a name resolved here. */
  dial(): Promise<Conn>;
  /** Set when the connection goes to an upstream proxy: requests are sent in absolute-form. */
  readonly via?: UpstreamProxy;
}

/** One allowed request, as {@link exchange} sends it. */
export interface ExchangeRequest {
  readonly head: RequestHead;
  readonly target: RequestTarget;
  readonly framing: BodyFraming;
  /** The client asked to keep its connection. */
  readonly keepAlive: boolean;
  /** The protocol asked for (`websocket`…) when the request is an upgrade. */
  readonly upgrade?: string;
  /** Watches the client while the exchange waits on the upstream. */
  readonly presence: LeaveWatch;
  /** Longest the request body may make no progress (`request_body_idle_timeout_secs`); unset: none. */
  readonly bodyIdleMs?: number;
  /** Record the refusal of a dial that reached one of the proxy's own listeners (the gate's). */
  readonly refuseLoop: () => Refusal;
  /** The policy snapshot in force before the request was decided (stamped on a new upstream). */
  readonly generation?: object;
}

/**
 * Methods whose request may be sent again (RFC 9110 §9.2.2): only these take an idle connection
 * from the shared pool, where the one retry on a connection the origin closed meanwhile is safe.
 */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/**
 * Send `request` to `dest` and relay the response. When the client leaves, the upstream is
 * closed at once and the exchange rejects with the watch's `PeerLeftError`.
 */
export async function exchange(request: ExchangeRequest, dest: Destination, reader: BufferedReader, ctx: SessionContext, slot: UpstreamSlot): Promise<RequestOutcome> {
  // the session's kept upstream serves only the same destination, and only while the policy it
  // was opened under is in force: after a reload or a mode change it is closed (the pool keeps
  // no stale connection either), and the request gets a connection opened under the new one
  if (slot.current && (slot.current.key !== dest.key || slot.current.generation !== request.generation)) releaseUpstream(slot, ctx.pool);
  // The client left: nothing more is owed to it, so the upstream is dropped at once.
  const off = request.presence.onLeave(() => slot.current?.abort());
  const run = new Exchange(request, dest, reader, ctx, slot);
  try {
    return await run.run();
  } finally {
    off();
    await run.stopBodyCopy();
  }
}

/** The state of one exchange: the upstream in use and the request body's copy. */
class Exchange {
  private readonly client: Conn;
  private readonly hasBody: boolean;
  /** Set to stop copying the request body (see `CopyOptions.stop`). */
  private readonly copyStop = { stopped: false };
  /** The request body's copy, once started; never rejects. */
  private copying: Promise<void> | undefined;
  /** The upstream the copy writes to. */
  private copyUpstream: Upstream | undefined;
  private copyDone = false;
  private copyError: unknown;

  constructor(
    private readonly request: ExchangeRequest,
    private readonly dest: Destination,
    private readonly reader: BufferedReader,
    private readonly ctx: SessionContext,
    private readonly slot: UpstreamSlot,
  ) {
    this.client = reader.conn;
    this.hasBody = carriesBody(request.framing);
  }

  /** Whether the client connection can carry another request after a failure answered now. */
  private get keepAfterFailure(): boolean {
    return this.request.keepAlive && !this.hasBody;
  }

  /** Stop copying the request body and wait until the copy no longer reads the client. */
  async stopBodyCopy(): Promise<void> {
    if (!this.copying) return;
    this.copyStop.stopped = true;
    if (!this.copyDone) {
      // The request will never be complete: drop the upstream at once, which also ends a
      // write stuck on an origin that stopped reading; and withdraw the copy's read of the
      // client (only a copy still running reads it; once done, the watch may be reading).
      this.copyUpstream?.abort();
      if (this.slot.current === this.copyUpstream) this.slot.current = undefined;
      this.reader.conn.cancelRead(COPY_STOPPED);
    }
    await this.copying;
  }

  async run(): Promise<RequestOutcome> {
    const sent = await this.send();
    if (typeof sent === "string") return sent;
    return this.relayResponse(sent.up, sent.response);
  }

  /** Rethrow the client's leaving, if it left; the caller's failure is then moot. */
  private throwIfLeft(): void {
    this.request.presence.throwIfLeft();
  }

  /** Answer a failure of the upstream with a 502 (naming a certificate failure). */
  private upstreamFailure(why: string, tlsFailure = false): Promise<RequestOutcome> {
    this.slot.current?.close();
    this.slot.current = undefined;
    this.throwIfLeft();
    return answerUpstreamFailure(this.ctx, this.client, this.dest, why, this.keepAfterFailure, tlsFailure);
  }

  /**
   * Send the head (and start the body) and read the final response head. A reused connection
   * the origin closed meanwhile is retried once on a fresh one when nothing but the head was sent.
   */
  private async send(): Promise<{ readonly up: Upstream; readonly response: ResponseHead } | RequestOutcome> {
    const { head, target, framing, upgrade } = this.request;
    const requestBytes = upstreamRequestHead(head, target, framing, upgrade, this.dest.via);
    for (;;) {
      const up = this.slot.current ?? (await this.open());
      if (!(up instanceof Upstream)) return up;
      const reused = up.used;
      up.used = true;
      const retryable = reused && !this.hasBody;
      try {
        await up.conn.write(requestBytes);
      } catch (e) {
        this.throwIfLeft();
        if (retryable) {
          this.discard(up);
          continue;
        }
        return this.upstreamFailure((e as Error).message);
      }
      if (this.hasBody && !this.copying) await this.startBodyCopy(up);
      try {
        return { up, response: await readFinalResponseHead(up, head, this.client, upgrade !== undefined) };
      } catch (e) {
        this.throwIfLeft();
        const bad = this.copyError;
        if (bad instanceof BodyStallError) return this.upstreamFailure(bad.message);
        if (bad instanceof BodyError) {
          this.slot.current = undefined;
          if (bad instanceof BodyIdleError) return refuseMalformed(this.ctx, this.client, 408, `request body: ${bad.message}`);
          return refuseMalformed(this.ctx, this.client, 400, bad.message);
        }
        if (e instanceof StaleUpstream && retryable) {
          this.discard(up);
          continue;
        }
        return this.upstreamFailure((e as Error).message);
      }
    }
  }

  /**
   * An idle pooled connection to the destination (not for a request with a body: a stale one
   * could not be retried once the body went out), else a new dial into the slot; a refusal or
   * failure is answered here.
   */
  private async open(): Promise<Upstream | RequestOutcome> {
    const poolable = !this.hasBody && IDEMPOTENT_METHODS.has(this.request.head.method);
    const pooled = poolable ? this.ctx.pool?.take(this.dest.key) : undefined;
    if (pooled) {
      this.slot.current = pooled;
      return pooled;
    }
    let conn: Conn;
    try {
      conn = await this.dest.dial();
    } catch (e) {
      this.throwIfLeft();
      // A name resolved when dialling reached one of the proxy's own listeners.
      if (e instanceof ProxyLoopError) return answerRefusal(this.client, this.request.refuseLoop(), this.request.head.method, this.keepAfterFailure);
      return this.upstreamFailure((e as Error).message, e instanceof DialError && e.kind === "tls");
    }
    if (this.request.presence.reason) conn.close();
    this.throwIfLeft();
    const ctx = this.ctx;
    ctx.track(conn);
    this.slot.current = new Upstream(this.dest.key, conn, () => ctx.untrack(conn), this.request.generation);
    return this.slot.current;
  }

  private discard(up: Upstream): void {
    up.close();
    this.slot.current = undefined;
  }

  /**
   * Copy the request body upstream beside the wait for the response. The copy reads the
   * client now, so the watch pauses; it resumes once the body is through. A failed copy closes
   * the upstream, which ends the wait for a response that cannot come.
   */
  private async startBodyCopy(up: Upstream): Promise<void> {
    const { framing, presence, bodyIdleMs } = this.request;
    await presence.pause();
    this.copyUpstream = up;
    const output: BodyOutput = framing.kind === "chunked" ? "chunked" : "raw";
    this.copying = copyBody(this.reader, framing, up.conn, output, { idleMs: bodyIdleMs, stop: this.copyStop }).then(
      () => {
        this.copyDone = true;
        if (!this.copyStop.stopped) presence.start();
      },
      (e: unknown) => {
        this.copyError = e;
        this.copyDone = true;
        up.abort(); // the request will never be complete; this also ends the wait for its answer
      },
    );
  }

  /** Relay the final response (or switch protocols on a 101). */
  private async relayResponse(up: Upstream, response: ResponseHead): Promise<RequestOutcome> {
    const { head, keepAlive, presence } = this.request;
    const dest = this.dest;
    if (response.status === 101) {
      await presence.pause();
      return switchProtocols(response, this.reader, up, this.ctx, this.slot, dest);
    }
    // The upstream proxy refused our credentials: that is our failure, not something the client
    // can answer (its own Proxy-Authorization is never passed on), so no 407 reaches it.
    if (dest.via && response.status === 407) return this.upstreamFailure(`upstream proxy ${dest.via.display} answered 407 Proxy Authentication Required`);
    const rf = responseFraming(response, head.method);
    if (isFramingError(rf)) return this.upstreamFailure(rf.message);
    // A response that comes before the whole request body was relayed ends the connection:
    // the rest of the body is never sent upstream, so neither side can carry another request.
    const bodyPending = this.hasBody && !this.copyDone;
    let clientKeep = keepAlive && !bodyPending;
    let output: BodyOutput = "raw";
    // The response's fields are read in place and its head written as bytes (head-bytes.ts).
    const fields = response.fields;
    const extra: HttpHeader[] = [];
    if (rf.kind === "length") {
      extra.push({ name: "Content-Length", value: String(rf.length) });
    } else if (rf.kind === "chunked" || rf.kind === "close") {
      if (head.version === "1.1") {
        extra.push({ name: "Transfer-Encoding", value: "chunked" });
        output = "chunked";
      } else {
        clientKeep = false;
      }
    } else {
      const cl = fields.values("content-length")[0];
      const length = cl?.trim();
      if (length !== undefined && isDigits(length)) extra.push({ name: "Content-Length", value: length });
    }
    const connection = fields.tokens("connection");
    let upstreamReusable = keepsAlive(response.version, connection.concat(fields.tokens("proxy-connection"))) && rf.kind !== "close";
    // Connection-bound authentication ties the upstream to this client: never shared.
    if (bindsConnection(headerValues(head.headers, "authorization")) || bindsConnection(fields.values("www-authenticate"))) up.private = true;
    extra.push({ name: "Connection", value: clientKeep ? "keep-alive" : "close" });
    const responseHead = responseHeadBytes(response, connection, extra);
    try {
      // A small response already received goes to the client in one write, head and body.
      await copyBody(up.reader, rf, this.client, output, { head: responseHead });
    } catch (e) {
      this.throwIfLeft();
      // A write to the client failed, or the upstream connection failed mid-body: the response
      // has begun, so no status can follow; the session closes the client.
      if (!(e instanceof BodyError)) throw e;
      this.ctx.log.log("info", TARGET.http, `upstream ${dest.host}:${dest.port} body failed: ${e.message}`);
      this.discard(up);
      return "close";
    }
    // The response is complete and the request body was not (the origin answered early, or the
    // client sent a bad body): the copy stops when the exchange returns, and the upstream never
    // gets a complete request.
    if (bodyPending || this.copyError !== undefined) {
      clientKeep = false;
      upstreamReusable = false;
    }
    if (!upstreamReusable) this.discard(up);
    return clientKeep ? "keep" : "close";
  }
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
  // the relay reads without deadlines: neither side's deadline timer is kept
  up.reader.release();
  reader.release();
  try {
    const headers = endToEndHeaders(response.headers);
    const to = requestedUpgrade(response.headers) ?? headerValues(response.headers, "upgrade").join(", ");
    headers.push({ name: "Connection", value: "Upgrade" }, { name: "Upgrade", value: to });
    await client.write(headBytes(`HTTP/1.1 101 ${response.reason}`, headers));
    const early = up.reader.takeBuffered(); // frames the origin sent right after its 101
    if (early.length > 0) await client.write(early);
    ctx.log.log("info", TARGET.http, `upgrade to ${to} with ${dest.host}:${dest.port} for ${formatAddr(client.remote)}`);
    const opened = Date.now();
    const base = countsNow(up.conn); // the upgrade request and the 101 are not the channel's
    const outcome = await relay(ctx.net, client, up.conn, reader.takeBuffered(), tunnelIdle(ctx, `upgrade to ${to} with ${dest.host}:${dest.port} for ${formatAddr(client.remote)}`));
    const ended = tunnelEnd(outcome, ctx.closing?.aborted === true);
    noteTunnelEnd(client, ended);
    ctx.state.recordConnection(tunnelRecord({ protocol: "http", host: dest.host, port: dest.port, client: formatAddr(client.remote), upstream: up.conn, base, opened, ended }));
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
      await client.write(headBytes(`HTTP/1.1 ${r.status} ${r.reason}`, endToEndHeaders(r.headers)));
    }
  }
}

async function readResponseHead(up: Upstream, deadline: number): Promise<ResponseHead> {
  const reader = up.reader;
  for (;;) {
    if (reader.bufferedLength > 0) {
      const r = parseResponseHead(reader.buffered);
      if (r.kind === "ok") {
        reader.consume(r.size);
        return r.head;
      }
      if (r.kind === "error") throw new Error(`bad response head: ${r.message}`);
    }
    const hadBytes = reader.bufferedLength > 0;
    let more: boolean;
    try {
      more = await reader.fill(deadline);
    } catch (e) {
      if (e instanceof ReadTimeoutError) throw new Error(`no response head within ${RESPONSE_HEAD_TIMEOUT_MS} ms`, { cause: e });
      if (!hadBytes) throw new StaleUpstream((e as Error).message, { cause: e });
      throw e;
    }
    if (!more) {
      if (!hadBytes) throw new StaleUpstream("upstream closed before responding");
      throw new Error("upstream closed inside the response head");
    }
  }
}

/** The request head as sent upstream: origin-form, end-to-end headers, our own framing. */
function upstreamRequestHead(head: RequestHead, target: RequestTarget, framing: BodyFraming, upgrade?: string, via?: UpstreamProxy): Uint8Array {
  // Host is always the authority the policy decided on, first, whatever `Connection` named.
  const headers: HttpHeader[] = [{ name: "Host", value: target.authority }];
  for (const h of endToEndHeaders(head.headers)) if (h.name.toLowerCase() !== "host") headers.push(h);
  if (framing.kind === "length") headers.push({ name: "Content-Length", value: String(framing.length) });
  else if (framing.kind === "chunked") headers.push({ name: "Transfer-Encoding", value: "chunked" });
  if (upgrade !== undefined) headers.push({ name: "Connection", value: "Upgrade" }, { name: "Upgrade", value: upgrade });
  if (!via) return headBytes(`${head.method} ${target.path} HTTP/1.1`, headers);
  // Through an upstream proxy: absolute-form, and its credentials (the client's never pass).
  if (via.authorization) headers.push({ name: "Proxy-Authorization", value: via.authorization });
  const authority = target.host.includes(":") ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  return headBytes(`${head.method} http://${authority}${target.path === "*" ? "" : target.path} HTTP/1.1`, headers);
}
