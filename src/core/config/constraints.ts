/**
 * Managed constraints (the reference's embedded mode): limits set by the embedding app or the
 * standalone `--constraints FILE` that no config, reload or `/mode` may widen.
 *
 * - booleans (`enabled`, `allow_upstream_proxy`, `allow_local_binding`, `mitm`, the `dangerously_*`
 *   flags): a constraint of `false` keeps the setting off; `true` constrains nothing;
 * - `mode`: `limited` forbids `full`; `full` constrains nothing;
 * - `allowed_domains`: every configured pattern must fall inside the managed patterns, i.e.
 *   every host it can match must be matched by a managed pattern (see {@link checkConstraints});
 * - `denied_domains`: every managed entry must stay denied (the configured deny list must
 *   cover it);
 * - `allow_unix_sockets`: the configured paths must be a subset of the managed ones.
 *
 * Patterns are compared after the normalisation of docs/behaviour.md §2 (lower case, trailing dots
 * stripped, ports ignored, IP literals canonical, IDN as punycode). Where coverage cannot be
 * proven the entry is refused: a false refusal is an annoyance, a false acceptance a hole.
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";
import { compilePatterns, parseWildcard, PatternError, splitPatternPort, type CompiledPatterns } from "../policy/patterns.ts";
import { normalizeHost } from "../policy/host.ts";
import type { LimitedModeRule } from "../policy/limited-allow.ts";
import { PATTERN_MARKER } from "../policy/path-prefix.ts";
import { findKeyLine } from "./key-line.ts";
import { MAX_TOML_DEPTH, parseConfigText } from "./parse.ts";
import { NETWORK_KEYS, NETWORK_MODES } from "./schema.ts";
import { closestMatch } from "./suggest.ts";
import { isTomlTable, tomlTypeName } from "./toml-value.ts";
import { ConfigError, type NetworkConfig, type NetworkMode } from "./types.ts";

/** The limits; an absent field constrains nothing. */
export interface NetworkConstraints {
  /** `false`: the proxy may not be enabled. */
  enabled?: boolean;
  /** `limited`: the mode may not be `full`. */
  mode?: NetworkMode;
  /** `false`: may not be turned on. */
  allow_upstream_proxy?: boolean;
  /** `false`: may not be turned on. */
  allow_local_binding?: boolean;
  /** `false`: may not be turned on. */
  dangerously_allow_non_loopback_proxy?: boolean;
  /** `false`: may not be turned on. */
  dangerously_allow_non_loopback_admin?: boolean;
  /** `false`: TLS interception may not be turned on (it opens HTTPS reads in limited mode). */
  mitm?: boolean;
  /** Every allowed entry must fall inside one of these patterns. */
  allowed_domains?: string[];
  /** Every one of these must stay denied. */
  denied_domains?: string[];
  /** The allowed unix sockets must be a subset of these (and all of them may not be allowed). */
  allow_unix_sockets?: string[];
  /** `false`: every unix socket may not be allowed. */
  dangerously_allow_all_unix_sockets?: boolean;
  /**
   * The limited-mode exceptions a config may have: each configured rule must fall inside one of
   * these. Unset while `mode` is constrained to `limited`: the config may have none.
   */
  limited_mode_allow?: LimitedModeRule[];
}

/** A key a constraints file (or object) may hold. */
export type ConstraintKey = keyof NetworkConstraints;

/** Every constraint key, in the order of docs/behaviour.md §1 (the order violations are reported in). */
const CONSTRAINT_KEY_SET: { readonly [K in ConstraintKey]-?: true } = {
  enabled: true,
  allow_upstream_proxy: true,
  dangerously_allow_non_loopback_proxy: true,
  dangerously_allow_non_loopback_admin: true,
  mode: true,
  limited_mode_allow: true,
  allowed_domains: true,
  denied_domains: true,
  allow_local_binding: true,
  allow_unix_sockets: true,
  dangerously_allow_all_unix_sockets: true,
  mitm: true,
};

