/**
 * SOCKS5 messages (RFC 1928) as pure functions over bytes. Each parser takes everything
 * received so far and answers: need more bytes, parsed (with the bytes consumed), or an error
 * carrying the reply code to send. No parser throws, whatever the input.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { AddressType, Reply, SOCKS_VERSION, USER_PASS_VERSION } from "./constants.ts";

/** A destination as the client named it. `host` is an IP literal (IPv6 unbracketed) or a name. */
export interface Socks5Address {
  readonly type: "ipv4" | "ipv6" | "domain";
  readonly host: string;
  readonly port: number;
}

/** Parser outcome. */
export type Parsed<T> =
  | { readonly kind: "more" }
  | { readonly kind: "ok"; readonly value: T; readonly size: number }
  | { readonly kind: "error"; readonly reply: number; readonly message: string };

const MORE = { kind: "more" } as const;

function fail(reply: number, message: string): { kind: "error"; reply: number; message: string } {
  return { kind: "error", reply, message };
}

/** Method-selection message: `VER NMETHODS METHODS…` (RFC 1928 §3). */
export function parseGreeting(b: Uint8Array): Parsed<{ methods: number[] }> {
  if (b.length < 1) return MORE;
  if (b[0] !== SOCKS_VERSION) return fail(Reply.GENERAL_FAILURE, `not SOCKS5 (version byte 0x${hex(b[0]!)})`);
  if (b.length < 2) return MORE;
  const n = b[1]!;
  if (n === 0) return fail(Reply.GENERAL_FAILURE, "greeting lists no methods");
  if (b.length < 2 + n) return MORE;
  return { kind: "ok", value: { methods: [...b.subarray(2, 2 + n)] }, size: 2 + n };
}

/** Username/password request: `VER ULEN UNAME PLEN PASSWD` (RFC 1929 §2). */
export function parseUserPass(b: Uint8Array): Parsed<{ user: string; password: string }> {
  if (b.length < 1) return MORE;
  if (b[0] !== USER_PASS_VERSION) return fail(Reply.GENERAL_FAILURE, `username/password version 0x${hex(b[0]!)}, not 0x01`);
  if (b.length < 2) return MORE;
  const ulen = b[1]!;
  if (b.length < 2 + ulen + 1) return MORE;
  const plen = b[2 + ulen]!;
  const size = 3 + ulen + plen;
  if (b.length < size) return MORE;
  return { kind: "ok", value: { user: decodeDomain(b.subarray(2, 2 + ulen)), password: decodeDomain(b.subarray(3 + ulen, size)) }, size };
}

/** A request: `VER CMD RSV ATYP DST.ADDR DST.PORT` (RFC 1928 §4). */
export interface Socks5Request {
  readonly command: number;
  readonly target: Socks5Address;
}

/** Parse a request. An unknown address type is an error with reply 0x08 (RFC 1928 §6). */
export function parseRequest(b: Uint8Array): Parsed<Socks5Request> {
  if (b.length < 1) return MORE;
  if (b[0] !== SOCKS_VERSION) return fail(Reply.GENERAL_FAILURE, `not SOCKS5 (version byte 0x${hex(b[0]!)})`);
  if (b.length < 3) return MORE;
  const command = b[1]!;
  if (b[2] !== 0x00) return fail(Reply.GENERAL_FAILURE, `reserved byte is 0x${hex(b[2]!)}, not 0x00`);
  const addr = parseAddress(b, 3);
  if (addr.kind !== "ok") return addr;
  return { kind: "ok", value: { command, target: addr.value }, size: addr.size };
}

/** A UDP relay datagram: `RSV RSV FRAG ATYP DST.ADDR DST.PORT DATA` (RFC 1928 §7). */
export interface Socks5Datagram {
  readonly frag: number;
  readonly target: Socks5Address;
  readonly data: Uint8Array;
}

