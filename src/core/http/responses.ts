/**
 * The proxy's own responses, byte-exact per docs/behaviour.md §5: the 403 refusals (JSON for plain
 * requests, text for CONNECT) and the plain-text 4xx/5xx errors.
 *
 * @module
 */
import { utf8 } from "../net/bytes.ts";
import type { BlockReason, DecisionSource, ProxyProtocol } from "../policy/types.ts";
import { blockMessage, proxyErrorHeader } from "../policy/types.ts";

/** Reason phrases for the statuses this proxy produces itself. */
const REASON_PHRASES: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  505: "HTTP Version Not Supported",
};

/** Serialise a complete response with a Content-Length body. */
export function simpleResponse(
  status: number,
  headers: ReadonlyArray<readonly [string, string]>,
  body: string,
  keepAlive: boolean,
): Uint8Array {
  const payload = utf8(body);
  let head = `HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? "Error"}\r\n`;
  for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
  head += `content-length: ${payload.length}\r\nconnection: ${keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
  const head8 = utf8(head);
  const out = new Uint8Array(head8.length + payload.length);
  out.set(head8, 0);
  out.set(payload, head8.length);
  return out;
}

/** A plain-text error (`400 missing host`, `502 upstream failure`, …). */
export function textResponse(status: number, message: string, keepAlive = false): Uint8Array {
  return simpleResponse(status, [["content-type", "text/plain; charset=utf-8"]], message, keepAlive);
}

/** What a refusal reports. */
export interface Refusal {
  readonly host: string;
  readonly port: number;
  readonly reason: BlockReason;
  readonly decision: "deny" | "ask";
  readonly source: DecisionSource;
  readonly protocol: ProxyProtocol;
}

/** The JSON body of a blocked plain request, keys in the order of docs/behaviour.md §5. */
export function refusalJson(r: Refusal): string {
  return JSON.stringify({
    status: "blocked",
    host: r.host,
    reason: r.reason,
    decision: r.decision,
    source: r.source,
    protocol: r.protocol,
    port: r.port,
    message: blockMessage(r.reason),
  });
}

/** 403 for a blocked plain request: JSON body and `x-proxy-error`. */
export function blockedHttpResponse(r: Refusal, keepAlive: boolean): Uint8Array {
  return simpleResponse(
    403,
    [
      ["content-type", "application/json"],
      ["x-proxy-error", proxyErrorHeader(r.reason)],
    ],
    refusalJson(r),
    keepAlive,
  );
}

/** 403 for a blocked CONNECT: the message alone as text, connection kept for another request. */
export function blockedConnectResponse(r: Refusal, keepAlive: boolean): Uint8Array {
  return simpleResponse(
    403,
    [
      ["content-type", "text/plain"],
      ["x-proxy-error", proxyErrorHeader(r.reason)],
    ],
    blockMessage(r.reason),
    keepAlive,
  );
}