/** The keys a constraints file may hold, in the order of docs/behaviour.md §1. */
export const CONSTRAINT_KEYS: readonly ConstraintKey[] = NETWORK_KEYS.filter(
  (key): key is ConstraintKey & keyof NetworkConfig => Object.hasOwn(CONSTRAINT_KEY_SET, key),
);

/**
 * `[network]` keys of the config that are not constraints (listener addresses, SOCKS5 switches,
 * the admin token): a constraints file naming one is refused rather than silently ignored.
 */
export const NON_CONSTRAINT_KEYS: readonly string[] = NETWORK_KEYS.filter((key) => !Object.hasOwn(CONSTRAINT_KEY_SET, key));

/** The boolean constraints: `false` keeps the setting off, `true` constrains nothing. */
const BOOLEAN_CONSTRAINTS = [
  "enabled",
  "allow_upstream_proxy",
  "dangerously_allow_non_loopback_proxy",
  "dangerously_allow_non_loopback_admin",
  "allow_local_binding",
  "dangerously_allow_all_unix_sockets",
  "mitm",
] as const satisfies readonly ConstraintKey[];

/** The mode that forbids `full`. */
const NARROW_MODE: NetworkMode = "limited";

/** How many managed entries a message lists before eliding the rest. */
export const MAX_LISTED_ENTRIES = 10;

/** The table of the constraints file, as in the config. */
const NETWORK_TABLE = "network";

/** The set of hosts a normalised domain pattern can match. */
type PatternShape =
  /** `*` (or `**`): every host. */
  | { readonly kind: "all" }
  /** A single host (canonical name or IP literal). */
  | { readonly kind: "exact"; readonly name: string }
  /** `*.base`: strict subdomains of `base`. */
  | { readonly kind: "subdomain"; readonly base: string }
  /** `**.base`: `base` and its subdomains. */
  | { readonly kind: "apex"; readonly base: string }
  /**
   * Any other glob (`region*.v2.example.com`, `api.*.example.com`): every host it matches is a
   * strict subdomain of `suffix` (its labels after the last one containing `*`; empty when the
   * last label is a glob). `key` is the canonical spelling, for identity comparison.
   */
  | { readonly kind: "glob"; readonly suffix: string; readonly key: string };

/** A pattern's shape and the port it is scoped to (`undefined`: every port). */
interface ScopedShape {
  readonly shape: PatternShape;
  readonly port: number | undefined;
}

/**
 * The shape of one pattern and its port, normalised as docs/behaviour.md §2 says. Validation
 * is `compilePatterns`' (so a pattern is accepted here exactly when the policy accepts it).
 *
 * @throws PatternError naming the pattern when it is invalid.
 */
function patternShape(raw: string): ScopedShape {
  const pattern = raw.trim();
  if (pattern.length === 0) throw new PatternError(pattern, "invalid domain pattern: empty pattern");
  compilePatterns([pattern]);
  const { host: hostPart, port } = splitPatternPort(pattern);
  if (!hostPart.includes("*")) {
    const host = normalizeHost(hostPart);
    if (!host) throw new PatternError(pattern, `invalid domain pattern "${pattern}": not a valid host name or IP address`);
    return { shape: { kind: "exact", name: host.name }, port };
  }
  const w = parseWildcard(pattern, hostPart);
  return { shape: w.kind === "glob" ? { kind: "glob", suffix: w.suffix, key: w.labels.join(".") } : w, port };
}

/** The shape of `raw`, or the {@link PatternError} explaining why it has none. */
function tryPatternShape(raw: string): ScopedShape | PatternError {
  try {
    return patternShape(raw);
  } catch (e) {
    if (e instanceof PatternError) return e;
    throw e;
  }
}

/** A pattern list indexed to answer "does it cover this pattern?" quickly. */
interface CoverIndex {
  /** The list holds `*`. */
  readonly all: boolean;
  /** The valid patterns compiled as the policy compiles them (answers for single hosts). */
  readonly matcher: CompiledPatterns;
  /** Bases of `*.base` and `**.base` entries: their strict subdomains are covered. */
  readonly subdomainBases: ReadonlySet<string>;
  /** Canonical spellings of the general globs, covering an identical glob. */
  readonly globKeys: ReadonlySet<string>;
}

