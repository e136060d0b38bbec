/**
 * Small IP-literal helpers for comparing the addresses sockets report.
 *
 * @module
 */

/** `::ffff:a.b.c.d` → `a.b.c.d` (dual-stack sockets report IPv4 peers this way); lower-cased. */
export function unmapIpv4(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host.toLowerCase();
}

/** `0.0.0.0` or `::`: every local address. */
export function isUnspecifiedIp(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}
