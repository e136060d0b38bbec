/**
 * The one way the core bounds a wait.
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
