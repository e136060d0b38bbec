/**
 * Best-effort location of a key in TOML source text, so configuration errors can point at a
 * line. This is not a TOML parser: it understands `[table]` / `[[table]]` headers, `key = …`
 * lines (bare or quoted keys, dotted keys) and skips the inside of multi-line strings. Inline
 * tables (`network = { mode = "x" }`) are not searched; callers simply get `undefined`.
 *
 * @module
 */

/** A `[table]` or `[[table]]` header line, with an optional trailing comment. */
const HEADER_RE = /^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$/;

/** The delimiters that open or close a TOML multi-line string. */
const MULTILINE_DELIMITERS = ['"""', "'''"] as const;

/**
 * Returns the 1-based line on which `key` is defined inside `[table]` (`table = ""` for the
 * top level), or `undefined` when it cannot be found.
 *
 * Also recognises, for a key of `network`, the top-level dotted form `network.key = …`: call
 * `findKeyLine(text, "network", "mode")` and both `[network]\nmode = …` and `network.mode = …`
 * match. A header `[table.key]`, `[[table.key]]` or `[table.key.sub]` counts as the definition
 * of `key` (so `findKeyLine(text, "", "network")` finds `[network]`).
 */
export function findKeyLine(text: string, table: string, key: string): number | undefined {
  const wanted = [...splitDotted(table), key];
  let current: string[] = [];
  for (const { number, line, header } of tomlLines(text)) {
    if (header) {
      current = splitDotted(header[2] ?? "");
      if (startsWith(current, wanted)) return number;
      continue;
    }
    const path = keyPathOf(line);
    if (path !== undefined && startsWith([...current, ...path], wanted)) return number;
  }
  return undefined;
}

/**
 * The lines of `text` outside multi-line strings, 1-based, with the `[table]`/`[[table]]` match
 * of a header line (a header never opens a multi-line string).
 */
function* tomlLines(text: string): Generator<{ number: number; line: string; header: RegExpExecArray | null }> {
  const lines = text.split(/\r?\n/);
  let inMultiline: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (inMultiline !== undefined) {
      if (line.includes(inMultiline)) inMultiline = undefined;
      continue;
    }
    const header = HEADER_RE.exec(line);
    yield { number: i + 1, line, header };
    if (!header) inMultiline = openedMultiline(line);
  }
}

/** The dotted key path of a `key = value` line, or `undefined` when the line is not one. */
function keyPathOf(line: string): string[] | undefined {
  const trimmed = line.trimStart();
  if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith("[")) return undefined;
  const eq = findAssignment(trimmed);
  if (eq === undefined) return undefined;
  const path = splitDotted(trimmed.slice(0, eq));
  return path.length > 0 ? path : undefined;
}

/** Index of the `=` that ends the key part, skipping `=` inside quoted key segments. */
function findAssignment(s: string): number | undefined {
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "=") {
      return i;
    }
  }
  return undefined;
}

/** Splits `a . "b.c" . 'd'` into `["a", "b.c", "d"]`. */
function splitDotted(s: string): string[] {
  const parts: string[] = [];
  let buf = "";
  let quote: string | undefined;
  for (const c of s) {
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else buf += c;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === ".") {
      parts.push(buf.trim());
      buf = "";
    } else {
      buf += c;
    }
  }
  if (buf.trim() !== "" || parts.length > 0) parts.push(buf.trim());
  return parts;
}

/** True when `path` begins with every element of `prefix`. */
function startsWith(path: readonly string[], prefix: readonly string[]): boolean {
  if (path.length < prefix.length) return false;
  return prefix.every((p, i) => path[i] === p);
}

/** The delimiter of a multi-line string left open at the end of `line`, if any. */
function openedMultiline(line: string): string | undefined {
  for (const delim of MULTILINE_DELIMITERS) {
    if (line.split(delim).length % 2 === 0) return delim;
  }
  return undefined;
}

/**
 * The 1-based line of the `index`-th (0-based) `[[table]]` header for the dotted `table`
 * (`network.mitm_hooks`), or `undefined` when there are fewer (an inline array, say).
 */
export function findArrayTableLine(text: string, table: string, index: number): number | undefined {
  const wanted = splitDotted(table);
  let seen = 0;
  for (const { number, header } of tomlLines(text)) {
    if (header?.[1] !== "[[") continue;
    const path = splitDotted(header[2] ?? "");
    if (path.length === wanted.length && startsWith(path, wanted) && seen++ === index) return number;
  }
  return undefined;
}
