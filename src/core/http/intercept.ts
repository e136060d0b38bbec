/**
 * TLS interception of a CONNECT tunnel (limited mode with `mitm = true`; docs/behaviour.md §5):
 * the proxy answers 200, completes the client's TLS handshake with a leaf for the CONNECT host
 * from the local CA, and then serves the HTTP/1.1 requests inside one by one, each decided like a
 * plain request (the limited-mode method guard included) and sent to the origin over TLS that
 * the proxy originates to the vetted address, verifying the origin's certificate.
 *
 * Inside the tunnel a request must name the tunnel's host and port (its `Host`, or an
 * absolute-form `https://` target): anything else is a 400 "host mismatch". A CONNECT inside is
 * refused (405), and so is an absolute-form `http://` target (400).
 *
 * @module
 */
import { recordInterceptFailure } from "../gate/gate.ts";
import { TARGET } from "../log.ts";
import { countsNow, noteTunnelEnd, tunnelRecord, type ConnectionEnd } from "../audit/connection.ts";
import type { LocalCa } from "../mitm/ca.ts";
import { formatAddr, TlsAcceptError, type Conn } from "../net/contract.ts";
import type { BufferedReader } from "../net/reader.ts";
import { writeQuietly } from "../net/write.ts";
import { normalizeHost, splitHostPort } from "../policy/host.ts";
import type { SessionContext } from "../session-context.ts";
import { forwardRequest } from "./forward.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { CONNECT_ESTABLISHED, refuseMalformed, type RequestOutcome } from "./reply.ts";
import { simpleResponse, textResponse } from "./responses.ts";
import { serveRequests } from "./request-loop.ts";
import { isTargetError, requestTarget, type RequestTarget, type TargetError } from "./target.ts";

/** ALPN offered to the client: HTTP/1.1 only (the inner requests are parsed as HTTP/1.1). */
export const INTERCEPT_ALPN: readonly string[] = ["http/1.1"];

/** Default port of an `https://` authority without one. */
const HTTPS_PORT = 443;

/**
 * The target of a request inside a tunnel to `host`:`port`: the tunnel's host and port, TLS to
 * the origin, the request's path; a 400 when the request names another host or port.
 */
export function interceptedTarget(host: string, port: number): (head: RequestHead) => RequestTarget | TargetError {
  const tunnelHost = normalizeHost(host)?.name ?? host;
  return (head) => {
    if (headerValues(head.headers, "x-unix-socket").length > 0) return { status: 400, message: "x-unix-socket inside an intercepted tunnel" };
    const t = requestTarget(head);
    if (isTargetError(t)) return t;
    const absolute = !head.target.startsWith("/") && head.target !== "*";
    if (absolute && !t.tls) return { status: 400, message: "an http:// request target inside an HTTPS tunnel" };
    // An origin-form request's Host without a port means the https default, not 80.
    const named = absolute ? { host: t.host, port: t.port } : splitHostPort(t.authority);
    const namedPort = named?.port ?? HTTPS_PORT;
    const namedHost = named ? (normalizeHost(named.host)?.name ?? named.host) : "";
    if (namedHost !== tunnelHost || namedPort !== port) {
      return { status: 400, message: `host mismatch: the request names ${JSON.stringify(t.authority)}, the tunnel is for ${formatAddr({ host: tunnelHost, port })}` };
    }
    return { host: tunnelHost, port, path: t.path, authority: t.authority, tls: true };
  };
}

/**
 * Intercept an allowed CONNECT to `host`:`port`: a leaf from the CA, 200, the client's TLS
 * handshake (with what the client already sent behind its CONNECT), then the requests inside.
 * A CA that cannot be used is a 502 before the 200; a failed handshake is logged with its reason,
 * recorded (`mitm_handshake_failed`) and ends the connection. Resolves when the tunnel is done ("close").
 */
