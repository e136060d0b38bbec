/**
 * Path prefixes for rules about requests (`mitm_hooks`, `limited_mode_allow`): a literal prefix,
 * or a glob after `pattern:` whose `*` stands for one or more characters within one segment; and
 * the paths no such rule may match, because an origin could read them otherwise than the proxy.
 *
 * @module
 */

/** The marker of a glob path prefix. */
export const PATTERN_MARKER = "pattern:";

/**
 * What origins may resolve otherwise than the proxy reads it: a dot segment (also ended by `;`,
 * as servlet containers read `..;`), an empty segment (servers that merge slashes), an encoded
 * `.`, `/` or `\`, a backslash, and a `#` (not allowed in a request target, RFC 9112 §3.2.1;
 * URL parsers cut the path there).
 */
const AMBIGUOUS_PATH = /%2e|%2f|%5c|\\|#|\/\/|(^|\/)\.\.?(\/|;|$)/i;

/** True when a rule must not match `path` (its part before `?`): see {@link AMBIGUOUS_PATH}. */
export function isAmbiguousPath(path: string): boolean {
  return AMBIGUOUS_PATH.test(path);
}

/**
 * A literal prefix, or a `pattern:` glob matched against the path's start, `*` one or more
 * characters within a segment. The glob is compiled once, here.
 */
export function compilePathPrefix(prefix: string): (path: string) => boolean {
  if (!prefix.startsWith(PATTERN_MARKER)) return (path) => path.startsWith(prefix);
  const glob = prefix.slice(PATTERN_MARKER.length);
  const source = glob
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]+");
  const re = new RegExp(`^${source}`);
  return (path) => re.test(path);
}

/**
 * Why `prefix` cannot be a path prefix, or `undefined` when it can: it must start with `/`
 * (after `pattern:`), and hold only what a request path can (no space, control, `?` or `#`).
 */
export function pathPrefixFault(prefix: string): string | undefined {
  const path = prefix.startsWith(PATTERN_MARKER) ? prefix.slice(PATTERN_MARKER.length) : prefix;
  if (!path.startsWith("/")) return `${JSON.stringify(prefix)} must start with "/" (after "${PATTERN_MARKER}" for a glob)`;
  if (!/^[\x21-\x7e]*$/.test(path) || /[?#]/.test(path)) return `${JSON.stringify(prefix)} holds a character a request path cannot (space, control, "?" or "#")`;
  return undefined;
}
