/**
 * Chaining to an upstream (corporate) proxy when `allow_upstream_proxy = true` (docs/behaviour.md
 * §5): the proxy named by the process's `HTTPS_PROXY` (tunnels), `HTTP_PROXY` (plain
 * requests), then `ALL_PROXY` — upper-case first, `http://` only, credentials sent as
 * `Proxy-Authorization` — with `NO_PROXY` honoured (hosts, `.suffix`, `*`, CIDR, ports). The
 * policy still decides on the target; the upstream proxy's own address is not a target and is
 * not subject to the target rules (only to the proxy-loop guard).
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { latin1, latin1Bytes } from "./bytes.ts";
import { DialError, type Conn, type Net, type NetAddr } from "./contract.ts";
import { attemptSignal, CONNECT_TIMEOUT_MS, ProxyLoopError, stoppedBy, stopSignals, type DialContext } from "./dial.ts";
import { onAbort, untilAborted } from "./timeout.ts";
import { BufferedReader, ReadTimeoutError } from "./reader.ts";

/** How long an upstream proxy may take to answer our CONNECT. */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 30_000;
/** Largest response head we accept from an upstream proxy's CONNECT answer. */
const MAX_UPSTREAM_HEAD_BYTES = 16 * 1024;

/** One upstream proxy. */
export interface UpstreamProxy {
  readonly host: string;
  readonly port: number;
  /** `Basic …` when the URL carried credentials. */
  readonly authorization?: string;
  /** The URL without credentials (for logs). */
  readonly display: string;
}

/** The upstream proxies of the process environment. */
export interface UpstreamProxies {
  readonly http?: UpstreamProxy;
  readonly https?: UpstreamProxy;
  readonly all?: UpstreamProxy;
  /** NO_PROXY entries, parsed. */
  readonly noProxy: readonly NoProxyEntry[];
}

type NoProxyEntry =
  | { readonly kind: "all" }
  | { readonly kind: "domain"; readonly domain: string; readonly port?: number }
  | { readonly kind: "ip"; readonly ip: string; readonly port?: number }
  | { readonly kind: "cidr"; readonly range: [ipaddr.IPv4 | ipaddr.IPv6, number] };

/** Read the proxy variables from `env`; unusable ones are skipped with a warning. */
export function upstreamProxiesFromEnv(env: (name: string) => string | undefined, warn: (message: string) => void): UpstreamProxies {
  const pick = (name: string): UpstreamProxy | undefined => {
    for (const n of [name, name.toLowerCase()]) {
      const v = env(n);
      if (v === undefined || v.trim() === "") continue;
      try {
        return parseProxyUrl(v.trim());
      } catch (e) {
        if (!(e instanceof ProxyUrlError)) throw e;
        warn(`${n}: ${e.message}; not used as upstream proxy`);
      }
    }
    return undefined;
  };
  const noProxy = [env("NO_PROXY"), env("no_proxy")].find((v) => v !== undefined) ?? "";
  return { http: pick("HTTP_PROXY"), https: pick("HTTPS_PROXY"), all: pick("ALL_PROXY"), noProxy: parseNoProxy(noProxy) };
}

/**
 * An upstream proxy URL that cannot be used. The message says why without quoting the URL: it
 * may carry credentials. {@link upstreamProxiesFromEnv} names the variable it came from.
 */
export class ProxyUrlError extends TypeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProxyUrlError";
  }
}

/**
 * An `http://[user[:pass]@]host[:port]` URL (`http://` assumed when no scheme is given).
 *
 * @throws ProxyUrlError when it is not a URL, names another scheme, has no host or a malformed
 *   percent-escape in its credentials.
 */
export function parseProxyUrl(value: string): UpstreamProxy {
  let url: URL;
  try {
    url = new URL(value.includes("://") ? value : `http://${value}`);
  } catch (e) {
    // The runtime's error keeps the whole input (Node's `input` field), credentials included:
    // the cause carries only its message.
    throw new ProxyUrlError("not a URL", { cause: new TypeError((e as Error).message) });
  }
  if (url.protocol !== "http:") throw new ProxyUrlError(`${url.protocol.replace(/:$/, "")}:// proxies are not supported (only http://)`);
  if (!url.hostname) throw new ProxyUrlError("no host");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port === "" ? 80 : Number(url.port);
  let user: string;
  let pass: string;
  try {
    user = decodeURIComponent(url.username);
    pass = decodeURIComponent(url.password);
  } catch (e) {
    throw new ProxyUrlError("malformed percent-escape in the credentials", { cause: e });
  }
  const authorization = user || pass ? `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${pass}`)))}` : undefined;
  return { host, port, authorization, display: `http://${url.host}` };
}

/** Parse `NO_PROXY`: comma- or space-separated hosts, `.suffix`, `*`, IPs and CIDRs, `:port`. */
export function parseNoProxy(value: string): NoProxyEntry[] {
  const out: NoProxyEntry[] = [];
  for (const raw of value.split(/[,\s]+/)) {
    const item = raw.trim().toLowerCase();
    if (item === "") continue;
    if (item === "*") {
      out.push({ kind: "all" });
      continue;
    }
    if (item.includes("/")) {
      try {
        out.push({ kind: "cidr", range: ipaddr.parseCIDR(item) });
      } catch {
        // not a CIDR: ignored, like curl does with entries it cannot read
      }
      continue;
    }
    const { host, port } = splitEntry(item);
    if (host === "" || (port !== undefined && !Number.isInteger(port))) continue;
    if (ipaddr.isValid(host)) out.push({ kind: "ip", ip: ipaddr.process(host).toString(), port });
    else out.push({ kind: "domain", domain: host.replace(/^\*?\./, "").replace(/\.+$/, ""), port });
  }
  return out;
}

