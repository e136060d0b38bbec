/**
 * Bounded memory for pure string functions that run on every request (host normalisation, IP
 * canonicalisation and classification): a proxy sees the same few hosts again and again, so a
 * remembered answer saves the parsing. The function must be pure: a remembered answer is then
 * always right. When full, the memory starts over, so it never holds more than its bound.
 *
 * @module
 */

/** Entries each memo keeps at most (keys are host or IP spellings, at most a few hundred bytes). */
export const MEMO_ENTRIES = 4096;

/** `fn` with its answers remembered for up to `entries` distinct inputs. */
export function memoize<T>(fn: (input: string) => T, entries: number = MEMO_ENTRIES): (input: string) => T {
  const known = new Map<string, T>();
  return (input) => {
    const hit = known.get(input);
    if (hit !== undefined || known.has(input)) return hit as T;
    const result = fn(input);
    if (known.size >= entries) known.clear();
    known.set(input, result);
    return result;
  };
}