export async function interceptTunnel(
  reader: BufferedReader,
  ctx: SessionContext,
  host: string,
  port: number,
  mitmCa: (() => Promise<LocalCa>) | undefined,
  credential?: string,
): Promise<RequestOutcome> {
  const client = reader.conn;
  const who = formatAddr(client.remote);
  const acceptTls = ctx.net.acceptTls;
  if (!acceptTls) return refuseMalformed(ctx, client, 501, "TLS interception is not supported on this runtime");
  if (!mitmCa) return refuseMalformed(ctx, client, 502, "TLS interception is unavailable: this proxy was started without a CA");
  let ca: LocalCa;
  try {
    ca = await mitmCa();
  } catch (e) {
    // the details (paths, modes) go to the log, not to the sandboxed client
    ctx.log.log("warn", TARGET.http, `TLS interception of ${formatAddr({ host, port })} for ${who} is unavailable: ${(e as Error).message}`);
    await writeQuietly(client, textResponse(502, "TLS interception is unavailable (see the proxy's log)"));
    return "close";
  }
  let leaf;
  try {
    leaf = await ca.leafFor(host);
  } catch (e) {
    ctx.log.log("info", TARGET.http, `CONNECT ${formatAddr({ host, port })} for ${who}: no certificate: ${(e as Error).message}`);
    await writeQuietly(client, textResponse(502, `no certificate can be made for ${formatAddr({ host, port })}`));
    return "close";
  }
  await client.write(CONNECT_ESTABLISHED);
  let inner: Conn;
  try {
    inner = await acceptTls(client, { cert: leaf.certPem, key: leaf.keyPem, alpn: INTERCEPT_ALPN, pending: reader.takeBuffered(), signal: ctx.closing });
  } catch (e) {
    const why = e instanceof TlsAcceptError ? e.message : `TLS handshake with the client failed: ${(e as Error).message}`;
    ctx.log.log("info", TARGET.http, `CONNECT ${formatAddr({ host, port })} for ${who}: ${why}`);
    // a handshake cut short by the proxy itself (its deadline, a shutdown) is not the client's refusal
    const byProxy = ctx.closing?.aborted === true || (e instanceof TlsAcceptError && e.kind === "aborted");
    if (!byProxy) recordInterceptFailure(ctx, { protocol: "https_connect", host, port, method: "CONNECT", client: who }, host);
    return "close";
  }
  ctx.log.log("info", TARGET.http, `CONNECT ${formatAddr({ host, port })} intercepted for ${who}`);
  const opened = Date.now();
  const base = countsNow(client); // what the client connection carried before this tunnel
  const innerEnd = await serveInnerRequests(inner, ctx, host, port, credential);
  // The requests inside go over connections of their own (pooled): the tunnel's bytes are the
  // client connection's, TLS included.
  const ended = ctx.closing?.aborted === true ? "shutdown" : innerEnd;
  noteTunnelEnd(client, ended);
  // seen from the origin's side: what the client sent went out, what it got came back
  const upstream = { bytesRead: () => client.bytesWritten?.() ?? 0, bytesWritten: () => client.bytesRead?.() ?? 0 };
  ctx.state.recordConnection(tunnelRecord({ protocol: "https_connect", host, port, client: who, upstream, base: { read: base.written, written: base.read }, opened, ended }));
  return "close";
}

/** The HTTP/1.1 requests inside an intercepted tunnel, until the client is done. */
function serveInnerRequests(inner: Conn, ctx: SessionContext, host: string, port: number, credential: string | undefined): Promise<ConnectionEnd> {
  const targetOf = interceptedTarget(host, port);
  return serveRequests(
    inner,
    ctx,
    async (head, reader, slot) => {
      if (head.method !== "CONNECT") return forwardRequest(head, reader, ctx, slot, targetOf, credential);
      // RFC 9110 §15.5.6: a 405 names the methods allowed here
      await writeQuietly(inner, simpleResponse(405, [["allow", "GET, HEAD, OPTIONS"], ["content-type", "text/plain; charset=utf-8"]], "CONNECT inside an intercepted tunnel is not allowed", false));
      return "close";
    },
    `intercepted tunnel to ${formatAddr({ host, port })}`,
  );
}
