/**
 * Bounded memory for pure string functions that run on every request (host normalisation, IP
 * canonicalisation and classification): a proxy sees the same few hosts again and again, so a
 * remembered answer saves the parsing. The function must be pure: a remembered answer is then
 * always right. When full, the memory starts over, so it never holds more than its bound.
 *
 * What a client controls cannot make it large: inputs longer than {@link MEMO_MAX_KEY_CHARS}
 * are answered without being remembered, and a remembered key is a copy of its own, never a
 * slice that would keep the whole request head it was cut from alive.
 *
 * @module
 */

/** Entries each memo keeps at most. */
export const MEMO_ENTRIES = 4096;
/**
 * Longest input remembered: a host name (253) with brackets and a port, with room to spare.
 * Longer inputs are not hosts the policy can allow anyway; they are computed every time.
 */
export const MEMO_MAX_KEY_CHARS = 300;

/** `fn` with its answers remembered for up to `entries` distinct inputs. */
export function memoize<T>(fn: (input: string) => T, entries: number = MEMO_ENTRIES): (input: string) => T {
  const known = new Map<string, T>();
  return (input) => {
    const hit = known.get(input);
    if (hit !== undefined || known.has(input)) return hit as T;
    const result = fn(input);
    if (input.length > MEMO_MAX_KEY_CHARS) return result;
    if (known.size >= entries) known.clear();
    known.set(ownCopy(input), result);
    return result;
  };
}

/**
 * `text` as a string of its own. A string cut from a larger one (a header value sliced from the
 * decoded head) may share the larger one's storage and keep all of it alive while it is a key.
 */
function ownCopy(text: string): string {
  return text.length < 2 ? text : text.split("").join("");
}
