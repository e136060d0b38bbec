/**
 * A kept-alive upstream connection owned by one client session, reused while consecutive
 * requests go to the same vetted destination.
 *
 * @module
 */
import type { Conn } from "../net/contract.ts";
import { BufferedReader } from "../net/reader.ts";

/** An open upstream connection and its read buffer. */
export class Upstream {
  readonly reader: BufferedReader;
  /** Whether this connection already carried an exchange (a failure may be a stale reuse). */
  used = false;
  /**
   * Set when the connection carries state of one client that another must not inherit
   * (connection-bound authentication, NTLM or Negotiate): it is never shared through the pool.
   */
  private = false;
  private ended = false;

  /**
   * `generation` is the policy snapshot in force when the connection was opened: the shared
   * pool keeps it only while that snapshot is still in force.
   */
  constructor(
    readonly key: string,
    readonly conn: Conn,
    private readonly untrack: () => void,
    readonly generation?: object,
  ) {
    // one timer for the response-head deadlines of all its requests, cleared when it ends
    this.reader = new BufferedReader(conn, { keepTimer: true });
  }

  /** True once closed or aborted. */
  get closed(): boolean {
    return this.ended;
  }

  close(): void {
    this.conn.close();
    this.done();
  }

  /** Close at once, dropping what was not sent: the request on it will never be complete. */
  abort(): void {
    this.conn.abort();
    this.done();
  }

  private done(): void {
    if (this.ended) return;
    this.ended = true;
    this.reader.release();
    this.untrack();
  }
}

/**
 * Authentication schemes that authenticate the connection rather than the request (RFC 4559
 * Negotiate, and NTLM): a connection that carried one is pinned to its client, never pooled.
 */
const CONNECTION_BOUND_AUTH = /^\s*(?:ntlm|negotiate)\b/i;

/** True when one of `values` (an `Authorization` or `WWW-Authenticate` field) names a connection-bound scheme. */
export function bindsConnection(values: readonly string[]): boolean {
  return values.some((v) => CONNECTION_BOUND_AUTH.test(v));
}

/** The session's upstream, if one is kept. */
export interface UpstreamSlot {
  current: Upstream | undefined;
}

/**
 * The identity of a destination, for reuse within a session and in the shared pool: equal keys
 * may share a kept-alive connection. Every kind has its own prefix, and each names all that
 * makes the connection what it is: the host name the request named (it is also the TLS server
 * name), the port, the pinned addresses the gate vetted (`*`: resolved when dialling), the
 * upstream proxy.
 */
export const destinationKey = {
  /** Plain TCP to the origin. */
  direct: (host: string, port: number, addresses: readonly string[] | undefined): string => `direct|${host}|${port}|${pinned(addresses)}`,
  /** TLS to the origin, verified for `host`. */
  tls: (host: string, port: number, addresses: readonly string[] | undefined): string => `tls|${host}|${port}|${pinned(addresses)}`,
  /** Through an upstream proxy (`display` names it), dialled at its vetted addresses. */
  proxy: (display: string, addresses: readonly string[] | undefined): string => `proxy|${display}|${pinned(addresses)}`,
  /** An allowed unix socket. */
  unix: (path: string): string => `unix|${path}`,
};

function pinned(addresses: readonly string[] | undefined): string {
  return addresses ? addresses.join(",") : "*";
}
