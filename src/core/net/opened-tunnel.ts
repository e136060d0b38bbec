/**
 * The tail every opaque tunnel shares once its upstream is open (an HTTP CONNECT, a SOCKS5
 * CONNECT): answer the client, relay until both sides are done, record the tunnel, and give
 * back what it held. Written so an open tunnel holds this one frame (docs/architecture.md).
 *
 * @module
 */
import { countsNow, noteTunnelEnd, tunnelEnd, tunnelRecord } from "../audit/connection.ts";
import type { SessionContext } from "../session-context.ts";
import type { Conn } from "./contract.ts";
import type { BufferedReader } from "./reader.ts";
import { relay, tunnelIdle, type RelayOutcome } from "./relay.ts";

/** How a front names its tunnels: the record's protocol, and the log's target and label. */
export interface TunnelFront {
  readonly protocol: "https_connect" | "socks5_tcp";
  readonly target: string;
  /** Starts the log lines: `CONNECT`, `socks5_tcp`. */
  readonly label: string;
}

/** An empty chunk. */
const NOTHING = new Uint8Array(0);

/**
 * Relay `reader.conn` ⇄ `upstream` (opened for `host`:`port` on behalf of `who`): write `answer`
 * (the front's success reply) and `early` (what an upstream proxy sent past its own answer),
 * relay, record the tunnel, then close and untrack the upstream and `release` the tunnel's
 * slot, on every path. Resolves `"close"` (the connection that carried a tunnel ends with it);
 * rejects only when the answer cannot be written or the record fails.
 */
export async function relayOpenedTunnel(
  ctx: SessionContext,
  reader: BufferedReader,
  upstream: Conn,
  early: Uint8Array,
  answer: Uint8Array,
  front: TunnelFront,
  host: string,
  port: number,
  who: string,
  release: (() => void) | undefined,
): Promise<"close"> {
  const client = reader.conn;
  try {
    ctx.track(upstream);
    const since = Date.now();
    const base = countsNow(upstream); // an upstream proxy's handshake is not the tunnel's
    let outcome: RelayOutcome = "error";
    try {
      ctx.log.log("info", front.target, `${front.label} ${host}:${port} allowed for ${who}`);
      // the tunnel reads without deadlines: a head deadline's timer goes now, not when it lapses
      reader.release();
      await client.write(answer);
      if (early.length > 0) await client.write(early);
      early = NOTHING; // not kept for the tunnel's life (it may be a view of a larger read)
      outcome = await relay(ctx.net, client, upstream, reader.takeBuffered(), tunnelIdle(ctx, `${front.label} ${host}:${port} for ${who}`, front.target));
    } finally {
      const ended = tunnelEnd(outcome, ctx.closing?.aborted === true);
      noteTunnelEnd(client, ended);
      ctx.state.recordConnection(tunnelRecord({ protocol: front.protocol, host, port, client: who, upstream, base, opened: since, ended }));
    }
    return "close";
  } finally {
    upstream.close();
    ctx.untrack(upstream);
    release?.();
  }
}