/** A list's cover indexes: its every-port entries, and those of each port named. */
interface ScopedCoverIndex {
  readonly everyPort: CoverIndex;
  readonly byPort: ReadonlyMap<number, CoverIndex>;
}

/**
 * Index `patterns` by port; invalid ones cover nothing. An entry for every port covers the same
 * shape on any one port; a port-scoped entry covers only that port.
 */
function buildScopedCoverIndex(patterns: readonly string[]): ScopedCoverIndex {
  const groups = new Map<number | undefined, string[]>([[undefined, []]]);
  for (const raw of patterns) {
    const scoped = tryPatternShape(raw);
    if (scoped instanceof PatternError) continue;
    const group = groups.get(scoped.port) ?? [];
    group.push(raw.trim());
    groups.set(scoped.port, group);
  }
  const everyPort = buildCoverIndex(groups.get(undefined)!);
  const byPort = new Map<number, CoverIndex>();
  for (const [port, list] of groups) if (port !== undefined) byPort.set(port, buildCoverIndex(list));
  return { everyPort, byPort };
}

/** True when every host and port `scoped` can match is matched by the indexed list. */
function coversScoped(index: ScopedCoverIndex, scoped: ScopedShape): boolean {
  if (covers(index.everyPort, scoped.shape)) return true;
  if (scoped.port === undefined) return false;
  const onPort = index.byPort.get(scoped.port);
  return onPort !== undefined && covers(onPort, scoped.shape);
}

/** Index `patterns` (all scoped alike: the caller grouped them by port); invalid ones cover nothing. */
function buildCoverIndex(patterns: readonly string[]): CoverIndex {
  let all = false;
  const valid: string[] = [];
  const subdomainBases = new Set<string>();
  const globKeys = new Set<string>();
  for (const raw of patterns) {
    const scoped = tryPatternShape(raw);
    if (scoped instanceof PatternError) continue;
    const shape = scoped.shape;
    valid.push(raw.trim());
    switch (shape.kind) {
      case "all":
        all = true;
        break;
      case "subdomain":
      case "apex":
        subdomainBases.add(shape.base);
        break;
      case "glob":
        globKeys.add(shape.key);
        break;
      case "exact":
        break;
    }
  }
  // Compiled without their ports: one index answers for the one port (or every port) it stands for.
  return { all, matcher: compilePatterns(valid.map((p) => splitPatternPort(p).host)), subdomainBases, globKeys };
}

/** True when every strict subdomain of `name` is covered by one `*.d` or `**.d` of the index. */
function strictSubdomainsCovered(index: CoverIndex, name: string): boolean {
  let suffix = name;
  for (;;) {
    if (index.subdomainBases.has(suffix)) return true;
    const dot = suffix.indexOf(".");
    if (dot < 0) return false;
    suffix = suffix.slice(dot + 1);
  }
}

/** True when every host `shape` can match is matched by the indexed list. */
function covers(index: CoverIndex, shape: PatternShape): boolean {
  if (index.all) return true;
  switch (shape.kind) {
    case "all":
      return false;
    case "exact":
      return index.matcher.matches(shape.name, 0);
    case "subdomain":
      return strictSubdomainsCovered(index, shape.base);
    case "apex":
      return index.matcher.matches(shape.base, 0) && strictSubdomainsCovered(index, shape.base);
    case "glob":
      return index.globKeys.has(shape.key) || (shape.suffix.length > 0 && strictSubdomainsCovered(index, shape.suffix));
  }
}

/** `"a", "b"` (at most {@link MAX_LISTED_ENTRIES}, then `… and N more`), or `none`. */
function listEntries(entries: readonly string[]): string {
  const shown = entries.map((e) => JSON.stringify(e.trim()));
  if (shown.length === 0) return "none";
  if (shown.length <= MAX_LISTED_ENTRIES) return shown.join(", ");
  return `${shown.slice(0, MAX_LISTED_ENTRIES).join(", ")}, … and ${shown.length - MAX_LISTED_ENTRIES} more`;
}

