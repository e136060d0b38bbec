/**
 * How an allowed request is dialled, as the gate plans it, and opening a tunnel from a plan.
 * Addresses in a plan were checked against the proxy's own listeners (a direct plan's are the
 * policy's vetted ones); where a plan has none, the name is resolved and checked when dialled.
 *
 * @module
 */
import { dialVetted, type DialContext } from "./dial.ts";
import { connectThrough, type Tunnel, type UpstreamProxy } from "./upstream-proxy.ts";

/** Where to dial. */
export type DialPlan =
  /** Straight to these addresses, in order (DNS pinning); none: the name is resolved when dialled. */
  | { readonly kind: "direct"; readonly addresses?: readonly string[] }
  /** Through this upstream proxy, at these addresses; none: its name is resolved when dialled. */
  | { readonly kind: "upstream"; readonly proxy: UpstreamProxy; readonly addresses?: readonly string[] }
  /** Over this allowlisted unix socket (the entry itself, not the client's spelling). */
  | { readonly kind: "unix"; readonly path: string };

const NO_BYTES = new Uint8Array(0);

/**
 * A byte tunnel to `host:port` as `plan` says (a unix plan is never a tunnel's). Throws
 * `ProxyLoopError` when a name resolved here reaches one of the proxy's own listeners.
 */
export async function openPlannedTunnel(ctx: DialContext, plan: DialPlan, host: string, port: number): Promise<Tunnel> {
  switch (plan.kind) {
    case "direct":
      return { conn: await dialVetted(ctx, host, port, plan.addresses), early: NO_BYTES };
    case "upstream":
      return connectThrough(ctx, plan.proxy, host, port, plan.addresses);
    case "unix":
      throw new TypeError("a unix-socket plan cannot carry a tunnel");
  }
}
