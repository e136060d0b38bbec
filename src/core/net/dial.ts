/**
 * Dialling a vetted target: connect to exactly the addresses the policy approved (DNS
 * pinning), in order, each attempt bounded by {@link CONNECT_TIMEOUT_MS} and all of them by
 * {@link DIAL_BUDGET_MS}; never to one of the proxy's own listeners.
 *
 * @module
 */
import { DialError, formatAddr, type Conn, type DialOptions, type Net, type NetAddr } from "./contract.ts";
import { untilAborted, withTimeout } from "./timeout.ts";

/** How long one connection attempt to one address may take. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** How long all attempts of one dial may take together. */
export const DIAL_BUDGET_MS = 20_000;
/** How long resolving a name may take when the policy left resolution to dial time. */
export const DIAL_RESOLVE_TIMEOUT_MS = 5_000;

/** The target is one of the proxy's own listeners: forwarding there would loop. */
export class ProxyLoopError extends Error {
  constructor(readonly target: NetAddr) {
    super(`${formatAddr(target)} is one of this proxy's own listeners`);
    this.name = "ProxyLoopError";
  }
}

/** What dialling needs from the running proxy (a `SessionContext` is one). */
export interface DialContext {
  readonly net: Net;
  /** True when `addr` is one of this proxy's own listeners. */
  isOwnListener(addr: NetAddr): boolean;
  /**
   * Aborted when the dial is no longer wanted (the proxy shuts down, or, in a
   * {@link dialScope}, the client left): pending lookups and dials stop at once.
   */
  readonly closing?: AbortSignal;
}

/**
 * `ctx` for the dials of one request: they also stop when `signal` aborts (its client left).
 * The context's functions are carried over as they are; they must not rely on `this`.
 */
export function dialScope<T extends DialContext>(ctx: T, signal: AbortSignal): T {
  return { ...ctx, closing: ctx.closing ? AbortSignal.any([ctx.closing, signal]) : signal };
}

/**
 * Connect to `port` on the first reachable address. `addresses` are the policy's vetted IPs;
 * when `undefined` (local binding allowed, nothing to vet) the name is resolved here. Refuses
 * with {@link ProxyLoopError}, before dialling anything, when any address is our own listener.
 */
export async function dialVetted(
  ctx: DialContext,
  host: string,
  port: number,
  addresses: readonly string[] | undefined,
  connect: (addr: NetAddr, options: DialOptions) => Promise<Conn> = (addr, options) => ctx.net.connectTcp(addr, options),
): Promise<Conn> {
  const list = await vettedAddresses(ctx, host, port, addresses);
  const budget = AbortSignal.timeout(DIAL_BUDGET_MS);
  let last: unknown = new DialError("host_unreachable", { host, port }, "no addresses");
  for (const ip of list) {
    const signals = [AbortSignal.timeout(CONNECT_TIMEOUT_MS), budget];
    if (ctx.closing) signals.push(ctx.closing);
    try {
      return await connect({ host: ip, port }, { signal: AbortSignal.any(signals) });
    } catch (e) {
      // A certificate failure is the more telling error: keep it over a later refusal.
      if (!(last instanceof DialError && last.kind === "tls")) last = e;
      if (budget.aborted || ctx.closing?.aborted) break;
    }
  }
  throw last;
}

/**
 * The addresses to send to: the policy's vetted ones, or (when it left resolution to dial
 * time) a bounded lookup. Throws {@link ProxyLoopError} when any is our own listener.
 */
export async function vettedAddresses(ctx: DialContext, host: string, port: number, addresses: readonly string[] | undefined): Promise<readonly string[]> {
  const list = addresses ?? (await untilAborted(resolveForDial(ctx.net, host, port), ctx.closing));
  for (const ip of list) if (ctx.isOwnListener({ host: ip, port })) throw new ProxyLoopError({ host: ip, port });
  return list;
}

async function resolveForDial(net: Net, host: string, port: number): Promise<string[]> {
  try {
    return await withTimeout(net.resolve(host), DIAL_RESOLVE_TIMEOUT_MS, () => {
      throw new DialError("timeout", { host, port }, `resolving ${host} took over ${DIAL_RESOLVE_TIMEOUT_MS} ms`);
    });
  } catch (e) {
    if (e instanceof DialError) throw e;
    throw new DialError("host_unreachable", { host, port }, `cannot resolve ${host}: ${(e as Error).message}`);
  }
}
