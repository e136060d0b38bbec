/**
 * The proxy's own responses, byte-exact per docs/behaviour.md §5: the 403 refusals (JSON for plain
 * requests, text for CONNECT) and the plain-text 4xx/5xx errors.
 *
 * @module
 */
import { utf8 } from "../net/bytes.ts";
import { RETRY_AFTER_SECS } from "../limits.ts";
import { blockMessage, proxyErrorHeader, refusalStatus } from "../policy/types.ts";
import type { Refusal } from "../gate/types.ts";
import { UNIX_SOCKET_HOST } from "../gate/unix-socket.ts";

export type { Refusal };

/** Reason phrases for the statuses this proxy produces itself. */
const REASON_PHRASES: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  408: "Request Timeout",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/**
 * Serialise a complete response with a Content-Length body. `phrase` replaces the standard
 * reason phrase (it must be visible ASCII and spaces, see {@link refusalPhrase}).
 */
export function simpleResponse(
  status: number,
  headers: ReadonlyArray<readonly [string, string]>,
  body: string,
  keepAlive: boolean,
  phrase?: string,
): Uint8Array {
  const payload = utf8(body);
  let head = `HTTP/1.1 ${status} ${phrase ?? REASON_PHRASES[status] ?? "Error"}\r\n`;
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

/** Start of every refusal's reason phrase. */
export const REFUSAL_PHRASE_PREFIX = "Blocked by network policy";

/** The host quoted in a reason phrase: a normalised host name or IP literal, nothing else. */
const PHRASE_HOST = /^[a-z0-9._:\-]{1,253}$/;

/** The host as a reason phrase names it: itself when normalised, else a neutral stand-in. */
function phraseHost(host: string): string {
  return PHRASE_HOST.test(host) ? host : "the requested host";
}

/**
 * The reason phrase of a refusal's status line, e.g. `Blocked by network policy: evil.example
 * is not in the allowlist`. Clients such as curl, git, pip and wget print the status line of a
 * refused CONNECT and nothing else, so this is what tells an agent it met a policy, not an
 * outage. Visible ASCII and spaces only (RFC 9112 §4): the only part a client chose is the
 * normalised host (a raw, unparsable one is not quoted), and `method` is a token.
 */
export function refusalPhrase(r: Refusal, method?: string): string {
  const host = phraseHost(r.host);
  let why: string;
  if (r.decision === "ask") {
    why = `${host} needs approval`;
  } else if (r.source === "decider") {
    // A decider's reason is free-form: never taken for one of the proxy's own.
    why = `${host} was refused by the policy decider`;
  } else if (r.host === UNIX_SOCKET_HOST && r.source === "proxy_state" && r.reason === "not_allowed") {
    why = "the unix socket is not in allow_unix_sockets";
  } else {
    switch (r.reason) {
      case "not_allowed":
        why = `${host} is not in the allowlist`;
        break;
      case "not_allowed_local":
        why = `${host} is or resolves to a local or private network address`;
        break;
      case "denied":
        why = `${host} is on the denylist`;
        break;
      case "method_not_allowed":
        why = `${method !== undefined && /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}$/.test(method) ? method : "this method"} is not allowed in limited mode`;
        break;
      case "mitm_required":
        why = "limited mode opens HTTPS tunnels only with TLS interception (network.mitm)";
        break;
      case "mitm_hook_denied":
        why = `the request matches none of ${host}'s mitm_hooks`;
        break;
      case "too_many_connections":
        why = "too many open connections, retry later";
        break;
      case "too_many_tunnels":
        why = "too many open tunnels, retry later";
        break;
      case "rate_limited":
        why = "too many requests from this client, retry later";
        break;
      case "proxy_disabled":
        why = "the proxy is disabled";
        break;
      case "proxy_loop":
        why = `${host} is this proxy itself`;
        break;
      default:
        why = `${host} is refused`;
    }
  }
  return `${REFUSAL_PHRASE_PREFIX}: ${why}`;
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

/** `Retry-After` for a refusal a client may retry shortly (a limit), none otherwise. */
function retryHeaders(r: Refusal): ReadonlyArray<readonly [string, string]> {
  return refusalStatus(r.reason) === 403 ? [] : [["retry-after", String(RETRY_AFTER_SECS)]];
}

/**
 * A blocked plain request: 403 (429 or 503 for a limit, with `Retry-After`), JSON body,
 * `x-proxy-error`, and a reason phrase that says why.
 */
export function blockedHttpResponse(r: Refusal, keepAlive: boolean, method?: string): Uint8Array {
  return simpleResponse(
    refusalStatus(r.reason),
    [
      ["content-type", "application/json"],
      ["x-proxy-error", proxyErrorHeader(r.reason)],
      ...retryHeaders(r),
    ],
    refusalJson(r),
    keepAlive,
    refusalPhrase(r, method),
  );
}

/** A blocked CONNECT (status as {@link blockedHttpResponse}): the message alone as text. */
export function blockedConnectResponse(r: Refusal, keepAlive: boolean): Uint8Array {
  return simpleResponse(
    refusalStatus(r.reason),
    [
      ["content-type", "text/plain"],
      ["x-proxy-error", proxyErrorHeader(r.reason)],
      ...retryHeaders(r),
    ],
    blockMessage(r.reason),
    keepAlive,
    refusalPhrase(r, "CONNECT"),
  );
}
