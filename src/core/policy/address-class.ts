/**
 * Address classification (docs/behaviour.md §4): which IP literals are not public, and so count as
 * "local" for the `allow_local_binding = false` checks. The tables are parsed once at module
 * load; a call only parses its argument and matches prefixes. Anything that is not a canonical
 * IP literal is treated as non-public (fail closed).
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { isDottedQuad } from "../net/ip.ts";
import { memoize } from "../memo.ts";

type IPv4 = ipaddr.IPv4;
type IPv6 = ipaddr.IPv6;

/** Non-public IPv4 ranges (docs/behaviour.md §4). */
const NON_PUBLIC_V4_CIDRS: readonly string[] = [
  "0.0.0.0/8", // "this network"
  "10.0.0.0/8", // private
  "100.64.0.0/10", // carrier-grade NAT
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local
  "172.16.0.0/12", // private
  "192.0.0.0/24", // IETF protocol assignments
  "192.0.2.0/24", // TEST-NET-1
  "192.88.99.0/24", // 6to4 relay anycast
  "192.168.0.0/16", // private
  "198.18.0.0/15", // benchmarking
  "198.51.100.0/24", // TEST-NET-2
  "203.0.113.0/24", // TEST-NET-3
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, including 255.255.255.255
];

/**
 * Non-public IPv6 ranges (docs/behaviour.md §4), plus two ours (toward safety): `2001:2::/48`
 * (benchmarking, the IPv6 twin of 198.18/15) and `3fff::/20` (documentation, RFC 9637).
 * `::` and `::1` are checked before the embedded-IPv4 forms; the rest need no order.
 */
const NON_PUBLIC_V6_CIDRS: readonly string[] = [
  "fc00::/7", // unique local
  "fe80::/10", // link-local
  "fec0::/10", // site-local (deprecated)
  "ff00::/8", // multicast
  "2001:db8::/32", // documentation
  "100::/64", // discard-only
  "2001::/32", // Teredo: the real peer is hidden behind a relay
  "2001:2::/48", // benchmarking (ours)
  "3fff::/20", // documentation (ours)
];

/** IPv6 ranges that embed an IPv4 address in their last 32 bits. */
const EMBEDDED_V4_LOW32_CIDRS: readonly string[] = [
  "::ffff:0:0/96", // IPv4-mapped
  "::/96", // IPv4-compatible (deprecated)
  "64:ff9b::/96", // NAT64 well-known prefix
];

/** 6to4: the IPv4 address sits in bits 16–47. */
const SIX_TO_FOUR_CIDR = "2002::/16";

/** Global unicast. Outside it, unless an embedded-IPv4 rule applied, an address is non-public. */
const GLOBAL_UNICAST_CIDR = "2000::/3";

/** IPv4 loopback. */
const LOOPBACK_V4_CIDR = "127.0.0.0/8";

/** IPv6 forms whose embedded IPv4 may be loopback (mapped, compatible). */
const LOOPBACK_EMBEDDING_CIDRS: readonly string[] = ["::ffff:0:0/96", "::/96"];

function v4Range(cidr: string): [IPv4, number] {
  return ipaddr.IPv4.parseCIDR(cidr);
}

function v6Range(cidr: string): [IPv6, number] {
  return ipaddr.IPv6.parseCIDR(cidr);
}

const NON_PUBLIC_V4 = NON_PUBLIC_V4_CIDRS.map(v4Range);
const NON_PUBLIC_V6 = NON_PUBLIC_V6_CIDRS.map(v6Range);
const EMBEDDED_V4_LOW32 = EMBEDDED_V4_LOW32_CIDRS.map(v6Range);
const SIX_TO_FOUR = v6Range(SIX_TO_FOUR_CIDR);
const GLOBAL_UNICAST = v6Range(GLOBAL_UNICAST_CIDR);
const LOOPBACK_V4 = v4Range(LOOPBACK_V4_CIDR);
const LOOPBACK_EMBEDDING = LOOPBACK_EMBEDDING_CIDRS.map(v6Range);

/** Canonical dotted-quad IPv4 (no leading zeros, no other spellings). */

/** Characters of IPv6 text (hex groups, colons, and dots of a trailing embedded IPv4). */
const IPV6_TEXT = /^[0-9a-f:.]+$/i;

/**
 * Parse a strict IP literal (zone id, if any, ignored). `null` for anything else: ipaddr.js is
 * more liberal than the system resolver (`::ffff:0x7f.0.0.1`), so the text is checked first.
 */
function parseStrict(text: string): IPv4 | IPv6 | null {
  const pct = text.indexOf("%");
  const ip = pct < 0 ? text : text.slice(0, pct);
  if (isDottedQuad(ip)) return ipaddr.IPv4.parse(ip);
  if (!IPV6_TEXT.test(ip) || !ip.includes(":")) return null;
  if (ip.includes(".") && !isDottedQuad(ip.slice(ip.lastIndexOf(":") + 1))) return null;
  if (!ipaddr.IPv6.isValid(ip)) return null;
  try {
    return ipaddr.IPv6.parse(ip);
  } catch {
    return null;
  }
}

/** The IPv4 address held in two 16-bit IPv6 groups. */
function v4From(high: number, low: number): IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

function isNonPublicV4(addr: IPv4): boolean {
  return NON_PUBLIC_V4.some((range) => addr.match(range));
}

function isNonPublicV6(addr: IPv6): boolean {
  const p = addr.parts;
  const all = p.every((group) => group === 0);
  const loopback = p.slice(0, 7).every((group) => group === 0) && p[7] === 1;
  if (all || loopback) return true; // `::` and `::1`
  if (EMBEDDED_V4_LOW32.some((range) => addr.match(range))) return isNonPublicV4(v4From(p[6] ?? 0, p[7] ?? 0));
  if (addr.match(SIX_TO_FOUR)) return isNonPublicV4(v4From(p[1] ?? 0, p[2] ?? 0));
  if (NON_PUBLIC_V6.some((range) => addr.match(range))) return true;
  // Safe default: everything outside global unicast (2000::/3) that no embedded-IPv4 rule
  // judged above is reserved, local or special-purpose, so it is not public.
  return !addr.match(GLOBAL_UNICAST);
}

/** True when the IP (canonical literal, no zone) is not public per docs/behaviour.md §4 (remembered: pure). */
export const isNonPublicIp: (ip: string) => boolean = memoize(classifyNonPublic);

function classifyNonPublic(ip: string): boolean {
  const addr = parseStrict(ip);
  if (!addr) return true; // fail closed
  return addr.kind() === "ipv4" ? isNonPublicV4(addr as IPv4) : isNonPublicV6(addr as IPv6);
}

/** True for loopback only (127/8, ::1, and IPv4-mapped/compatible loopback). */
export function isLoopbackIp(ip: string): boolean {
  const addr = parseStrict(ip);
  if (!addr) return false;
  if (addr.kind() === "ipv4") return (addr as IPv4).match(LOOPBACK_V4);
  const v6 = addr as IPv6;
  const p = v6.parts;
  if (p.slice(0, 7).every((group) => group === 0) && p[7] === 1) return true;
  return LOOPBACK_EMBEDDING.some((range) => v6.match(range)) && v4From(p[6] ?? 0, p[7] ?? 0).match(LOOPBACK_V4);
}
