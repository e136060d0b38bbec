/**
 * Writing a last answer to a peer that may already be gone.
 *
 * @module
 */
import type { Conn } from "./contract.ts";

/** Write and ignore failure (the peer may already be gone: nothing more to tell it). */
export async function writeQuietly(conn: Conn, bytes: Uint8Array): Promise<void> {
  try {
    await conn.write(bytes);
  } catch {
    // nothing more to tell a peer that went away
  }
}
