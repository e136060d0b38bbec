/**
 * `limited_mode_allow` (docs/behaviour.md §3.5): read operations that use a write method, let
 * through in limited mode. A rule names hosts (a domain pattern, §2.2, ports included), methods
 * and path prefixes (literal or `pattern:` globs); a request matching one is allowed by the
 * limited-mode guard and recorded with its own reason. Rules never apply to CONNECT (a tunnel
 * is not a request), nor to upgrades (a two-way channel), nor to a path an origin could read
 * otherwise (`isAmbiguousPath`).
 *
 * @module
 */
import { TableListError } from "../config/error.ts";
import { isTomlTable, tomlTypeName } from "../config/toml-value.ts";
import { compilePathPrefix, isAmbiguousPath, pathPrefixFault } from "./path-prefix.ts";
import { compilePatterns, PatternError, type CompiledPatterns } from "./patterns.ts";

/** One `limited_mode_allow` entry. */
export interface LimitedModeRule {
  /** A domain pattern (`github.com`, `*.example.com`, `git.internal:8443`). */
  host: string;
  /** Methods, upper case. */
  methods: string[];
  /** Literal path prefixes, or `pattern:` globs. */
  path_prefixes: string[];
}

/** Most rules one configuration may hold. */
export const MAX_LIMITED_MODE_RULES = 1_000;

/** The reason recorded for a request a rule let through. */
export const LIMITED_MODE_EXCEPTION_REASON = "limited_mode_exception";

/** An HTTP token (RFC 9110 §5.6.2). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RULE_KEYS = ["host", "methods", "path_prefixes"];

/** A problem in `limited_mode_allow`: rule `index` (`undefined`: the list), key `path` below it. */
function ruleError(index: number | undefined, path: string, detail: string): TableListError {
  return new TableListError("limited_mode_allow", index, path, detail);
}

/** Check `value`, the parsed `network.limited_mode_allow`, and return its rules. */
export function parseLimitedModeAllow(value: unknown): LimitedModeRule[] {
  if (!Array.isArray(value)) throw ruleError(undefined, "", `expected an array of tables, got ${tomlTypeName(value)}`);
  if (value.length > MAX_LIMITED_MODE_RULES) throw ruleError(undefined, "", `at most ${MAX_LIMITED_MODE_RULES} rules are accepted, got ${value.length}`);
  return value.map((rule, i) => parseRule(rule, i));
}

function parseRule(value: unknown, i: number): LimitedModeRule {
  const fail = (path: string, detail: string) => ruleError(i, path, detail);
  if (!isTomlTable(value)) throw fail("", `expected table ({ host, methods, path_prefixes }), got ${tomlTypeName(value)}`);
  for (const key of Object.keys(value)) if (!RULE_KEYS.includes(key)) throw fail(`.${key}`, `unknown key (expected ${RULE_KEYS.join(", ")})`);
  const host = value.host;
  if (typeof host !== "string") throw fail(".host", host === undefined ? "missing (required)" : `expected string, got ${tomlTypeName(host)}`);
  try {
    compilePatterns([host]);
  } catch (e) {
    if (!(e instanceof PatternError)) throw e;
    throw fail(".host", e.message);
  }
  const methods = strings(value.methods, ".methods", fail).map((m, j) => {
    if (!TOKEN.test(m)) throw fail(`.methods[${j}]`, `${JSON.stringify(m)} is not an HTTP method`);
    if (m.toUpperCase() === "CONNECT") throw fail(`.methods[${j}]`, "CONNECT is not a request inside limited mode's reach: a tunnel needs TLS interception (network.mitm)");
    return m.toUpperCase();
  });
  const path_prefixes = strings(value.path_prefixes, ".path_prefixes", fail).map((p, j) => {
    const fault = pathPrefixFault(p);
    if (fault !== undefined) throw fail(`.path_prefixes[${j}]`, fault);
    return p;
  });
  return { host: host.trim(), methods, path_prefixes };
}

function strings(value: unknown, path: string, fail: (path: string, detail: string) => TableListError): string[] {
  if (value === undefined) throw fail(path, "missing (required)");
  if (!Array.isArray(value)) throw fail(path, `expected array of strings, got ${tomlTypeName(value)}`);
  if (value.length === 0) throw fail(path, "must not be empty");
  return value.map((item, j) => {
    if (typeof item !== "string") throw fail(`${path}[${j}]`, `expected string, got ${tomlTypeName(item)}`);
    return item;
  });
}

/** One rule, compiled. */
interface CompiledRule {
  readonly hosts: CompiledPatterns;
  readonly prefixes: readonly ((path: string) => boolean)[];
}

/** The rules of a configuration, indexed by method. */
export class LimitedModeExceptions {
  private constructor(private readonly byMethod: ReadonlyMap<string, readonly CompiledRule[]>) {}

  /** No rules. */
  static readonly NONE: LimitedModeExceptions = new LimitedModeExceptions(new Map());

  static compile(rules: readonly LimitedModeRule[]): LimitedModeExceptions {
    if (rules.length === 0) return LimitedModeExceptions.NONE;
    const byMethod = new Map<string, CompiledRule[]>();
    for (const rule of rules) {
      const compiled: CompiledRule = { hosts: compilePatterns([rule.host]), prefixes: rule.path_prefixes.map(compilePathPrefix) };
      for (const method of new Set(rule.methods)) byMethod.set(method, [...(byMethod.get(method) ?? []), compiled]);
    }
    return new LimitedModeExceptions(byMethod);
  }

  /**
   * True when a rule lets `method` on `host` (normalised) and `port` through to `target` (the
   * origin-form target; its path is the part before `?`).
   */
  allows(host: string, port: number, method: string, target: string): boolean {
    const rules = this.byMethod.get(method);
    if (!rules) return false;
    const q = target.indexOf("?");
    const path = q < 0 ? target : target.slice(0, q);
    if (!path.startsWith("/") || isAmbiguousPath(path)) return false;
    return rules.some((rule) => rule.hosts.matches(host, port) && rule.prefixes.some((matches) => matches(path)));
  }
}
