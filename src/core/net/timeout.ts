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
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(live.find((s) => s.aborted)?.reason);
    for (const s of live) s.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    for (const s of live) s.removeEventListener("abort", onAbort!);
  }
}
