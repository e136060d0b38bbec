/**
 * Domain patterns (docs/behaviour.md §2), compiled once per configuration into lookup structures so
 * that a match costs a few hash lookups per label of the host, however long the list:
 *
 * - `*` alone: every host;
 * - `example.com`: that host only (an exact set; IP literals in any spelling, canonicalised);
 * - `*.example.com`: any subdomain at any depth, not the apex (a set of suffixes, probed with
 *   each proper label suffix of the host);
 * - `**.example.com`: the apex and every subdomain (a set probed with the host and its suffixes);
 * - anything else with a `*` (`region*.v2.example.com`, `api.*.example.com`): a label-wise
 *   glob filed under its literal label suffix (`v2.example.com`, `example.com`), so only the
 *   globs sharing a suffix with the host are ever tried.
 *
 * Wildcards apply to names only: an IP literal host is matched by `*` and by exact entries.
 *
 * Any pattern may end in `:port` (`github.com:443`, `*.example.com:22`, `[::1]:8080`): it then
 * matches that port only, and an entry without a port matches every port. Each port named gets
 * an index of its own, so a lookup probes the every-port index and the request port's, never a
 * list.
 *
 * @module
 */
import { isDottedQuad, stripZone } from "../net/ip.ts";
import { MAX_HOST_LENGTH, MAX_LABEL_LENGTH, normalizeHost, stripTrailingDots } from "./host.ts";

/** A domain pattern that cannot be compiled. `pattern` is the offending pattern as written. */
export class PatternError extends TypeError {
  /** The offending pattern, as written (trimmed). */
  readonly pattern: string;

  constructor(pattern: string, message: string) {
    super(message);
    this.name = "PatternError";
    this.pattern = pattern;
  }
}

/** A compiled pattern list. */
export interface CompiledPatterns {
  /**
   * True when `host` (already normalised `name`) on `port` matches any pattern: one for every
   * port, or one scoped to `port`. Must NOT scan the pattern list: uses sets/maps built at
   * compile time (exact set, suffix sets walked over the host's label suffixes, and mid-label
   * globs indexed by their literal suffix so only candidates sharing that suffix are tested).
   */
  matches(host: string, port: number): boolean;
  /**
   * True when the exact normalised literal is in the list as an exact (non-wildcard) pattern
   * for every port or for `port`.
   */
  hasExact(host: string, port: number): boolean;
  /** The patterns as written (trimmed), in order, for display. */
  readonly source: readonly string[];
}

/** Glob syntax we do not support; a bracketed IPv6 literal is the one exception for `[`/`]`. */
const UNSUPPORTED_GLOB = /[[\]{}?]/;

/** Characters allowed in a label that contains a `*` (ASCII only: a glob cannot be punycoded). */
const GLOB_LABEL = /^[a-z0-9_*-]+$/;

/**
 * A last label that the WHATWG host parser reads as a number (`1`, `0x1f`): such a name is an
 * IPv4 literal, and wildcards never apply to IP literals.
 */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;

/** A label of an IPv4-with-wildcards pattern (`192.168.*.*`), refused like a numeric last label. */
const IPV4_GLOB_LABEL = /^[0-9*]+$/;


/**
 * A TLD appended to a run of literal labels so the host parser treats it as a name (never as an
 * IPv4 number) while it converts IDN and validates; removed again afterwards.
 */
const PROBE_TLD = "invalid";

/** True when a normalised host name is an IP literal (IPv6 has a colon; IPv4 is a dotted quad). */
function isIpLiteral(host: string): boolean {
  return host.includes(":") || isDottedQuad(host);
}


/** Mutable index under construction. */
interface Index {
  matchAll: boolean;
  readonly exact: Set<string>;
  /** `*.X` → X: proper subdomains of X. */
  readonly subdomainOf: Set<string>;
  /** `**.X` → X: X and its subdomains. */
  readonly apexOrSubdomainOf: Set<string>;
  /** Other globs, keyed by their literal label suffix (`""` when the last label is a glob). */
  readonly globs: Map<string, Glob[]>;
}

/**
 * A general glob: optional leading whole-label wildcard, then labels matched one to one (each
 * literal, `*` for exactly one label, or containing `*` for a run of characters within it).
 */
interface Glob {
  /** -1: no leading wildcard (label counts must be equal); 0: `**`; 1: `*`. */
  readonly minLeading: number;
  readonly labels: readonly string[];
}

/**
 * Normalise a run of literal labels of a wildcard pattern (IDN → punycode, validation) without
 * letting the host parser read it as an IPv4 number.
 */
