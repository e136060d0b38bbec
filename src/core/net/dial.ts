/**
 * Dialling a vetted target: connect to exactly the addresses the policy approved (DNS
 * pinning), in order, each attempt bounded by {@link CONNECT_TIMEOUT_MS} and all of them by
 * {@link DIAL_BUDGET_MS}; never to one of the proxy's own listeners.
 *
 * @module
 */
import { DialError, formatAddr, type Conn, type DialOptions, type Net, type NetAddr } from "./contract.ts";
import { onAbort, untilAborted, withTimeout } from "./timeout.ts";

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
  /** Aborted when the proxy shuts down: pending lookups and dials stop at once. */
  readonly closing?: AbortSignal;
  /** Aborted when the request's client left ({@link dialScope}): its dials stop at once. */
  readonly abandoned?: AbortSignal;
  /** Hears how long each successful upstream connect took, in ms (the metrics). */
  readonly observeConnect?: (ms: number) => void;
}

/**
 * `ctx` for the dials of one request: they also stop when `signal` aborts (its client left).
 * The context's functions are carried over as they are; they must not rely on `this`.
 */
export function dialScope<T extends DialContext>(ctx: T, signal: AbortSignal): T {
  return { ...ctx, abandoned: signal };
}

/** The signals that stop a dial of `ctx`. */
export function stopSignals(ctx: DialContext): (AbortSignal | undefined)[] {
  return [ctx.closing, ctx.abandoned];
}

/** The first aborted stop signal of `ctx`, if any. */
export function stoppedBy(ctx: DialContext): AbortSignal | undefined {
  return ctx.closing?.aborted ? ctx.closing : ctx.abandoned?.aborted ? ctx.abandoned : undefined;
}

/**
 * A signal for one connection attempt: aborted after `ms` (a timeout) or when one of `ctx`'s
 * stop signals aborts. `release()` clears the timer and unhooks it from those signals, so
 * nothing stays attached to the proxy's long-lived shutdown signal after the attempt.
 */
export function attemptSignal(ctx: DialContext, ms: number): { readonly signal: AbortSignal; release(): void } {
  const attempt = new AbortController();
  const timer = setTimeout(() => attempt.abort(new Error(`no connection within ${ms} ms`)), ms);
  const sources = stopSignals(ctx).filter((s): s is AbortSignal => s !== undefined);
  const stop = (): void => attempt.abort(stoppedBy(ctx)?.reason);
  const unhook = sources.map((s) => onAbort(s, stop));
  if (stoppedBy(ctx)) stop();
  return {
    signal: attempt.signal,
    release() {
      clearTimeout(timer);
      for (const f of unhook) f();
    },
  };
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
  const budgetEnd = Date.now() + DIAL_BUDGET_MS;
  let last: unknown = new DialError("host_unreachable", { host, port }, "no addresses");
  for (const ip of list) {
    const stopped = stoppedBy(ctx);
    if (stopped) throw stopped.reason;
    const left = budgetEnd - Date.now();
    if (left <= 0) break;
    const attempt = attemptSignal(ctx, Math.min(CONNECT_TIMEOUT_MS, left));
    const started = performance.now();
    try {
      const conn = await connect({ host: ip, port }, { signal: attempt.signal });
      ctx.observeConnect?.(performance.now() - started);
      return conn;
    } catch (e) {
      // A certificate failure is the more telling error: keep it over a later refusal.
      if (!(last instanceof DialError && last.kind === "tls")) last = e;
    } finally {
      attempt.release();
    }
  }
  throw last;
}

/**
 * The addresses to send to: the policy's vetted ones, or (when it left resolution to dial
 * time) a bounded lookup. Throws {@link ProxyLoopError} when any is our own listener.
 */
export async function vettedAddresses(ctx: DialContext, host: string, port: number, addresses: readonly string[] | undefined): Promise<readonly string[]> {
  const list = addresses ?? (await untilAborted(resolveForDial(ctx.net, host, port), ...stopSignals(ctx)));
  for (const ip of list) if (ctx.isOwnListener({ host: ip, port })) throw new ProxyLoopError({ host: ip, port });
  return list;
}

/** Resolve `host` within {@link DIAL_RESOLVE_TIMEOUT_MS}; a failure is a `DialError`. */
export async function resolveForDial(net: Net, host: string, port: number): Promise<string[]> {
  try {
    return await withTimeout(net.resolve(host), DIAL_RESOLVE_TIMEOUT_MS, () => {
      throw new DialError("timeout", { host, port }, `resolving ${host} took over ${DIAL_RESOLVE_TIMEOUT_MS} ms`);
    });
  } catch (e) {
    if (e instanceof DialError) throw e;
    throw new DialError("host_unreachable", { host, port }, `cannot resolve ${host}: ${(e as Error).message}`, { cause: e });
  }
}