/** The distinct entries of a list (trimmed), in order. */
function distinctTrimmed(list: readonly string[]): string[] {
  return [...new Set(list.map((e) => e.trim()))];
}

/** Violations of the managed allowlist by the configured `allowed_domains`. */
function checkAllowed(allowed: readonly string[], managed: readonly string[]): string[] {
  const index = buildScopedCoverIndex(managed);
  const out: string[] = [];
  for (const entry of distinctTrimmed(allowed)) {
    const shape = tryPatternShape(entry);
    if (shape instanceof PatternError) {
      out.push(`network.allowed_domains: ${shape.message}; it cannot be checked against the managed allowlist (allowed: ${listEntries(managed)})`);
    } else if (!coversScoped(index, shape)) {
      out.push(`network.allowed_domains: ${JSON.stringify(entry)} is outside the managed allowlist (allowed: ${listEntries(managed)})`);
    }
  }
  return out;
}

/** Violations of the managed deny list: every managed entry must stay denied. */
function checkDenied(denied: readonly string[], managed: readonly string[]): string[] {
  const index = buildScopedCoverIndex(denied);
  const out: string[] = [];
  for (const entry of distinctTrimmed(managed)) {
    const shape = tryPatternShape(entry);
    // An invalid managed entry is matched only by a configured `*` (validateConstraints reports it).
    const kept = shape instanceof PatternError ? index.everyPort.all : coversScoped(index, shape);
    if (!kept) out.push(`network.denied_domains: missing managed entry ${JSON.stringify(entry)}`);
  }
  return out;
}

/**
 * Violations of the managed limited-mode exceptions: every configured rule must fall inside a
 * managed one, i.e. the same host pattern (as written, case aside), methods among the managed
 * rule's, and each path prefix one of the managed rule's or, both being literal, longer than
 * one of them.
 */
function checkLimitedModeAllow(configured: readonly LimitedModeRule[], managed: readonly LimitedModeRule[]): string[] {
  const covered = (rule: LimitedModeRule, m: LimitedModeRule): boolean =>
    rule.host.toLowerCase() === m.host.toLowerCase() &&
    rule.methods.every((method) => m.methods.includes(method)) &&
    rule.path_prefixes.every((p) => m.path_prefixes.some((mp) => p === mp || (!isGlobPrefix(p) && !isGlobPrefix(mp) && p.startsWith(mp))));
  return configured
    .map((rule, i) => ({ rule, i }))
    .filter(({ rule }) => !managed.some((m) => covered(rule, m)))
    .map(({ rule, i }) => `network.limited_mode_allow[${i}]: ${JSON.stringify(describeRule(rule))} is outside the managed limited-mode exceptions (allowed: ${listEntries(managed.map(describeRule))})`);
}

/** `host METHODS prefix, prefix`: a rule in one line. */
function describeRule(rule: LimitedModeRule): string {
  return `${rule.host} ${rule.methods.join("|")} ${rule.path_prefixes.join(", ")}`;
}

function isGlobPrefix(prefix: string): boolean {
  return prefix.startsWith(PATTERN_MARKER);
}

/** Violations of the managed unix socket list: configured paths must be among the managed ones. */
function checkUnixSockets(sockets: readonly string[], managed: readonly string[]): string[] {
  const allowed = new Set(managed);
  return [...new Set(sockets)]
    .filter((path) => !allowed.has(path))
    .map((path) => `network.allow_unix_sockets: ${JSON.stringify(path)} is not in the managed list (allowed: ${listEntries(managed)})`);
}