function normalizeLiteralRun(pattern: string, run: readonly string[]): string[] {
  const text = run.join(".");
  const probe = normalizeHost(`${text}.${PROBE_TLD}`);
  if (!probe || probe.kind !== "name" || !probe.name.endsWith(`.${PROBE_TLD}`)) {
    throw new PatternError(pattern, `invalid domain pattern "${pattern}": "${text}" is not a valid host name`);
  }
  return probe.name.slice(0, -(PROBE_TLD.length + 1)).split(".");
}

/** A wildcard pattern taken apart by {@link parseWildcard}. */
export type WildcardPattern =
  /** `*` or `**`: every host. */
  | { readonly kind: "all" }
  /** `*.base`: strict subdomains of `base`. */
  | { readonly kind: "subdomain"; readonly base: string }
  /** `**.base`: `base` and its subdomains. */
  | { readonly kind: "apex"; readonly base: string }
  /**
   * Any other glob (`region*.v2.example.com`, `api.*.example.com`). `labels` are all of its
   * labels, normalised; `suffix` is those after the last one containing `*` (empty when the
   * last label is a glob); `leading` is 1 for a leading `*` (one or more whole labels), 0 for a
   * leading `**` (zero or more), -1 for neither.
   */
  | { readonly kind: "glob"; readonly labels: readonly string[]; readonly suffix: string; readonly leading: number };

/**
 * Validate and normalise a pattern containing a `*` (already trimmed, port split off by
 * {@link splitPatternPort}): literal
 * labels are canonicalised (IDN → punycode, lower case), wildcard labels checked.
 *
 * @throws PatternError naming the pattern when it is invalid.
 */
export function parseWildcard(pattern: string, host: string): WildcardPattern {
  const lower = stripTrailingDots(host.toLowerCase());
  if (lower === "*" || lower === "**") return { kind: "all" };
  const raw = lower.split(".");
  if (raw.some((label) => label.length === 0)) {
    throw new PatternError(pattern, `invalid domain pattern "${pattern}": empty label`);
  }
  // Normalise literal labels in runs, keep glob labels verbatim (after validation).
  const labels: string[] = [];
  let run: string[] = [];
  const flush = (): void => {
    if (run.length > 0) labels.push(...normalizeLiteralRun(pattern, run));
    run = [];
  };
  raw.forEach((label, i) => {
    if (!label.includes("*")) {
      run.push(label);
      return;
    }
    flush();
    if (!GLOB_LABEL.test(label)) {
      throw new PatternError(
        pattern,
        `invalid domain pattern "${pattern}": label "${label}" with a wildcard may contain only ASCII letters, digits, "-", "_" and "*"`,
      );
    }
    if (label.includes("**") && !(label === "**" && i === 0)) {
      throw new PatternError(pattern, `invalid domain pattern "${pattern}": "**" is only allowed as the whole first label`);
    }
    if (label.length > MAX_LABEL_LENGTH) {
      throw new PatternError(pattern, `invalid domain pattern "${pattern}": label "${label}" is longer than ${MAX_LABEL_LENGTH}`);
    }
    labels.push(label);
  });
  flush();
  if (labels.join(".").length > MAX_HOST_LENGTH) {
    throw new PatternError(pattern, `invalid domain pattern "${pattern}": longer than ${MAX_HOST_LENGTH} characters`);
  }
  const last = labels[labels.length - 1] ?? "";
  const looksLikeIpv4 = labels.every((label) => IPV4_GLOB_LABEL.test(label)) && /[0-9]/.test(labels.join(""));
  if (NUMERIC_LABEL.test(last) || looksLikeIpv4) {
    throw new PatternError(
      pattern,
      `invalid domain pattern "${pattern}": wildcards apply to domain names, not IP addresses; list the address exactly`,
    );
  }

  // Literal suffix: the trailing labels without a `*`.
  let firstLiteral = labels.length;
  while (firstLiteral > 0 && !(labels[firstLiteral - 1] ?? "").includes("*")) firstLiteral--;
  const suffix = labels.slice(firstLiteral).join(".");
  const head = labels[0];
  if (firstLiteral === 1 && suffix.length > 0 && head === "*") return { kind: "subdomain", base: suffix };
  if (firstLiteral === 1 && suffix.length > 0 && head === "**") return { kind: "apex", base: suffix };
  return { kind: "glob", labels, suffix, leading: head === "*" ? 1 : head === "**" ? 0 : -1 };
}

