/**
 * Host normalisation (docs/behaviour.md §2): every request host and every domain pattern goes through
 * {@link normalizeHost} so that they compare byte for byte. IPv4 in any spelling the system
 * resolver accepts becomes a dotted quad, IPv6 its compressed (RFC 5952) form, IDN labels
 * punycode; anything that cannot be a hostname is refused (`null`), never "cleaned up".
 *
 * Only web-standard APIs are used: the WHATWG `URL` host parser does the IPv4 number parsing,
 * IPv6 compression and UTS #46 / punycode conversion, and its result is validated again.
 *
 * @module
 */
import { MAX_PORT } from "../net/contract.ts";
import { isDottedQuad } from "../net/ip.ts";
import { memoize } from "../memo.ts";

/** A host in its canonical form. */
export interface NormalizedHost {
  /** Canonical form used for matching and reporting: lower-case name (punycode), dotted-quad IPv4, compressed IPv6 (no brackets) with `%zone` kept if present. */
  readonly name: string;
  readonly kind: "name" | "ipv4" | "ipv6";
  /** For IP kinds: the canonical IP without zone id (what gets classified and dialled). */
  readonly ip?: string;
}

/** Longest hostname accepted, in ASCII (punycode) form, without a trailing dot (RFC 1035 §2.3.4 less the root). */
export const MAX_HOST_LENGTH = 253;

/** Longest label accepted, in ASCII (punycode) form (RFC 1035 §2.3.4). */
export const MAX_LABEL_LENGTH = 63;

/**
 * Longest raw input looked at, before any parsing. Generous (Unicode input is shorter than its
 * punycode, and a `:port` or brackets may be attached) but bounds the work done on hostile input.
 */
export const MAX_RAW_HOST_LENGTH = 1024;

/** Longest IPv6 zone id accepted (interface names are at most 15 bytes on Linux; leave room). */
export const MAX_ZONE_LENGTH = 64;

/** Lowest usable port number (port 0 cannot be connected to). */
export const MIN_PORT = 1;

/** Most digits a port may be written with (leading zeros allowed up to this length). */
export const MAX_PORT_DIGITS = 5;

/**
 * Characters that can never appear in a host as written by a client or in a config: C0
 * controls (NUL, TAB, CR, LF, …), space, DEL, and the URL delimiters `/ \ @ ? #`. `%` is
 * handled separately (allowed only to introduce an IPv6 zone id).
 */
const FORBIDDEN_RAW = /[\u0000-\u0020\u007f/\\@?#]/;

/** A canonical hostname after punycode conversion: LDH labels plus `_` (SRV/DMARC-style names). */
const CANONICAL_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** A canonical dotted-quad IPv4 as produced by the WHATWG host parser. */

/** Characters of an IPv6 address before any zone id (hex digits, colons, dots for an embedded IPv4). */
const IPV6_CHARS = /^[0-9a-f:.]+$/;

/** RFC 6874 ZoneID characters (unreserved); percent-encoded zone bytes are not accepted. */
const ZONE_CHARS = /^[a-z0-9._~-]+$/;

/** Port as written: ASCII digits only. */
const PORT_DIGITS = /^[0-9]+$/;

/** The pieces of an authority: host (brackets removed), optional port, and whether it was bracketed. */
interface Authority {
  readonly host: string;
  readonly port: number | undefined;
  readonly bracketed: boolean;
}

/** Parse a port written as decimal digits; `undefined` when it is not a usable port. */
function parsePort(text: string): number | undefined {
  if (text.length === 0 || text.length > MAX_PORT_DIGITS || !PORT_DIGITS.test(text)) return undefined;
  const port = Number(text);
  return port >= MIN_PORT && port <= MAX_PORT ? port : undefined;
}

/**
 * Decode the zone id of a bracketed IPv6 literal: RFC 6874 writes `%` as `%25`
 * (`[fe80::1%25lo0]`); the raw form (`[fe80::1%lo0]`) is accepted too, as curl does. A zone that
 * would be empty after removing `25` is read raw (`[fe80::1%25]` is zone `25`).
 */
function decodeBracketedZone(inner: string): string {
  const pct = inner.indexOf("%");
  if (pct < 0) return inner;
  const zone = inner.slice(pct + 1);
  if (zone.startsWith("25") && zone.length > 2) return inner.slice(0, pct + 1) + zone.slice(2);
  return inner;
}

/** Split an authority into host and port; see {@link splitHostPort}. */
function splitAuthority(authority: string): Authority | null {
  const text = authority.trim();
  if (text.length === 0 || text.length > MAX_RAW_HOST_LENGTH) return null;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return null;
    const inner = text.slice(1, close);
    // Only IPv6 literals are ever bracketed.
    if (!inner.includes(":")) return null;
    const rest = text.slice(close + 1);
    let port: number | undefined;
    if (rest.length > 0) {
      if (!rest.startsWith(":")) return null;
      port = parsePort(rest.slice(1));
      if (port === undefined) return null;
    }
    return { host: decodeBracketedZone(inner), port, bracketed: true };
  }
  const first = text.indexOf(":");
  if (first < 0) return { host: text, port: undefined, bracketed: false };
  // Two or more colons without brackets: a bare IPv6 literal, never a port.
  if (text.indexOf(":", first + 1) >= 0) return { host: text, port: undefined, bracketed: false };
  const host = text.slice(0, first);
  if (host.length === 0) return null;
  const port = parsePort(text.slice(first + 1));
  if (port === undefined) return null;
  return { host, port, bracketed: false };
}

