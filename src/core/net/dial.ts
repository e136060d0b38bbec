/**
 * Dialling a vetted target: connect to exactly the addresses the policy approved (DNS
 * pinning), in order, each attempt bounded by {@link CONNECT_TIMEOUT_MS}.
 *
 * @module
 */
import { DialError, formatAddr, type Conn, type Net, type NetAddr } from "./contract.ts";

/** How long one connection attempt to one address may take. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** How long resolving a name may take when the policy left resolution to dial time. */
export const DIAL_RESOLVE_TIMEOUT_MS = 5_000;

/** The target is one of the proxy's own listeners: forwarding there would loop. */
export class ProxyLoopError extends Error {
  constructor(readonly target: NetAddr) {
    super(`${formatAddr(target)} is one of this proxy's own listeners`);
    this.name = "ProxyLoopError";
  }
}

/** Tells whether an address is one of the proxy's own listeners. */
export type OwnListenerCheck = (addr: NetAddr) => boolean;

/**
 * Connect to `port` on the first reachable address. `addresses` are the policy's vetted IPs;
 * when `undefined` (local binding allowed, nothing to vet) the name is resolved here. Refuses
 * with {@link ProxyLoopError}, before dialling anything, when any address is our own listener.
 */
export async function dialVetted(
  net: Net,
  host: string,
  port: number,
  addresses: readonly string[] | undefined,
  isOwnListener: OwnListenerCheck,
): Promise<Conn> {
  const list = await vettedAddresses(net, host, port, addresses, isOwnListener);
  let last: unknown = new DialError("host_unreachable", { host, port }, "no addresses");
  for (const ip of list) {
    try {
      return await net.connectTcp({ host: ip, port }, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/**
 * The addresses to send to: the policy's vetted ones, or (when it left resolution to dial
 * time) a bounded lookup. Throws {@link ProxyLoopError} when any is our own listener.
 */
export async function vettedAddresses(
  net: Net,
  host: string,
  port: number,
  addresses: readonly string[] | undefined,
  isOwnListener: OwnListenerCheck,
): Promise<readonly string[]> {
  const list = addresses ?? (await resolveForDial(net, host, port));
  for (const ip of list) if (isOwnListener({ host: ip, port })) throw new ProxyLoopError({ host: ip, port });
  return list;
}

async function resolveForDial(net: Net, host: string, port: number): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DialError("timeout", { host, port }, `resolving ${host} took over ${DIAL_RESOLVE_TIMEOUT_MS} ms`)), DIAL_RESOLVE_TIMEOUT_MS);
    });
    return await Promise.race([net.resolve(host), timeout]);
  } catch (e) {
    if (e instanceof DialError) throw e;
    throw new DialError("host_unreachable", { host, port }, `cannot resolve ${host}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}
