/**
 * Accepting connections under bursts and at the descriptor limit, shared by the runtime
 * adapters: the listen backlog every listener asks for, the backoff after a failed accept, and
 * an accept loop for runtimes whose listeners hand out connections one `accept()` at a time
 * (Deno). Uses no runtime API beyond timers, so every adapter can use it.
 *
 * A failed accept (EMFILE/ENFILE when descriptors run out, ENOMEM/ENOBUFS) is a condition of
 * the process, not of the listener: the listener is never given up. The first failure of a
 * burst is reported, the next ones only counted, and the count is reported once an accept
 * succeeds again.
 *
 * @module
 */
import type { AcceptErrorEvent } from "../../core/net/contract.ts";

/**
 * Listen backlog asked for on every listener: room for thousands of simultaneous connects
 * while the event loop is busy. Linux caps it at `net.core.somaxconn` (4096 by default since
 * Linux 5.4); runtimes that cannot set a backlog keep their own (see each adapter).
 */
export const LISTEN_BACKLOG = 65_535;

/** Pause after the first failed accept of a burst. */
export const ACCEPT_RETRY_INITIAL_MS = 10;

/** Longest pause between accept attempts while they keep failing (the pause doubles up to it). */
export const ACCEPT_RETRY_MAX_MS = 1_000;

/** One listener's accept failures: the pause before the next attempt and once-per-burst reports. */
export class AcceptBackoff {
  private failures = 0;
  private since = 0;
  private pause = 0;

  constructor(
    private readonly report?: (event: AcceptErrorEvent) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * An accept failed. Reports the first failure of a burst; returns how long to wait before
   * the next attempt ({@link ACCEPT_RETRY_INITIAL_MS}, doubling up to {@link ACCEPT_RETRY_MAX_MS}).
   */
  failed(error: unknown): number {
    this.pause = this.failures === 0 ? ACCEPT_RETRY_INITIAL_MS : Math.min(this.pause * 2, ACCEPT_RETRY_MAX_MS);
    if (this.failures++ === 0) {
      this.since = this.now();
      this.notify({ kind: "failing", error: error instanceof Error ? error : new Error(String(error)) });
    }
    return this.pause;
  }

  /** An accept succeeded: ends a burst of failures, reporting how many there were. */
  succeeded(): void {
    if (this.failures === 0) return;
    const failures = this.failures;
    this.failures = 0;
    this.notify({ kind: "recovered", failures, durationMs: Math.max(0, this.now() - this.since) });
  }

  private notify(event: AcceptErrorEvent): void {
    try {
      this.report?.(event);
    } catch {
      // a failing reporter must not stop accepting
    }
  }
}

/** What {@link acceptLoop} needs besides the accept itself. */
export interface AcceptLoopOptions {
  readonly backoff: AcceptBackoff;
  /** Aborted when the listener is closed: the loop ends, also in the middle of a pause. */
  readonly signal: AbortSignal;
  /** Wait `ms` or until `signal` aborts (a timer by default; tests pass a fake clock). */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * Accept until `signal` aborts, handing each connection to `onConn` at once (nothing slow runs
 * between the accept and the hand-over). A failed accept never ends the loop: it pauses as
 * {@link AcceptBackoff} says and tries again. `onConn` must not throw; if it does, the error is
 * ignored and accepting goes on.
 */
export async function acceptLoop<C>(accept: () => Promise<C>, onConn: (conn: C) => void, opts: AcceptLoopOptions): Promise<void> {
  const sleep = opts.sleep ?? abortableSleep;
  while (!opts.signal.aborted) {
    let conn: C;
    try {
      conn = await accept();
    } catch (e) {
      if (opts.signal.aborted) return; // the listener was closed under the pending accept
      await sleep(opts.backoff.failed(e), opts.signal);
      continue;
    }
    opts.backoff.succeeded();
    try {
      onConn(conn);
    } catch {
      // the connection's owner failed; the listener goes on
    }
  }
}

/** Resolve after `ms`, or at once when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
