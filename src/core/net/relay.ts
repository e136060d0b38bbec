/**
 * Byte relay between two connections with half-close carried both ways: when one side sends
 * FIN, the other side's write half is closed and the opposite direction keeps flowing.
 *
 * @module
 */
import { TARGET, type Logger } from "../log.ts";
import type { Conn, Net } from "./contract.ts";

/**
 * Copy `from` → `to` until FIN, then half-close `to`. Rejects on I/O failure. Written as a
 * promise chain rather than an async loop: an idle tunnel keeps two of these waiting, and a
 * suspended async function holds a frame of its own.
 */
export function pump(from: Conn, to: Conn, onProgress?: () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const next = (): void => void from.read().then(forward, reject);
    // a write that completes is progress too: a reader slow to take the bytes is not idle
    const written = onProgress ? (): void => (onProgress(), next()) : next;
    const forward = (chunk: Uint8Array | null): void => {
      onProgress?.();
      if (chunk === null) void to.closeWrite().then(resolve, reject);
      else void to.write(chunk).then(written, reject);
    };
    next();
  });
}

/** What {@link relay} may also watch. */
export interface RelayOptions {
  /**
   * Close both connections once no byte has moved either way for this long (`tunnel_idle_timeout`,
   * in ms; absent or 0: never). The adapter's native relay is not used then: each chunk is seen.
   */
  readonly idleMs?: number;
  /** Called once when the idle limit closed the relay. */
  readonly onIdle?: () => void;
}

/**
 * Both directions through {@link pump}, closing both sides after `idleMs` in which no chunk was
 * read or written either way (a monotonic clock: a change of the wall clock closes nothing).
 */
function watchedRelay(a: Conn, b: Conn, idleMs: number, onIdle: (() => void) | undefined): Promise<FirstEnd> {
  let last = performance.now();
  const touch = (): void => {
    last = performance.now();
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = (): void => {
    const idle = performance.now() - last;
    if (idle < idleMs) {
      timer = setTimeout(check, idleMs - idle);
      return;
    }
    onIdle?.();
    a.close();
    b.close();
  };
  timer = setTimeout(check, idleMs);
  return bothDirections(pump(a, b, touch), pump(b, a, touch)).finally(() => clearTimeout(timer));
}

/** Which side of a relay sent its FIN first: `a`, `b`. */
export type FirstEnd = "a" | "b";

/**
 * Resolves once both directions of a relay have ended, with the side whose direction ended
 * first (`one` carries `a`'s bytes, `other` `b`'s); rejects with the first failure (the other
 * direction is then left to the closing of both connections).
 */
export function bothDirections(one: Promise<void>, other: Promise<void>): Promise<FirstEnd> {
  return new Promise<FirstEnd>((resolve, reject) => {
    let first: FirstEnd | undefined;
    const ended = (side: FirstEnd) => (): void => {
      if (first === undefined) first = side;
      else resolve(first);
    };
    one.then(ended("a"), reject);
    other.then(ended("b"), reject);
  });
}

/** How a relay ended: which side closed first, a failure, or the idle limit. */
export type RelayOutcome = FirstEnd | "error" | "idle";

/**
 * Relay both ways until both directions have ended, then close both connections, and say how
 * it ended ({@link RelayOutcome}). Any failure closes both at once. Uses the adapter's native relay when it offers one for these
 * connections (not with an idle limit: see {@link RelayOptions}). `pending` holds bytes already read from `a` that belong to `b`. Never rejects.
 */
export function relay(net: Net, a: Conn, b: Conn, pending?: Uint8Array, options: RelayOptions = {}): Promise<RelayOutcome> {
  let idled = false;
  const both = (): Promise<FirstEnd | undefined> => {
    if (options.idleMs !== undefined && options.idleMs > 0) {
      return watchedRelay(a, b, options.idleMs, () => {
        idled = true;
        options.onIdle?.();
      });
    }
    const native = net.relay?.(a, b);
    if (native) return native;
    // Both directions at once; the first failure ends the relay (both are closed below).
    return bothDirections(pump(a, b), pump(b, a));
  };
  const run = pending && pending.length > 0 ? b.write(pending).then(both) : both();
  // A reset or a write after the peer went away ends it too: both sides are closed either way.
  // One handler for both outcomes (a failure settles with an error, never "a" or "b"): an open
  // tunnel holds it all along.
  const end = (first: unknown): RelayOutcome => {
    a.close();
    b.close();
    return idled ? "idle" : first === "a" || first === "b" ? first : "error";
  };
  return run.then(end, end);
}

/** The options of a tunnel without an idle limit (one object, shared by every such tunnel). */
const NO_IDLE_LIMIT: RelayOptions = Object.freeze({});

/**
 * The idle limit of a tunnel under the configuration in force when it opens
 * (`tunnel_idle_timeout`, seconds), logging `what` at info when it closes one.
 */
export function tunnelIdle(
  ctx: { readonly state: { snapshot(): { readonly network: { readonly tunnel_idle_timeout?: number } } }; readonly log: Logger },
  what: string,
  target: string = TARGET.http,
): RelayOptions {
  const secs = ctx.state.snapshot().network.tunnel_idle_timeout ?? 0;
  if (secs <= 0) return NO_IDLE_LIMIT;
  return { idleMs: secs * 1000, onIdle: () => ctx.log.log("info", target, `${what}: closed after ${secs} s without a byte either way (tunnel_idle_timeout)`) };
}