/** Compile a pattern containing a `*` (already trimmed, port stripped) into `index`. */
function compileWildcard(pattern: string, host: string, index: Index): void {
  const w = parseWildcard(pattern, host);
  switch (w.kind) {
    case "all":
      index.matchAll = true;
      return;
    case "subdomain":
      index.subdomainOf.add(w.base);
      return;
    case "apex":
      index.apexOrSubdomainOf.add(w.base);
      return;
    case "glob": {
      // A leading `*` stands for one or more whole labels, a leading `**` for zero or more;
      // the remaining labels are matched one to one.
      const glob: Glob = { minLeading: w.leading, labels: w.leading < 0 ? w.labels : w.labels.slice(1) };
      const bucket = index.globs.get(w.suffix);
      if (bucket) bucket.push(glob);
      else index.globs.set(w.suffix, [glob]);
    }
  }
}


/**
 * Match one label against a label pattern where `*` is any run of characters (no dots reach
 * here). Iterative with single-star backtracking: O(label × pattern) at worst, no regular
 * expression and so no catastrophic backtracking on hostile patterns.
 */
function labelMatches(pattern: string, label: string): boolean {
  let p = 0;
  let l = 0;
  let star = -1;
  let mark = 0;
  while (l < label.length) {
    if (p < pattern.length && pattern[p] !== "*" && pattern[p] === label[l]) {
      p++;
      l++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = l;
    } else if (star >= 0) {
      p = star + 1;
      l = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/** True when the labels of a host match a general glob. */
function globMatches(glob: Glob, hostLabels: readonly string[]): boolean {
  const fixed = glob.labels.length;
  const extra = hostLabels.length - fixed;
  if (glob.minLeading < 0 ? extra !== 0 : extra < glob.minLeading) return false;
  for (let i = 0; i < fixed; i++) {
    const want = glob.labels[i] ?? "";
    const have = hostLabels[extra + i] ?? "";
    if (want === "*") continue;
    if (want.includes("*") ? !labelMatches(want, have) : want !== have) return false;
  }
  return true;
}

/** Largest port a pattern may name. */
const MAX_PORT = 65_535;

/** A pattern taken apart: its host part as written, and the port it is scoped to (none: every port). */
export interface ScopedPattern {
  readonly host: string;
  readonly port?: number;
}

/**
 * Split the `:port` off a trimmed pattern: `host:port`, `*.d:port`, `[v6]:port`, or no port.
 * An unbracketed IPv6 literal has no port, unless its last group could be one (`2001:db8::1:443`
 * is also `2001:db8::1` on port 443): that is an error asking for brackets either way.
 *
 * @throws PatternError for a port that is not a decimal number in 1–65535, or that ambiguity.
 */
export function splitPatternPort(pattern: string): ScopedPattern {
  let host = pattern;
  let portText: string | undefined;
  if (pattern.startsWith("[")) {
    const close = pattern.indexOf("]");
    if (close < 0) return { host: pattern }; // reported as glob syntax by the host check
    host = pattern.slice(0, close + 1);
    const rest = pattern.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return { host: pattern };
      portText = rest.slice(1);
    }
  } else {
    const first = pattern.indexOf(":");
    if (first < 0) return { host: pattern };
    const last = pattern.lastIndexOf(":");
    if (first === last) {
      host = pattern.slice(0, first);
      portText = pattern.slice(first + 1);
    } else {
      // Several colons: an IPv6 literal, which takes no port unless bracketed.
      const head = pattern.slice(0, last);
      const tail = pattern.slice(last + 1);
      if (/^[0-9]{1,5}$/.test(tail) && !head.endsWith(":") && normalizeHost(`[${head}]`)?.kind === "ipv6") {
        const alone = normalizeHost(`[${pattern}]`)?.kind === "ipv6" ? ` (or "[${pattern}]" for the address alone on every port)` : "";
        throw new PatternError(pattern, `invalid domain pattern "${pattern}": an IPv6 address with a port must be bracketed, as "[${head}]:${tail}"${alone}`);
      }
      return { host: pattern };
    }
  }
  if (portText === undefined) return { host };
  // digits only, no leading zero, no space on either side of the colon
  const port = /^[1-9][0-9]{0,4}$/.test(portText) && !/\s$/.test(host) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= MAX_PORT)) {
    const what = /\s$/.test(host) ? `space before ":${portText}"` : `bad port ${JSON.stringify(portText)}`;
    throw new PatternError(pattern, `invalid domain pattern "${pattern}": ${what} (a number from 1 to ${MAX_PORT}, no leading zero, right after the ":")`);
  }
  if (host === "") throw new PatternError(pattern, `invalid domain pattern "${pattern}": no host before ":${portText}"`);
  return { host, port };
}