/** `host`, `host:port`, `[v6]:port` or a bare IPv6 literal. */
function splitEntry(item: string): { host: string; port?: number } {
  if (item.startsWith("[")) {
    const close = item.indexOf("]");
    const rest = item.slice(close + 1);
    return { host: item.slice(1, close), port: rest.startsWith(":") ? Number(rest.slice(1)) : undefined };
  }
  const colons = item.split(":").length - 1;
  if (colons !== 1) return { host: item }; // a name, or a bare IPv6 literal (no port)
  const [host, port] = item.split(":") as [string, string];
  return { host, port: Number(port) };
}

/** Whether NO_PROXY exempts `host:port` (normalised host). */
export function bypassesProxy(entries: readonly NoProxyEntry[], host: string, port: number): boolean {
  const ip = ipaddr.isValid(host) ? ipaddr.process(host) : undefined;
  return entries.some((e) => {
    switch (e.kind) {
      case "all":
        return true;
      case "cidr":
        return ip !== undefined && ip.kind() === e.range[0].kind() && ip.match(e.range);
      case "ip":
        return ip !== undefined && ip.toString() === e.ip && (e.port === undefined || e.port === port);
      case "domain":
        return (host === e.domain || host.endsWith(`.${e.domain}`)) && (e.port === undefined || e.port === port);
    }
  });
}

/** The upstream proxy for a target: tunnels use HTTPS_PROXY, plain requests HTTP_PROXY, then ALL_PROXY. */
export function proxyFor(p: UpstreamProxies, use: "tunnel" | "plain", host: string, port: number): UpstreamProxy | undefined {
  const chosen = (use === "tunnel" ? p.https : p.http) ?? p.all;
  if (!chosen || bypassesProxy(p.noProxy, host, port)) return undefined;
  return chosen;
}

/**
 * Dial the upstream proxy itself, at `addresses` when the caller resolved it already (the
 * gate's dial plan), else resolved here; never one of our own listeners.
 */
export async function dialProxy(ctx: DialContext, proxy: UpstreamProxy, resolved?: readonly string[]): Promise<Conn> {
  const addresses = resolved ?? (ipaddr.isValid(proxy.host) ? [proxy.host] : await untilAborted(resolveProxy(ctx.net, proxy), ...stopSignals(ctx)));
  let last: unknown = new DialError("host_unreachable", { host: proxy.host, port: proxy.port }, "no addresses");
  for (const ip of addresses) {
    const addr: NetAddr = { host: ip, port: proxy.port };
    if (ctx.isOwnListener(addr)) throw new ProxyLoopError(addr);
    if (stoppedBy(ctx)) break;
    const attempt = attemptSignal(ctx, CONNECT_TIMEOUT_MS);
    try {
      return await ctx.net.connectTcp(addr, { signal: attempt.signal });
    } catch (e) {
      last = e;
    } finally {
      attempt.release();
    }
  }
  throw last;
}

/** Resolve the upstream proxy's own name; a failure is a `DialError`. */
export async function resolveProxy(net: Net, proxy: UpstreamProxy): Promise<string[]> {
  try {
    return await net.resolve(proxy.host);
  } catch (e) {
    throw new DialError("host_unreachable", { host: proxy.host, port: proxy.port }, `cannot resolve upstream proxy ${proxy.host}: ${(e as Error).message}`, { cause: e });
  }
}

/** A tunnel through the upstream proxy: the connection plus bytes it sent after its 200. */
export interface Tunnel {
  readonly conn: Conn;
  readonly early: Uint8Array;
}

/** Open a CONNECT tunnel to `host:port` through `proxy`. Throws `DialError` on refusal. */
export async function connectThrough(ctx: DialContext, proxy: UpstreamProxy, host: string, port: number, proxyAddresses?: readonly string[]): Promise<Tunnel> {
  const conn = await dialProxy(ctx, proxy, proxyAddresses);
  // Waiting for the upstream proxy's answer ends when the dial is no longer wanted.
  const abandon = (): void => conn.close();
  const unhook = stopSignals(ctx).map((s) => (s === undefined ? undefined : onAbort(s, abandon)));
  try {
    const stopped = stoppedBy(ctx);
    if (stopped) throw stopped.reason;
    const authority = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
    if (proxy.authorization) head += `Proxy-Authorization: ${proxy.authorization}\r\n`;
    await conn.write(latin1Bytes(head + "\r\n"));
    const reader = new BufferedReader(conn);
    const deadline = Date.now() + UPSTREAM_CONNECT_TIMEOUT_MS;
    for (;;) {
      const buf = reader.buffered;
      const end = indexOfBlankLine(buf);
      if (end >= 0) {
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(latin1(buf, 0, Math.min(end, 64)));
        reader.consume(end + 4);
        if (status?.[1] === "200") return { conn, early: reader.takeBuffered() };
        throw new DialError("other", { host, port }, `upstream proxy ${proxy.display} answered CONNECT with ${status?.[1] ?? "a malformed response"}`);
      }
      if (buf.length > MAX_UPSTREAM_HEAD_BYTES) throw new DialError("other", { host, port }, `upstream proxy ${proxy.display} sent an oversized response`);
      if (!(await reader.fill(deadline))) throw new DialError("other", { host, port }, `upstream proxy ${proxy.display} closed during CONNECT`);
    }
  } catch (e) {
    conn.close();
    const stopped = stoppedBy(ctx);
    if (stopped) throw stopped.reason;
    if (e instanceof ReadTimeoutError) throw new DialError("timeout", { host, port }, `upstream proxy ${proxy.display} did not answer CONNECT`);
    throw e;
  } finally {
    for (const f of unhook) f?.();
  }
}

function indexOfBlankLine(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  return -1;
}
