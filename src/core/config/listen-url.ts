/**
 * Listener addresses: parsing `proxy_url` / `admin_url` / `socks_url` and clamping
 * non-loopback binds to loopback (docs/behaviour.md §1).
 *
 * Errors are {@link ConfigError}s whose message starts with the key (`network.proxy_url: …`)
 * and names the offending value; `parseConfigText` prefixes them with the file location.
 *
 * @module
 */

import ipaddr from "ipaddr.js";
import { MAX_PORT } from "../net/contract.ts";
import { isLoopbackIp } from "../policy/address-class.ts";
import { ConfigError, type ListenAddr, type ListenPlan, type NetworkConfig } from "./types.ts";


/** The address a non-loopback bind is clamped to. */
export const LOOPBACK_BIND_HOST = "127.0.0.1";

/** Default ports for schemes given without an explicit port. */
export const SCHEME_DEFAULT_PORTS: Readonly<Record<string, number>> = {
  http: 80,
  https: 443,
  socks: 1080,
  socks5: 1080,
  socks5h: 1080,
};

/** `scheme://` at the start of a listener URL. */
const SCHEME_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/** Characters allowed in a host name (IP literals are checked by ipaddr.js). */
const HOSTNAME_RE = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/;

/** A decimal port number. */
const PORT_RE = /^[0-9]+$/;

/**
 * Parses a listener address in one of the forms `host:port`, `scheme://host:port[/…]`,
 * `[v6]:port` or `scheme://[v6]:port[/…]`. Without a port, the scheme's default port
 * ({@link SCHEME_DEFAULT_PORTS}) is used. `localhost` becomes `127.0.0.1`; IP literals are
 * canonicalised (dotted-quad IPv4, compressed IPv6, without brackets); host names are
 * lower-cased. `key` (e.g. `network.proxy_url`) is named in errors.
 *
 * @throws ConfigError for userinfo, an empty or malformed host, a missing port without a
 *   known scheme, or a port outside 0..{@link MAX_PORT}.
 */
export function parseListenUrl(value: string, key: string): ListenAddr {
  const fail = (detail: string): ConfigError =>
    new ConfigError(`${key}: ${JSON.stringify(value)}: ${detail}`, key);

  let rest = value.trim();
  let scheme: string | undefined;
  const schemeMatch = SCHEME_RE.exec(rest);
  if (schemeMatch) {
    scheme = (schemeMatch[1] ?? "").toLowerCase();
    rest = rest.slice(schemeMatch[0].length);
  }
  const authority = rest.split(/[/?#]/, 1)[0] ?? "";
  if (authority.includes("@")) throw fail("user credentials are not allowed in a listen address");

  let hostPart: string;
  let portPart: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close === -1) throw fail("missing ']' after IPv6 address");
    hostPart = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after.startsWith(":")) portPart = after.slice(1);
    else if (after !== "") throw fail(`unexpected ${JSON.stringify(after)} after ']'`);
    if (!ipaddr.IPv6.isValid(hostPart)) throw fail(`${JSON.stringify(hostPart)} is not an IPv6 address`);
  } else {
    const colons = authority.split(":").length - 1;
    if (colons > 1) throw fail("an IPv6 address must be in brackets, e.g. [::1]:3128");
    const colon = authority.indexOf(":");
    hostPart = colon === -1 ? authority : authority.slice(0, colon);
    portPart = colon === -1 ? undefined : authority.slice(colon + 1);
  }

  const host = canonicalHost(hostPart);
  if (host === undefined) throw fail(`invalid host ${JSON.stringify(hostPart)}`);
  return { host, port: resolvePort(portPart, scheme, fail) };
}

