/**
 * Idle upstream connections shared by every client session of one running proxy, so a client
 * that opens a new connection per request (or leaves) does not cost the origin a new TCP (and
 * TLS) handshake each time.
 *
 * What keeps a pooled connection from serving a request it must not:
 * - The key is the whole vetted destination ({@link destinationKey}): its kind (plain, TLS,
 *   upstream proxy, unix socket), host name (also the TLS server name), port, the pinned
 *   addresses the gate vetted, the upstream proxy. A request takes only a connection of exactly its own key, and only
 *   after the gate allowed it.
 * - Every connection was parked under one policy snapshot. When the snapshot in force changes
 *   (a reload, a mode change), every idle connection is closed at once, so no connection opened
 *   under an older policy outlives it.
 * - A parked connection is read while idle: any byte or a close from the origin drops it.
 * - A connection is parked only if it was opened under the policy still in force.
 * - Only requests without a body and of an idempotent method (RFC 9110 §9.2.2) take one: a
 *   parked connection the origin closed meanwhile is retried on a fresh one, which is safe only
 *   for those. The others dial, and their connection may be parked afterwards.
 * - A connection that carried connection-bound authentication (NTLM, Negotiate) is never parked:
 *   it belongs to its client.
 * - Bounded: {@link POOL_MAX_IDLE} in all, {@link POOL_MAX_IDLE_PER_KEY} per destination, each
 *   for at most {@link POOL_IDLE_MS}.
 *
 * @module
 */
import type { ProxySnapshot, ProxyState } from "../state.ts";
import type { destinationKey, Upstream, UpstreamSlot } from "./upstream.ts";

/** Most idle upstream connections kept, over all destinations. */
export const POOL_MAX_IDLE = 256;
/** Most idle upstream connections kept to one destination. */
export const POOL_MAX_IDLE_PER_KEY = 32;
/**
 * Longest a connection stays idle in the pool. Shorter than the keep-alive timeout of common
 * origins (nginx 75 s, Apache 5 s is the exception: its closes are seen and dropped at once).
 */
export const POOL_IDLE_MS = 15_000;

/** What a taken connection's idle read is withdrawn with; never surfaces. */
const TAKEN = new Error("taken from the upstream pool");

/** One parked connection. */
interface Parked {
  readonly up: Upstream;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** The idle connections, by destination key. */
export class UpstreamPool {
  private readonly idle = new Map<string, Parked[]>();
  private count = 0;
  /** The policy snapshot the parked connections were vetted under. */
  private generation: ProxySnapshot | undefined;
  private closed = false;
  private readonly unsubscribe: () => void;

  /** Follows `state`: a reload or mode change closes every idle connection. */
  constructor(private readonly state: Pick<ProxyState, "snapshot" | "onChange">) {
    this.generation = state.snapshot();
    this.unsubscribe = state.onChange(() => this.followPolicy());
  }

  /** Idle connections held now (for tests and the bench). */
  get size(): number {
    return this.count;
  }

  /** An idle connection to `key`, taken out of the pool, or `undefined`. */
  take(key: string): Upstream | undefined {
    this.followPolicy();
    for (;;) {
      const list = this.idle.get(key);
      const parked = list?.pop();
      if (!parked) return undefined;
      if (list!.length === 0) this.idle.delete(key);
      this.count--;
      clearTimeout(parked.timer);
      const up = parked.up;
      // Withdraw the idle read; bytes that arrive from now on belong to the new owner.
      up.conn.cancelRead(TAKEN);
      // A byte or a close the idle read got but had not yet reported: not a usable connection.
      if (up.reader.bufferedLength === 0 && !up.reader.ended && !up.closed) return up;
      up.close();
    }
  }

  /**
   * Keep `up` for a later request to the same destination, or close it when it cannot be
   * kept: the pool is full or closed; the connection is closed, holds unread bytes, is pinned to
   * its client (`private`), or was opened under a policy no longer in force.
   */
  put(up: Upstream): void {
    this.followPolicy();
    if (up.closed) return;
    const list = this.idle.get(up.key) ?? [];
    const stale = up.generation !== this.generation;
    if (this.closed || stale || up.private || up.reader.bufferedLength > 0 || up.reader.ended || this.count >= POOL_MAX_IDLE || list.length >= POOL_MAX_IDLE_PER_KEY) {
      up.close();
      return;
    }
    const parked: Parked = { up, timer: setTimeout(() => this.drop(parked), POOL_IDLE_MS) };
    list.push(parked);
    this.idle.set(up.key, list);
    this.count++;
    // Nothing is owed by an idle origin: a byte or a close means the connection is done.
    up.reader.fill().then(
      () => this.drop(parked),
      (e: unknown) => {
        if (e !== TAKEN) this.drop(parked);
      },
    );
  }

  /** Close every idle connection and keep none from now on (the proxy is shutting down). */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    this.clear();
  }

  /** Close every idle connection. */
  private clear(): void {
    for (const list of this.idle.values()) {
      for (const p of list) {
        clearTimeout(p.timer);
        p.up.close();
      }
    }
    this.idle.clear();
    this.count = 0;
  }

  /** Drop everything parked under another policy than the one in force now. */
  private followPolicy(): void {
    const now = this.state.snapshot();
    if (now === this.generation) return;
    this.clear();
    this.generation = now;
  }

  /** Remove `parked` (if still in the pool) and close it. */
  private drop(parked: Parked): void {
    const list = this.idle.get(parked.up.key);
    const at = list?.indexOf(parked) ?? -1;
    if (at < 0) return; // taken, or cleared meanwhile
    list!.splice(at, 1);
    if (list!.length === 0) this.idle.delete(parked.up.key);
    this.count--;
    clearTimeout(parked.timer);
    parked.up.close();
  }
}

/**
 * End the slot's hold on its upstream: park it in `pool` (which closes what it cannot keep), or
 * close it when there is no pool. Only for an upstream that is idle between exchanges.
 */
export function releaseUpstream(slot: UpstreamSlot, pool: UpstreamPool | undefined): void {
  const up = slot.current;
  slot.current = undefined;
  if (!up) return;
  if (pool) pool.put(up);
  else up.close();
}