/**
 * Violations of `c` by `network`, each naming the field, the offending value and what is
 * allowed; empty when `network` stays within the constraints. Every violation is reported, in
 * the key order of docs/behaviour.md §1.
 *
 * A configured `allowed_domains` entry falls inside the managed allowlist when every host it
 * can match is matched by a managed pattern: managed `*` covers everything; an exact entry only
 * itself; `*.d` covers anything strictly under `d` (`x.d`, `*.d`, `*.x.d`, `**.x.d`,
 * `region*.d`), not `d` or `**.d`; `**.d` covers `d` too, and `**.d` itself. A configured `*`
 * needs a managed `*`; a glob whose last label has a `*` (nothing fixed to compare) needs an
 * identical managed glob. A managed `denied_domains` entry is kept when the configured deny
 * list covers it by the same rule (listing it, or something wider such as `**.d` for `d`).
 */
export function checkConstraints(network: NetworkConfig, c: NetworkConstraints): string[] {
  const out: string[] = [];
  // A managed read-only mode with no managed exceptions: the config may add none.
  if (c.mode === NARROW_MODE && c.limited_mode_allow === undefined && (network.limited_mode_allow ?? []).length > 0) {
    out.push(`network.limited_mode_allow: the managed mode is "limited" and the constraints allow no exception to it (${network.limited_mode_allow.length} configured)`);
  }
  for (const key of CONSTRAINT_KEYS) {
    if (c[key] === undefined) continue;
    switch (key) {
      case "mode":
        if (c.mode === NARROW_MODE && network.mode !== NARROW_MODE) {
          out.push(`network.mode: ${JSON.stringify(network.mode)} is wider than the managed mode ${JSON.stringify(c.mode)}`);
        }
        break;
      case "allowed_domains":
        out.push(...checkAllowed(network.allowed_domains, c.allowed_domains ?? []));
        break;
      case "limited_mode_allow":
        out.push(...checkLimitedModeAllow(network.limited_mode_allow ?? [], c.limited_mode_allow ?? []));
        break;
      case "denied_domains":
        out.push(...checkDenied(network.denied_domains, c.denied_domains ?? []));
        break;
      case "allow_unix_sockets":
        out.push(...checkUnixSockets(network.allow_unix_sockets, c.allow_unix_sockets ?? []));
        if (network.dangerously_allow_all_unix_sockets) {
          out.push(`network.dangerously_allow_all_unix_sockets: true would allow unix sockets outside the managed list (allowed: ${listEntries(c.allow_unix_sockets ?? [])})`);
        }
        break;
      default:
        if (c[key] === false && network[key] !== false) {
          out.push(`network.${key}: ${JSON.stringify(network[key])} is not allowed by the managed constraints (must stay false)`);
        }
    }
  }
  return out;
}

/**
 * Problems with a constraints object itself (as an embedding app may build it without
 * {@link parseConstraintsText}): values of the wrong type, a mode other than
 * `full`/`limited`, invalid domain patterns, relative unix socket paths. Empty when sound.
 */
export function validateConstraints(c: NetworkConstraints): string[] {
  const out: string[] = [];
  const record = c as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (value === undefined) continue;
    if (!Object.hasOwn(CONSTRAINT_KEY_SET, key)) {
      out.push(`network.${key}: unknown constraint key (constraint keys: ${CONSTRAINT_KEYS.join(", ")})`);
      continue;
    }
    const k = key as ConstraintKey;
    if ((BOOLEAN_CONSTRAINTS as readonly string[]).includes(k)) {
      if (typeof value !== "boolean") out.push(`network.${k}: expected boolean, got ${typeof value}`);
    } else if (k === "mode") {
      if (!(NETWORK_MODES as readonly unknown[]).includes(value)) {
        const allowed = NETWORK_MODES.map((m) => `"${m}"`).join(" or ");
        out.push(`network.mode: ${JSON.stringify(value)} is not a valid mode (expected ${allowed})`);
      }
    } else if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      out.push(`network.${k}: expected array of strings`);
    } else if (k === "allow_unix_sockets") {
      value.forEach((path: string, i) => {
        if (!path.startsWith("/")) out.push(`network.allow_unix_sockets[${i}]: ${JSON.stringify(path)} is not an absolute path`);
      });
    } else {
      value.forEach((pattern: string, i) => {
        const shape = tryPatternShape(pattern);
        if (shape instanceof PatternError) out.push(`network.${k}[${i}]: ${shape.message}`);
      });
    }
  }
  return out;
}