/**
 * Split `host:port`, `[v6]:port`, `host`, `[v6]` or a bare IPv6 literal (`::1`, never read as
 * having a port). The host comes back without brackets; a bracketed RFC 6874 zone (`%25lo0`) is
 * decoded to `%lo0`. `null` when the authority is empty, a bracket is unbalanced or followed by
 * anything but `:port`, or the port is not a decimal number in 1–65535. The host itself is not
 * validated: pass it to {@link normalizeHost}.
 */
export function splitHostPort(authority: string): { host: string; port: number | undefined } | null {
  const parts = splitAuthority(authority);
  return parts ? { host: parts.host, port: parts.port } : null;
}

/** Canonicalise an IPv6 literal (with an optional, already decoded `%zone`). */
function normalizeIpv6(text: string): NormalizedHost | null {
  const lower = text.toLowerCase();
  const pct = lower.indexOf("%");
  const addr = pct < 0 ? lower : lower.slice(0, pct);
  const zone = pct < 0 ? undefined : lower.slice(pct + 1);
  if (!IPV6_CHARS.test(addr)) return null;
  if (zone !== undefined && (zone.length === 0 || zone.length > MAX_ZONE_LENGTH || !ZONE_CHARS.test(zone))) {
    return null;
  }
  let hostname: string;
  try {
    hostname = new URL(`http://[${addr}]/`).hostname;
  } catch {
    return null;
  }
  // The parser answers `[compressed]`; check it really did.
  if (!hostname.startsWith("[") || !hostname.endsWith("]")) return null;
  const ip = hostname.slice(1, -1);
  if (!IPV6_CHARS.test(ip) || !ip.includes(":")) return null;
  return { name: zone === undefined ? ip : `${ip}%${zone}`, kind: "ipv6", ip };
}

/** Strip every trailing dot (`example.com.` and `example.com..` are both `example.com`). */
export function stripTrailingDots(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x2e) end--;
  return text.slice(0, end);
}

/** True when every label of an ASCII hostname is within {@link MAX_LABEL_LENGTH} and non-empty. */
function labelsValid(name: string): boolean {
  if (name.length === 0 || name.length > MAX_HOST_LENGTH) return false;
  for (const label of name.split(".")) {
    if (label.length === 0 || label.length > MAX_LABEL_LENGTH) return false;
  }
  return true;
}

/** Canonicalise a name or IPv4 literal (no port, no brackets, no colon). */
function normalizeNameOrIpv4(text: string): NormalizedHost | null {
  const lower = stripTrailingDots(text.toLowerCase());
  if (lower.length === 0 || lower.includes("%")) return null;
  // Empty labels (`a..b`, `.a`): refuse before the parser gets to interpret them.
  if (lower.split(".").some((label) => label.length === 0)) return null;
  let hostname: string;
  try {
    hostname = new URL(`http://${lower}/`).hostname;
  } catch {
    return null;
  }
  // UTS #46 mapping may have introduced dots (U+3002 → `.`), so strip and validate again.
  const name = stripTrailingDots(hostname);
  if (isDottedQuad(name)) return { name, kind: "ipv4", ip: name };
  if (!CANONICAL_NAME.test(name) || !labelsValid(name)) return null;
  return { name, kind: "name" };
}

/**
 * Normalise a host as written by a client or in a pattern (docs/behaviour.md §2): trim; strip
 * `[...]` brackets and a trailing `:port`; lower-case; strip trailing dots; IPv4 in any resolver
 * spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) to a dotted quad; IPv6 to compressed
 * form (zone id kept in `name`, dropped from `ip`); IDN to punycode. `null` for anything that is
 * not a hostname: empty, forbidden characters (controls, space, `/ \ @ ? #`, `%` outside an IPv6
 * zone), names over {@link MAX_HOST_LENGTH}, labels over {@link MAX_LABEL_LENGTH}, empty labels,
 * or characters outside letters, digits, `-` and `_` after IDN conversion.
 */
export function normalizeHost(raw: string): NormalizedHost | null {
  return normalizeRemembered(raw);
}

/**
 * {@link normalizeHost}'s answers, remembered (it is pure): every request of a keep-alive client
 * names its host twice (target and `Host`), and each costs the URL parser. Answers are frozen,
 * since every caller shares them.
 */
const normalizeRemembered = memoize((raw: string): NormalizedHost | null => {
  const result = normalizeUncached(raw);
  return result === null ? null : Object.freeze(result);
});

function normalizeUncached(raw: string): NormalizedHost | null {
  const parts = splitAuthority(raw);
  if (!parts) return null;
  const host = parts.host;
  if (host.length === 0 || FORBIDDEN_RAW.test(host)) return null;
  if (host.includes(":")) return normalizeIpv6(host);
  // Only IPv6 literals may be bracketed.
  if (parts.bracketed) return null;
  return normalizeNameOrIpv4(host);
}

/** A host as records and logs name it: normalised when it parses, else as the client wrote it. */
export function displayHost(host: string): string {
  return normalizeHost(host)?.name ?? host;
}