/** Parse one UDP datagram (always complete: UDP has no partial reads). */
export function parseDatagram(b: Uint8Array): { kind: "ok"; value: Socks5Datagram } | { kind: "error"; message: string } {
  if (b.length < 4) return { kind: "error", message: `datagram of ${b.length} bytes is shorter than its header` };
  if (b[0] !== 0 || b[1] !== 0) return { kind: "error", message: "reserved bytes are not zero" };
  const addr = parseAddress(b, 3);
  if (addr.kind === "more") return { kind: "error", message: "datagram ends inside its address" };
  if (addr.kind === "error") return { kind: "error", message: addr.message };
  return { kind: "ok", value: { frag: b[2]!, target: addr.value, data: b.subarray(addr.size) } };
}

/** `ATYP ADDR PORT` starting at `at`; `size` is the offset just past the port. */
function parseAddress(b: Uint8Array, at: number): Parsed<Socks5Address> {
  if (b.length < at + 1) return MORE;
  const atyp = b[at]!;
  let host: string;
  let type: Socks5Address["type"];
  let end: number;
  switch (atyp) {
    case AddressType.IPV4:
      end = at + 1 + 4;
      if (b.length < end + 2) return MORE;
      host = `${b[at + 1]}.${b[at + 2]}.${b[at + 3]}.${b[at + 4]}`;
      type = "ipv4";
      break;
    case AddressType.IPV6: {
      end = at + 1 + 16;
      if (b.length < end + 2) return MORE;
      host = ipaddr.fromByteArray([...b.subarray(at + 1, end)]).toString();
      type = "ipv6";
      break;
    }
    case AddressType.DOMAIN: {
      if (b.length < at + 2) return MORE;
      const len = b[at + 1]!;
      // An empty name parses to "", which the policy refuses like any unusable host (0x02).
      end = at + 2 + len;
      if (b.length < end + 2) return MORE;
      host = decodeDomain(b.subarray(at + 2, end));
      type = "domain";
      break;
    }
    default:
      return fail(Reply.ADDRESS_TYPE_NOT_SUPPORTED, `unknown address type 0x${hex(atyp)}`);
  }
  const port = (b[end]! << 8) | b[end + 1]!;
  return { kind: "ok", value: { type, host, port }, size: end + 2 };
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * Domain (or credential) bytes as text. Invalid UTF-8 is kept visible as U+FFFD so the
 * policy's host normalisation refuses it (decision `not_allowed`) without ever resolving it.
 */
function decodeDomain(bytes: Uint8Array): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return "\ufffd".repeat(bytes.length);
  }
}

/** A reply: `VER REP RSV ATYP BND.ADDR BND.PORT`. */
export function encodeReply(reply: number, bound?: { host: string; port: number }): Uint8Array {
  return concat([SOCKS_VERSION, reply, 0x00], encodeAddress(bound ?? { host: "0.0.0.0", port: 0 }));
}

/** The header to put before a datagram relayed back to the client. */
export function encodeDatagramHeader(from: { host: string; port: number }): Uint8Array {
  return concat([0x00, 0x00, 0x00], encodeAddress(from));
}

/** `ATYP ADDR PORT` for an IP literal; anything else encodes as `0.0.0.0`. */
function encodeAddress(a: { host: string; port: number }): Uint8Array {
  const port = [(a.port >> 8) & 0xff, a.port & 0xff];
  const host = a.host.replace(/%.*$/, "");
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return Uint8Array.from([AddressType.IPV4, ...ipaddr.IPv4.parse(host).toByteArray(), ...port]);
  if (ipaddr.IPv6.isValid(host)) return Uint8Array.from([AddressType.IPV6, ...ipaddr.IPv6.parse(host).toByteArray(), ...port]);
  return Uint8Array.from([AddressType.IPV4, 0, 0, 0, 0, ...port]);
}

function concat(head: number[], rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + rest.length);
  out.set(head, 0);
  out.set(rest, head.length);
  return out;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