/** The port from its text, or the scheme default when absent. */
function resolvePort(
  portPart: string | undefined,
  scheme: string | undefined,
  fail: (detail: string) => ConfigError,
): number {
  if (portPart === undefined) {
    if (scheme === undefined) throw fail("missing port (expected host:port)");
    const port = SCHEME_DEFAULT_PORTS[scheme];
    if (port === undefined) throw fail(`missing port and scheme "${scheme}" has no default port`);
    return port;
  }
  if (!PORT_RE.test(portPart)) throw fail(`invalid port ${JSON.stringify(portPart)}`);
  const port = Number(portPart);
  if (port > MAX_PORT) throw fail(`port ${portPart} is out of range 0..${MAX_PORT}`);
  return port;
}

/** `localhost` → 127.0.0.1, IP literals canonicalised, names lower-cased; `undefined` if bad. */
function canonicalHost(raw: string): string | undefined {
  const host = raw.toLowerCase();
  if (host === "") return undefined;
  if (host === "localhost") return LOOPBACK_BIND_HOST;
  if (ipaddr.IPv6.isValid(host)) return ipaddr.IPv6.parse(host).toString();
  if (ipaddr.IPv4.isValid(host)) return ipaddr.IPv4.parse(host).toString();
  return HOSTNAME_RE.test(host) ? host : undefined;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; false for names and other addresses. */
export function isLoopbackHost(host: string): boolean {
  return isLoopbackIp(host);
}

/** The parts of {@link NetworkConfig} that decide where listeners bind. */
type ListenSettings = Pick<
  NetworkConfig,
  | "proxy_url"
  | "admin_url"
  | "socks_url"
  | "enable_socks5"
  | "allow_unix_sockets"
  | "dangerously_allow_all_unix_sockets"
  | "dangerously_allow_non_loopback_proxy"
  | "dangerously_allow_non_loopback_admin"
>;

/**
 * Decides where each listener binds: parses `proxy_url`, `admin_url` and (when
 * `enable_socks5`) `socks_url`, and clamps any non-loopback host to `127.0.0.1` (same port)
 * unless its `dangerously_allow_non_loopback_*` flag is set. When `allow_unix_sockets` is
 * non-empty or `dangerously_allow_all_unix_sockets` is set, every listener is kept on loopback
 * whatever the flags. Each clamp adds a warning
 * naming the key and its configured value.
 *
 * @throws ConfigError when a URL does not parse (see {@link parseListenUrl}).
 */
export function planListeners(network: ListenSettings): { plan: ListenPlan; warnings: string[] } {
  const warnings: string[] = [];
  const unixSockets = network.allow_unix_sockets.length > 0 || network.dangerously_allow_all_unix_sockets;

  const bind = (key: "proxy_url" | "admin_url" | "socks_url", flag: keyof ListenSettings): ListenAddr => {
    const value = network[key];
    const addr = parseListenUrl(value, `network.${key}`);
    if (isLoopbackHost(addr.host)) return addr;
    const clamped = { host: LOOPBACK_BIND_HOST, port: addr.port };
    const to = `${clamped.host}:${clamped.port}`;
    if (unixSockets) {
      warnings.push(
        `network.${key}: non-loopback bind address ${JSON.stringify(value)} forced to ${to} ` +
          `because ${network.dangerously_allow_all_unix_sockets ? "network.dangerously_allow_all_unix_sockets is true" : "network.allow_unix_sockets is non-empty"} (unix socket proxying is loopback-only)`,
      );
      return clamped;
    }
    if (network[flag] === true) return addr;
    warnings.push(
      `network.${key}: non-loopback bind address ${JSON.stringify(value)} clamped to ${to} ` +
        `(set network.${flag} = true to allow it)`,
    );
    return clamped;
  };

  const plan: ListenPlan = {
    http: bind("proxy_url", "dangerously_allow_non_loopback_proxy"),
    admin: bind("admin_url", "dangerously_allow_non_loopback_admin"),
  };
  if (network.enable_socks5) plan.socks5 = bind("socks_url", "dangerously_allow_non_loopback_proxy");
  return { plan, warnings };
}
