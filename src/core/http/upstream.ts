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

  constructor(
    readonly key: string,
    readonly conn: Conn,
    private readonly untrack: () => void,
  ) {
    this.reader = new BufferedReader(conn);
  }

  close(): void {
    this.conn.close();
    this.untrack();
  }

  /** Close at once, dropping what was not sent: the request on it will never be complete. */
  abort(): void {
    this.conn.abort();
    this.untrack();
  }
}

/** The session's upstream, if one is kept. */
export interface UpstreamSlot {
  current: Upstream | undefined;
}

/** Identity of a destination: reuse only when host, port and vetted addresses all match. */
export function upstreamKey(host: string, port: number, addresses: readonly string[] | undefined): string {
  return `${host}|${port}|${addresses ? addresses.join(",") : "*"}`;
}
