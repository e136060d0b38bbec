/**
 * Closing a client connection gracefully after the last response (RFC 9112 §9.6): a client may
 * still be sending a body the proxy did not read (a refusal, an origin that answered early).
 * Closing with unread bytes makes the kernel reset the connection, and a reset can destroy the
 * response before the client read it. So: finish writing, half-close, then read and discard
 * what the client still sends until it closes too, within bounds of bytes and time.
 *
 * @module
 */
import type { BufferedReader } from "../net/reader.ts";
import { withTimeout } from "../net/timeout.ts";

/** Longest a closing connection is drained in all (nginx's `lingering_time` is the same). */
export const LINGER_MAX_MS = 30_000;
/** Longest pause between two chunks while draining: a client that stopped sending is done. */
export const LINGER_IDLE_MS = 5_000;
/** Most bytes discarded while draining; beyond it the connection is closed as it is. */
export const LINGER_MAX_BYTES = 64 * 1024 * 1024;
/** Largest piece taken per read while draining. */
const DRAIN_SLICE_BYTES = 256 * 1024;

/**
 * Half-close `reader`'s connection (the response still queued is flushed first, for at most
 * {@link LINGER_IDLE_MS}), then discard what the client sends until it closes, pauses for
 * {@link LINGER_IDLE_MS}, exceeds {@link LINGER_MAX_BYTES}, or {@link LINGER_MAX_MS} pass.
 * The caller closes the connection afterwards. Never throws.
 */
export async function closeGracefully(reader: BufferedReader): Promise<void> {
  try {
    const until = Date.now() + LINGER_MAX_MS;
    // Flushing may wait on a client that reads nothing: bounded like the rest.
    const flushed = await withTimeout(
      reader.conn.closeWrite().then(() => true),
      LINGER_IDLE_MS,
      () => false,
    );
    if (!flushed) return;
    reader.takeBuffered();
    let discarded = 0;
    while (discarded <= LINGER_MAX_BYTES) {
      const chunk = await reader.readUpTo(DRAIN_SLICE_BYTES, Math.min(until, Date.now() + LINGER_IDLE_MS));
      if (chunk === null) return;
      discarded += chunk.length;
    }
  } catch {
    // reset, closed, or out of time: the caller closes the connection either way
  }
}
