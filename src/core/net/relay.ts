/**
 * Byte relay between two connections with half-close carried both ways: when one side sends
 * FIN, the other side's write half is closed and the opposite direction keeps flowing.
 *
 * @module
 */
import type { Conn, Net } from "./contract.ts";

/**
 * Copy `from` → `to` until FIN, then half-close `to`. Rejects on I/O failure. Written as a
 * promise chain rather than an async loop: an idle tunnel keeps two of these waiting, and a
 * suspended async function holds a frame of its own.
 */
export function pump(from: Conn, to: Conn): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const next = (): void => void from.read().then(forward, reject);
    const forward = (chunk: Uint8Array | null): void => {
      if (chunk === null) void to.closeWrite().then(resolve, reject);
      else void to.write(chunk).then(next, reject);
    };
    next();
  });
}

/**
 * Resolves once both directions of a relay have ended; rejects with the first failure (the
 * other direction is then left to the closing of both connections).
 */
export function bothDirections(one: Promise<void>, other: Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let open = 2;
    const ended = (): void => {
      if (--open === 0) resolve();
    };
    one.then(ended, reject);
    other.then(ended, reject);
  });
}

/**
 * Relay both ways until both directions have ended, then close both connections. Any failure
 * closes both at once. Uses the adapter's native relay when it offers one for these
 * connections. `pending` holds bytes already read from `a` that belong to `b`. Never rejects.
 */
export function relay(net: Net, a: Conn, b: Conn, pending?: Uint8Array): Promise<void> {
  const both = (): Promise<void> => {
    const native = net.relay?.(a, b);
    if (native) return native;
    // Both directions at once; the first failure ends the relay (both are closed below).
    return bothDirections(pump(a, b), pump(b, a));
  };
  const run = pending && pending.length > 0 ? b.write(pending).then(both) : both();
  const closeBoth = (): void => {
    a.close();
    b.close();
  };
  // A reset or a write after the peer went away ends it too: both sides are closed either way.
  return run.then(closeBoth, closeBoth);
}