/** `PATH:LINE: ` when the line is known, else `PATH: `. */
function locate(path: string, line: number | undefined): string {
  return line === undefined ? `${path}: ` : `${path}:${line}: `;
}

/** Lets `parseConfigText` raise its error for text it rejects (same parser, same options). */
function failLikeConfig(text: string, path: string, fallback: string): never {
  parseConfigText(text, path);
  throw new ConfigError(`failed to parse ${path}: ${fallback}`);
}

/**
 * Parses `text`, a constraints file at `path`: a TOML `[network]` table with a subset of the
 * config's keys and the same types (docs/behaviour.md §1). Only keys present in the file are set.
 * Messages follow the config's format (`PATH:LINE: network.KEY: detail`).
 *
 * @throws ConfigError on a TOML syntax error, a top-level key other than `network`, an unknown
 *   key (`unknown constraint key`), a config key that is not a constraint (`proxy_url`,
 *   `admin_url`, `socks_url`, `enable_socks5`, `enable_socks5_udp`, `admin_token`), a wrong
 *   type, a bad mode, a relative unix socket path or an invalid domain pattern.
 */
export function parseConstraintsText(text: string, path: string): NetworkConstraints {
  let root: Record<string, unknown>;
  try {
    root = parse(text, { integersAsBigInt: true, maxDepth: MAX_TOML_DEPTH });
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    failLikeConfig(text, path, e.message);
  }

  for (const key of Object.keys(root)) {
    if (key === NETWORK_TABLE) continue;
    const line = findKeyLine(text, "", key);
    throw new ConfigError(
      `${locate(path, line)}${key}: unknown top-level key in a constraints file (only the [${NETWORK_TABLE}] table is allowed)`,
      key,
      line,
    );
  }
  if (!Object.hasOwn(root, NETWORK_TABLE)) return {};
  const table = root[NETWORK_TABLE];
  if (!isTomlTable(table)) failLikeConfig(text, path, `${NETWORK_TABLE}: expected table, got ${tomlTypeName(table)}`);

  for (const key of Object.keys(table)) {
    if (Object.hasOwn(CONSTRAINT_KEY_SET, key)) continue;
    const line = findKeyLine(text, NETWORK_TABLE, key);
    let detail: string;
    if (NON_CONSTRAINT_KEYS.includes(key)) {
      detail =
        `not a constraint: listener addresses, the SOCKS5 switches, the idle and load limits, the admin token, the TLS interception hooks and the denied unix sockets are set by the config, ` +
        `not limited by constraints (constraint keys: ${CONSTRAINT_KEYS.join(", ")})`;
    } else {
      const suggestion = closestMatch(key, CONSTRAINT_KEYS);
      const hint = suggestion === undefined ? "" : `did you mean "${suggestion}"? `;
      detail = `unknown constraint key (${hint}constraint keys: ${CONSTRAINT_KEYS.join(", ")})`;
    }
    throw new ConfigError(`${locate(path, line)}${NETWORK_TABLE}.${key}: ${detail}`, `${NETWORK_TABLE}.${key}`, line);
  }

  // Every key left is a config key with the same type: let the config parser check the types.
  const { network } = parseConfigText(text, path);
  const out: NetworkConstraints = {};
  for (const key of CONSTRAINT_KEYS) {
    if (!Object.hasOwn(table, key)) continue;
    const value = network[key];
    Object.assign(out, { [key]: Array.isArray(value) ? [...value] : value });
  }

  for (const key of ["allowed_domains", "denied_domains"] as const) {
    (out[key] ?? []).forEach((pattern, i) => {
      const shape = tryPatternShape(pattern);
      if (!(shape instanceof PatternError)) return;
      const line = findKeyLine(text, NETWORK_TABLE, key);
      throw new ConfigError(`${locate(path, line)}${NETWORK_TABLE}.${key}[${i}]: ${shape.message}`, `${NETWORK_TABLE}.${key}`, line, { cause: shape });
    });
  }
  return out;
}
