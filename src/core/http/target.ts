/**
 * Where a request goes: the request target (absolute-form, origin-form + Host, or CONNECT's
 * authority-form) reduced to host, port and the origin-form path to forward (RFC 9112 §3.2).
 *
 * @module
 */
import { normalizeHost, splitHostPort } from "../policy/host.ts";
import { headerValues, isVisibleAscii, type RequestHead } from "./parser.ts";

/** Default port of plain HTTP. */
const HTTP_PORT = 80;
/** Default port of HTTPS. */
const HTTPS_PORT = 443;

/** A routable request target. `host` is as the client wrote it (unnormalised, no brackets). */
export interface RequestTarget {
  readonly host: string;
  readonly port: number;
  /** Origin-form target to send upstream (`/path?query`, or `*`). */
  readonly path: string;
  /** The `Host` to send upstream: the client's (validated) Host header, else the target's authority. */
  readonly authority: string;
  /** Absolute-form `https://`: the proxy originates TLS to the origin. */
  readonly tls?: boolean;
}

/** A target that cannot be routed: the status and text to answer. */
export interface TargetError {
  readonly status: 400 | 501;
  readonly message: string;
}

/** Resolve a non-CONNECT request's target. */
export function requestTarget(head: RequestHead): RequestTarget | TargetError {
  const hosts = headerValues(head.headers, "host");
  if (hosts.length > 1) return { status: 400, message: "multiple Host headers" };
  const hostHeader = hosts[0];
  // The Host value is what the origin routes by: it must be the plain ASCII the policy saw.
  if (hostHeader !== undefined && hostHeader !== "" && !isVisibleAscii(hostHeader)) {
    return { status: 400, message: "malformed Host header (only printable ASCII is allowed)" };
  }
  const t = head.target;
  const schemeEnd = schemeLength(t);
  if (schemeEnd > 0) {
    const tls = isHttpScheme(t, schemeEnd);
    if (tls === undefined) return { status: 400, message: `unsupported scheme ${JSON.stringify(t.slice(0, schemeEnd).toLowerCase())}` };
    const defaultPort = tls ? HTTPS_PORT : HTTP_PORT;
    const rest = t.slice(schemeEnd + 3);
    const end = authorityEnd(rest);
    const authority = end < 0 ? rest : rest.slice(0, end);
    let path = end < 0 ? "/" : rest.slice(end);
    if (path.startsWith("?")) path = "/" + path;
    const hashAt = path.indexOf("#");
    if (hashAt >= 0) path = path.slice(0, hashAt) || "/";
    if (authority.includes("@")) return { status: 400, message: "userinfo in request target is not allowed" };
    const hp = splitHostPort(authority);
    if (!hp || hp.host === "") return { status: 400, message: `malformed authority ${JSON.stringify(authority)}` };
    const port = hp.port ?? defaultPort;
    // A Host equal to the target's authority (the usual case) names it, if the host is valid.
    const same = hostHeader === authority ? normalizeHost(hp.host) !== null : hostHeader === undefined || sameAuthority(hostHeader, hp.host, port, defaultPort);
    if (!same) return { status: 400, message: "Host header does not match request target" };
    return { host: hp.host, port, path, authority: hostHeader || authority, tls };
  }
  if (t.startsWith("/") || (t === "*" && head.method === "OPTIONS")) {
    if (hostHeader === undefined || hostHeader === "") return { status: 400, message: "missing host" };
    const hp = splitHostPort(hostHeader);
    if (!hp || hp.host === "") return { status: 400, message: `malformed Host header ${JSON.stringify(hostHeader)}` };
    return { host: hp.host, port: hp.port ?? HTTP_PORT, path: t, authority: hostHeader };
  }
  return { status: 400, message: `malformed request target ${JSON.stringify(t.slice(0, 64))}` };
}

/**
 * Length of the scheme when `t` starts with `scheme://` (RFC 3986 §3.1: a letter, then letters,
 * digits, `+`, `-`, `.`), else 0.
 */
function schemeLength(t: string): number {
  const first = t.charCodeAt(0) | 0x20;
  if (!(first >= 0x61 && first <= 0x7a)) return 0;
  for (let i = 1; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 0x3a) return t.charCodeAt(i + 1) === 0x2f && t.charCodeAt(i + 2) === 0x2f ? i : 0;
    const l = c | 0x20;
    if (!((l >= 0x61 && l <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e)) return 0;
  }
  return 0;
}

/**
 * Whether the scheme `t` starts with (`schemeEnd` chars) is `https` (true) or `http` (false), in
 * any case; `undefined` for any other scheme.
 */
function isHttpScheme(t: string, schemeEnd: number): boolean | undefined {
  if (schemeEnd !== 4 && schemeEnd !== 5) return undefined;
  if ((t.charCodeAt(0) | 0x20) !== 0x68 || (t.charCodeAt(1) | 0x20) !== 0x74 || (t.charCodeAt(2) | 0x20) !== 0x74 || (t.charCodeAt(3) | 0x20) !== 0x70) return undefined;
  if (schemeEnd === 4) return false;
  return (t.charCodeAt(4) | 0x20) === 0x73 ? true : undefined;
}

/** Index of the first `/`, `?` or `#` (where the authority ends), or -1. */
function authorityEnd(rest: string): number {
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 0x2f || c === 0x3f || c === 0x23) return i;
  }
  return -1;
}

/** Resolve a CONNECT request's authority-form target (`host:port`, port required). */
export function connectTarget(head: RequestHead): RequestTarget | TargetError {
  const hp = splitHostPort(head.target);
  if (!hp || hp.host === "" || hp.port === undefined) {
    return { status: 400, message: `CONNECT target must be host:port, got ${JSON.stringify(head.target.slice(0, 64))}` };
  }
  return { host: hp.host, port: hp.port, path: "", authority: head.target };
}

/** True when `hostHeader` names the same host and port as the target. */
function sameAuthority(hostHeader: string, host: string, port: number, defaultPort: number): boolean {
  const hp = splitHostPort(hostHeader);
  if (!hp) return false;
  if ((hp.port ?? defaultPort) !== port) return false;
  const a = normalizeHost(hp.host);
  const b = normalizeHost(host);
  return a !== null && b !== null && a.name === b.name;
}

/** True when the value is a {@link TargetError}. */
export function isTargetError(v: RequestTarget | TargetError): v is TargetError {
  return "status" in v;
}
