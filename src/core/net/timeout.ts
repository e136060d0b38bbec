/**
 * The ways the core bounds a wait: by time, and by a signal (the client left, shutdown).
 *
 * @module
 */

/**
 * `promise`, or after `ms` the result of `onTimeout` (which may throw to reject). The timer is
 * always cleared; the abandoned promise's own outcome is ignored.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (e) {
        reject(e);
      }
    }, ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Hooks on signals, kept here rather than as listeners of each signal: every dial in progress
 * watches the proxy's one shutdown signal, and Node warns of a leak (a
 * `MaxListenersExceededWarning` on stderr) once a signal has more than 10 listeners. Each
 * signal gets one listener of its own, which calls its hooks.
 */
const hooks = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Call `f` once when `signal` aborts (not if it already has: check `signal.aborted` first).
 * Returns what unhooks it, to call once the wait is over.
 */
export function onAbort(signal: AbortSignal, f: () => void): () => void {
  let set = hooks.get(signal);
  if (set === undefined) {
    const fresh = new Set<() => void>();
    signal.addEventListener(
      "abort",
      () => {
        const due = [...fresh];
        fresh.clear();
        for (const g of due) g();
      },
      { once: true },
    );
    hooks.set(signal, fresh);
    set = fresh;
  }
  const mine = set;
  mine.add(f);
  return () => void mine.delete(f);
}

/**
 * `promise`, unless one of `signals` aborts first: then rejects with that signal's reason. The
 * abandoned promise's own outcome is ignored (a DNS lookup cannot be cancelled, only no longer
 * awaited). Listeners are removed once it settles.
 */
export async function untilAborted<T>(promise: Promise<T>, ...signals: (AbortSignal | undefined)[]): Promise<T> {
  const live = signals.filter((s): s is AbortSignal => s !== undefined);
  if (live.length === 0) return promise;
  const gone = live.find((s) => s.aborted);
  if (gone) {
    promise.catch(() => {});
    throw gone.reason;
  }
  const unhook: (() => void)[] = [];
  const aborted = new Promise<never>((_, reject) => {
    const stop = (): void => reject(live.find((s) => s.aborted)?.reason);
    for (const s of live) unhook.push(onAbort(s, stop));
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    for (const f of unhook) f();
  }
}
