/**
 * IP-literal helpers for comparing the addresses sockets report and deciding whether a target
 * is one of our own listeners.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import type { NetAddr } from "./contract.ts";
import { memoize } from "../memo.ts";

/** A canonical dotted-quad IPv4 literal (each octet 0–255, no leading zeros). */
const DOTTED_QUAD = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for a canonical dotted-quad IPv4 literal. */
export function isDottedQuad(text: string): boolean {
  return DOTTED_QUAD.test(text);
}

/** Remove an IPv6 zone id (`fe80::1%lo0` → `fe80::1`). */
export function stripZone(host: string): string {
  const pct = host.indexOf("%");
  return pct < 0 ? host : host.slice(0, pct);
}

/** `::ffff:a.b.c.d` → `a.b.c.d` (dual-stack sockets report IPv4 peers this way); lower-cased. */
export function unmapIpv4(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host.toLowerCase();
}

/** `0.0.0.0` or `::`: every local address. */
export function isUnspecifiedIp(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/**
 * One spelling per address: zone dropped, IPv4-mapped IPv6 as IPv4, IPv6 compressed. Input
 * that is not an IP literal comes back lower-cased and otherwise unchanged.
 */
export const canonicalIp: (host: string) => string = memoize(canonicalUncached);

function canonicalUncached(host: string): string {
  const bare = host.replace(/%.*$/, "");
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare).toString();
  if (!ipaddr.IPv6.isValid(bare)) return bare.toLowerCase();
  const v6 = ipaddr.IPv6.parse(bare);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
}

/** Loopback (127/8 or ::1) after canonicalisation. */
function isLoopbackCanonical(ip: string): boolean {
  return ip === "::1" || /^127\.\d+\.\d+\.\d+$/.test(ip);
}

/**
 * Whether a connection to `target` would reach one of `listeners`. A connect to `0.0.0.0`/`::`
 * reaches the loopback host, so those count as loopback; a listener on every address
 * (`0.0.0.0`/`::`) is matched by loopback targets. Other local interface addresses of a
 * wildcard listener are not known here; such targets are non-public and refused by the policy
 * unless explicitly allowed.
 */
export function reachesListener(listeners: readonly NetAddr[], target: NetAddr): boolean {
  let t = canonicalIp(target.host);
  if (t === "0.0.0.0") t = "127.0.0.1";
  if (t === "::") t = "::1";
  return listeners.some((l) => {
    if (l.port !== target.port) return false;
    const lh = canonicalIp(l.host);
    return lh === t || (isUnspecifiedIp(lh) && isLoopbackCanonical(t));
  });
}