/** Compile the host part of one trimmed, non-empty pattern (`pattern` as written, for messages) into `index`. */
function compileHost(pattern: string, hostPart: string, index: Index): void {
  if (UNSUPPORTED_GLOB.test(hostPart)) {
    // A bracketed IPv6 literal (`[::1]`) is the only legitimate use of brackets.
    const ip = hostPart.startsWith("[") ? normalizeHost(hostPart) : null;
    if (!ip || ip.kind !== "ipv6" || /[{}?]/.test(hostPart)) {
      const bad = /[[\]{}?]/.exec(hostPart)?.[0] ?? "";
      throw new PatternError(pattern, `invalid domain pattern "${pattern}": glob syntax "${bad}" is not supported`);
    }
    index.exact.add(ip.name);
    return;
  }
  if (hostPart.includes("*")) {
    if (hostPart.includes(":")) throw new PatternError(pattern, `invalid domain pattern "${pattern}": misplaced ":"`);
    compileWildcard(pattern, hostPart, index);
    return;
  }
  const host = normalizeHost(hostPart);
  if (!host) throw new PatternError(pattern, `invalid domain pattern "${pattern}": not a valid host name or IP address`);
  index.exact.add(host.name);
}

function emptyIndex(): Index {
  return { matchAll: false, exact: new Set(), subdomainOf: new Set(), apexOrSubdomainOf: new Set(), globs: new Map() };
}

/** One index's lookups. */
interface IndexMatcher {
  matches(host: string): boolean;
  hasExact(host: string): boolean;
}

/** Compile a pattern list. Throws {@link PatternError} naming the first bad pattern. */
export function compilePatterns(patterns: readonly string[]): CompiledPatterns {
  const everyPort = emptyIndex();
  const byPort = new Map<number, Index>();
  const source: string[] = [];
  patterns.forEach((raw, i) => {
    const pattern = raw.trim();
    if (pattern.length === 0) throw new PatternError(pattern, `invalid domain pattern at index ${i}: empty pattern`);
    const scoped = splitPatternPort(pattern);
    let index = everyPort;
    if (scoped.port !== undefined) {
      index = byPort.get(scoped.port) ?? emptyIndex();
      byPort.set(scoped.port, index);
    }
    compileHost(pattern, scoped.host, index);
    source.push(pattern);
  });
  const any = matcherOf(everyPort);
  const ports = new Map([...byPort].map(([port, index]) => [port, matcherOf(index)]));
  if (ports.size === 0) {
    return { source: Object.freeze(source), matches: (host) => any.matches(host), hasExact: (host) => any.hasExact(host) };
  }
  return {
    source: Object.freeze(source),
    matches: (host, port) => any.matches(host) || (ports.get(port)?.matches(host) ?? false),
    hasExact: (host, port) => any.hasExact(host) || (ports.get(port)?.hasExact(host) ?? false),
  };
}

/** The lookups of one index (every port, or one port). */
function matcherOf(index: Index): IndexMatcher {
  const { exact, subdomainOf, apexOrSubdomainOf, globs } = index;
  const matchAll = index.matchAll;
  const hasGlobs = globs.size > 0;
  const hasSuffixes = subdomainOf.size > 0 || apexOrSubdomainOf.size > 0 || hasGlobs;

  /** Try the globs filed under `suffix`; `labels` is the host split once, on first need. */
  const testGlobs = (suffix: string, host: string, labels: { value?: string[] }): boolean => {
    const bucket = globs.get(suffix);
    if (!bucket) return false;
    labels.value ??= host.split(".");
    for (const glob of bucket) if (globMatches(glob, labels.value)) return true;
    return false;
  };

  return {
    hasExact(host: string): boolean {
      return exact.has(host.toLowerCase());
    },
    matches(host: string): boolean {
      if (matchAll) return true;
      const h = host.toLowerCase();
      if (exact.has(h)) return true;
      if (isIpLiteral(h)) {
        // An entry without a zone covers the address on every interface.
        const bare = stripZone(h);
        return bare !== h && exact.has(bare);
      }
      if (!hasSuffixes) return false;
      if (apexOrSubdomainOf.has(h)) return true;
      // Walk the proper label suffixes: `a.b.c` → `b.c`, `c`.
      const labels: { value?: string[] } = {};
      let dot = h.indexOf(".");
      while (dot >= 0) {
        const suffix = h.slice(dot + 1);
        if (subdomainOf.has(suffix) || apexOrSubdomainOf.has(suffix)) return true;
        if (hasGlobs && testGlobs(suffix, h, labels)) return true;
        dot = h.indexOf(".", dot + 1);
      }
      return hasGlobs && testGlobs("", h, labels);
    },
  };
}
