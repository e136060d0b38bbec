/**
 * Byte relay between two connections with half-close carried both ways: when one side sends
 * FIN, the other side's write half is closed and the opposite direction keeps flowing.
 *
 * @module
 */
import type { Conn, Net } from "./contract.ts";

/** Copy `from` → `to` until FIN, then half-close `to`. Rejects on I/O failure. */
export async function pump(from: Conn, to: Conn): Promise<void> {
  for (;;) {
    const chunk = await from.read();
    if (chunk === null) break;
    await to.write(chunk);
  }
  await to.closeWrite();
}

/**
 * Relay both ways until both directions have ended, then close both connections. Any failure
 * closes both at once. Uses the adapter's native relay when it offers one for these
 * connections. `pending` holds bytes already read from `a` that belong to `b`.
 */
export async function relay(net: Net, a: Conn, b: Conn, pending?: Uint8Array): Promise<void> {
  try {
    if (pending && pending.length > 0) await b.write(pending);
    const native = net.relay?.(a, b);
    if (native) {
      await native;
      return;
    }
    await Promise.all([pump(a, b), pump(b, a)]);
  } catch {
    // A reset or a write after the peer went away: both sides are closed below.
  } finally {
    a.close();
    b.close();
  }
}
