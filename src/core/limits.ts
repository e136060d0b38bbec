/**
 * Limits that protect the machine from a runaway client (docs/behaviour.md §5.20): open client
 * connections across listeners, open tunnels, and requests per second per client address (a
 * token bucket). The counts live here, one object per running proxy; the limits themselves
 * are read from the configuration in force at each check, so a reload changes them at once.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { canonicalIp } from "./net/ip.ts";

/** Default `max_connections`: generous, far above what one sandbox opens, below descriptor exhaustion. */
export const DEFAULT_MAX_CONNECTIONS = 16_384;
/** Largest value a count limit accepts. */
export const MAX_LIMIT = 1_000_000_000;
/** `Retry-After` of a 429 or 503 refusal, in seconds. */
export const RETRY_AFTER_SECS = 1;
/** Client addresses whose buckets are kept; the least recently seen goes first beyond it. */
export const MAX_RATE_CLIENTS = 65_536;

/** One client's token bucket. */
interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
}

/** The counts of one running proxy. */
export class Limits {
  private connections = 0;
  private tunnels = 0;
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Count a new client connection: `false` (not counted) when `max` (0: no limit) are open.
   * A counted one is released with {@link closeConnection}.
   */
  openConnection(max: number): boolean {
    if (max > 0 && this.connections >= max) return false;
    this.connections++;
    return true;
  }

  closeConnection(): void {
    this.connections--;
  }

  /** Open client connections now. */
  get openConnections(): number {
    return this.connections;
  }

  /**
   * Reserve a tunnel: the function that releases it (call it once, when the tunnel ends), or
   * `undefined` when `max` (0: no limit) are open.
   */
  openTunnel(max: number): (() => void) | undefined {
    if (max > 0 && this.tunnels >= max) return undefined;
    this.tunnels++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.tunnels--;
    };
  }

  /** Open tunnels now. */
  get openTunnels(): number {
    return this.tunnels;
  }

  /**
   * Take one token from `client`'s bucket, which holds up to `burst` (at least 1; 0 means
   * `perSecond`) and refills at `perSecond`. `false` when it is empty. `perSecond` 0: no limit.
   */
  takeToken(client: string, perSecond: number, burst: number): boolean {
    if (perSecond <= 0) return true;
    const capacity = Math.max(1, burst > 0 ? burst : perSecond);
    const now = this.now();
    let bucket = this.buckets.get(client);
    if (bucket) {
      bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
      this.buckets.delete(client); // re-inserted below: the map's order is the recency order
    } else {
      bucket = { tokens: capacity, at: now };
      if (this.buckets.size >= MAX_RATE_CLIENTS) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(client, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}

/**
 * The client a request rate is kept for, from `ip:port`: every loopback address is one client
 * (any local process may bind all of 127/8), an IPv6 client is its /64 (one host commonly holds
 * the whole prefix), an IPv4 client is its address. Text that is not an address stays itself.
 */
export function rateClient(client: string): string {
  const ip = canonicalIp(clientAddress(client));
  if (ip === "::1" || /^127\./.test(ip)) return "loopback";
  if (!ip.includes(":") || !ipaddr.IPv6.isValid(ip)) return ip;
  return `${ipaddr.IPv6.parse(ip).parts.slice(0, 4).map((p) => p.toString(16)).join(":")}::/64`;
}

/** The address part of `ip:port` or `[v6]:port` (the whole text when it has no port). */
export function clientAddress(client: string): string {
  if (client.startsWith("[")) {
    const close = client.indexOf("]");
    return close > 0 ? client.slice(1, close) : client;
  }
  const colon = client.lastIndexOf(":");
  return colon > 0 && client.indexOf(":") === colon ? client.slice(0, colon) : client;
}
