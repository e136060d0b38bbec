/**
 * Parsing and validating the text of `config.toml` into a {@link NetworkConfig}
 * (docs/behaviour.md §1).
 *
 * Message format, used for every {@link ConfigError} and warning about a key:
 *
 *     PATH:LINE: network.KEY: detail      (when the key's line can be found)
 *     PATH: network.KEY: detail           (otherwise)
 *
 * `ConfigError.key` is then the dotted key (`network.mode`) and `ConfigError.line` the 1-based
 * line. A TOML syntax error is `failed to parse PATH: <smol-toml message>`; smol-toml's message
 * quotes the offending line with its number and a caret under the column, and
 * `ConfigError.line` holds the line.
 *
 * @module
 */

import { parse, TomlError } from "smol-toml";
import { parseMitmHooks } from "../mitm/hook-config.ts";
import { parseLimitedModeAllow } from "../policy/limited-allow.ts";
import { MAX_LIMIT } from "../limits.ts";
import { compilePatterns, PatternError } from "../policy/patterns.ts";
import { bearerTokenFault } from "./bearer-token.ts";
import { TableListError } from "./error.ts";
import { findArrayTableLine, findKeyLine } from "./key-line.ts";
import { parseListenUrl } from "./listen-url.ts";
import {
  LISTEN_URL_KEYS,
  NETWORK_KEY_KINDS,
  NETWORK_KEYS,
  NETWORK_MODES,
} from "./schema.ts";
import { closestMatch } from "./suggest.ts";
import { isTomlTable, tomlTypeName } from "./toml-value.ts";
import {
  ConfigError,
  defaultNetworkConfig,
  MAX_TIMEOUT_SECS,
  type LoadedConfig,
  type NetworkConfig,
  type NetworkMode,
} from "./types.ts";

/** Deepest nesting of inline arrays and tables accepted in the config file. */
export const MAX_TOML_DEPTH = 64;

/** The top-level table this module reads. */
const NETWORK_TABLE = "network";
/** The Codex key naming the permission profile in force. */
const DEFAULT_PERMISSIONS_KEY = "default_permissions";
/** The Codex table of permission profiles (`[permissions.NAME.network]`). */
const PERMISSIONS_KEY = "permissions";
/** `[network]` list keys a profile replaces with its `domains` and `unix_sockets` maps. */
const PROFILE_LIST_KEYS = ["allowed_domains", "denied_domains", "allow_unix_sockets", "denied_unix_sockets"] as const;
/** The keys of a profile's network table. */
const PROFILE_NETWORK_KEYS: readonly string[] = [...NETWORK_KEYS.filter((k) => !(PROFILE_LIST_KEYS as readonly string[]).includes(k)), "domains", "unix_sockets"];

/** Where messages point: the file's path and its text (to find key lines), and the table read. */
interface Source {
  readonly path: string;
  readonly text: string;
  /** The dotted table the settings come from: `network`, or `permissions.NAME.network`. */
  readonly table: string;
}

/** How to read a config file. */
export interface ParseOptions {
  /**
   * The Codex permission profile to read (`[permissions.NAME.network]`), instead of the one
   * `default_permissions` names (`--profile NAME`).
   */
  readonly profile?: string;
}

/**
 * Parses `text`, the contents of the config file at `path`, and returns the `[network]`
 * settings over the defaults plus warnings (unknown keys). Other top-level tables are ignored.
 * Listener URLs are checked for syntax here; loopback clamping is `planListeners`' job.
 *
 * @throws ConfigError on a TOML syntax error, a wrong type, a bad `mode`, a relative unix
 *   socket path, an empty `admin_token` or one that is not a bearer token (RFC 6750 §2.1), or an
 *   unparsable listener URL.
 */
export function parseConfigText(text: string, path: string, options: ParseOptions = {}): LoadedConfig {
  const root = parseToml({ path, text, table: NETWORK_TABLE });
  const network = defaultNetworkConfig();
  const warnings: string[] = [];
  const selected = selectNetworkTable(root, path, text, options.profile);
  if (selected.warning !== undefined) warnings.push(selected.warning);
  if (selected.table === undefined) return { network, warnings };
  const src: Source = { path, text, table: selected.path };
  const known: readonly string[] = selected.profile ? PROFILE_NETWORK_KEYS : NETWORK_KEYS;
  const table = selected.profile ? profileToNetworkTable(src, selected.table) : selected.table;

  for (const key of Object.keys(selected.table)) {
    if (known.includes(key)) continue;
    const line = findKeyLine(text, src.table, key);
    const suggestion = closestMatch(key, known);
    const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
    warnings.push(`${prefix(src, line)}${src.table}.${key}: unknown key, ignored${hint}`);
  }

  for (const key of NETWORK_KEYS) {
    if (Object.hasOwn(table, key)) applyKey(src, network, key, table[key]);
  }
  for (const key of LISTEN_URL_KEYS) {
    if (Object.hasOwn(table, key)) checkListenUrl(src, key, network[key]);
  }
  if (network.mitm_hooks.length > 0 && !network.mitm) {
    throw keyError(src, "mitm_hooks", `hooks act on intercepted requests: they need ${src.table}.mitm = true`);
  }
  return { network, warnings };
}

/** The table the settings come from, as {@link selectNetworkTable} found it. */
interface SelectedTable {
  /** Absent: no table, the defaults apply. */
  readonly table?: Record<string, unknown>;
  /** Dotted path of the table, for messages. */
  readonly path: string;
  /** It is a Codex permission profile's (the `domains`/`unix_sockets` shape). */
  readonly profile: boolean;
  readonly warning?: string;
}

/**
 * `[network]`, or the Codex permission profile `[permissions.NAME.network]` that `--profile` or
 * `default_permissions` names. Both shapes in one file is an error naming both; a profile that
 * does not exist, one listing the profiles that do.
 */
function selectNetworkTable(root: Record<string, unknown>, path: string, text: string, profile: string | undefined): SelectedTable {
  const src: Source = { path, text, table: "" };
  const fail = (key: string, detail: string, line = findKeyLine(text, "", key)): ConfigError => new ConfigError(`${prefix(src, line)}${key}: ${detail}`, key, line);
  let chosen = profile;
  let chosenBy = "--profile";
  if (chosen === undefined && Object.hasOwn(root, DEFAULT_PERMISSIONS_KEY)) {
    const value = root[DEFAULT_PERMISSIONS_KEY];
    if (typeof value !== "string") throw fail(DEFAULT_PERMISSIONS_KEY, `expected string, got ${tomlTypeName(value)}`);
    chosen = value;
    chosenBy = DEFAULT_PERMISSIONS_KEY;
  }
  const permissions = Object.hasOwn(root, PERMISSIONS_KEY) ? root[PERMISSIONS_KEY] : {};
  if (!isTomlTable(permissions)) throw fail(PERMISSIONS_KEY, `expected table, got ${tomlTypeName(permissions)}`);
  const withNetwork = Object.keys(permissions).filter((name) => isTomlTable(permissions[name]) && Object.hasOwn(permissions[name] as object, NETWORK_TABLE));
  if (chosen === undefined) {
    // Profiles with network settings that nothing selects: say which table is read.
    const unselected =
      withNetwork.length === 0
        ? undefined
        : `${prefix(src, findKeyLine(text, "", PERMISSIONS_KEY))}${PERMISSIONS_KEY}: ${withNetwork.map((n) => JSON.stringify(n)).join(", ")} ${withNetwork.length === 1 ? "has" : "have"} network settings, but neither default_permissions nor --profile selects a profile: ${Object.hasOwn(root, NETWORK_TABLE) ? "[network] is read" : "the network defaults apply (the proxy is disabled)"}`;
    if (!Object.hasOwn(root, NETWORK_TABLE)) return { path: NETWORK_TABLE, profile: false, warning: unselected };
    const table = root[NETWORK_TABLE];
    if (!isTomlTable(table)) throw fail(NETWORK_TABLE, `expected table, got ${tomlTypeName(table)}`);
    return { table, path: NETWORK_TABLE, profile: false, warning: unselected };
  }
  const profilePath = `${PERMISSIONS_KEY}.${quoteKey(chosen)}.${NETWORK_TABLE}`;
  if (!Object.hasOwn(permissions, chosen)) {
    const names = Object.keys(permissions).map((n) => JSON.stringify(n));
    const line = chosenBy === DEFAULT_PERMISSIONS_KEY ? findKeyLine(text, "", DEFAULT_PERMISSIONS_KEY) : undefined;
    throw fail(
      chosenBy === DEFAULT_PERMISSIONS_KEY ? DEFAULT_PERMISSIONS_KEY : PERMISSIONS_KEY,
      `profile ${JSON.stringify(chosen)} (chosen by ${chosenBy}) does not exist; ${names.length > 0 ? `the file defines ${names.join(", ")}` : "the file defines no [permissions.NAME] table"}`,
      line,
    );
  }
  if (Object.hasOwn(root, NETWORK_TABLE)) {
    throw fail(
      NETWORK_TABLE,
      `both [network] and the Codex permission profile [${profilePath}] (chosen by ${chosenBy}) are present: keep one of the two shapes`,
    );
  }
  const entry = permissions[chosen];
  const entryPath = `${PERMISSIONS_KEY}.${quoteKey(chosen)}`;
  if (!isTomlTable(entry)) throw fail(entryPath, `expected table, got ${tomlTypeName(entry)}`, findKeyLine(text, PERMISSIONS_KEY, chosen));
  if (!Object.hasOwn(entry, NETWORK_TABLE)) {
    const line = findKeyLine(text, PERMISSIONS_KEY, chosen);
    return { path: profilePath, profile: true, warning: `${prefix(src, line)}${entryPath}: the profile has no network table; the network defaults apply (the proxy is disabled)` };
  }
  const table = entry[NETWORK_TABLE];
  if (!isTomlTable(table)) throw fail(profilePath, `expected table, got ${tomlTypeName(table)}`, findKeyLine(text, entryPath, NETWORK_TABLE));
  return { table, path: profilePath, profile: true };
}

/**
 * A {@link ConfigError} about entry `name` of the map `key` (`domains."a.example"`), on the
 * entry's own line when it has one (a `[….domains]` table), else the map's.
 */
function entryError(src: Source, key: string, name: string, detail: string): ConfigError {
  const line = findKeyLine(src.text, `${src.table}.${key}`, name) ?? findKeyLine(src.text, src.table, key);
  return new ConfigError(`${prefix(src, line)}${src.table}.${key}.${JSON.stringify(name)}: ${detail}`, `${src.table}.${key}`, line);
}

/** A TOML key as written in a dotted path: bare when it can be, else quoted. */
function quoteKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/**
 * A profile's network table in the `[network]` shape: `domains` (`"pattern" = "allow" | "deny"
 * | "none"`) becomes `allowed_domains` and `denied_domains`, `unix_sockets` (`"/path" = "allow"
 * | "deny"`) becomes `allow_unix_sockets` and `denied_unix_sockets`. A profile naming the
 * list keys themselves is an error (one shape per table).
 */
function profileToNetworkTable(src: Source, profile: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(profile)) {
    if ((PROFILE_LIST_KEYS as readonly string[]).includes(key)) {
      throw keyError(src, key, `a permission profile names domains in its domains map ("pattern" = "allow" | "deny" | "none") and unix sockets in its unix_sockets map ("/path" = "allow" | "deny")`);
    }
    if (key !== "domains" && key !== "unix_sockets") out[key] = value;
  }
  if (Object.hasOwn(profile, "domains")) {
    const domains = profile.domains;
    if (!isTomlTable(domains)) throw keyError(src, "domains", `expected table of "pattern" = "allow" | "deny" | "none", got ${tomlTypeName(domains)}`);
    const allowed: string[] = [];
    const denied: string[] = [];
    for (const [pattern, verdict] of Object.entries(domains)) {
      if (verdict !== "allow" && verdict !== "deny" && verdict !== "none") {
        throw entryError(src, "domains", pattern, `expected "allow", "deny" or "none", got ${typeof verdict === "string" ? JSON.stringify(verdict) : tomlTypeName(verdict)}`);
      }
      try {
        compilePatterns([pattern]);
      } catch (e) {
        if (!(e instanceof PatternError)) throw e;
        throw entryError(src, "domains", pattern, e.message);
      }
      if (verdict === "allow") allowed.push(pattern);
      else if (verdict === "deny") denied.push(pattern);
    }
    out.allowed_domains = allowed;
    out.denied_domains = denied;
  }
  if (Object.hasOwn(profile, "unix_sockets")) {
    const sockets = profile.unix_sockets;
    if (!isTomlTable(sockets)) throw keyError(src, "unix_sockets", `expected table of "/path" = "allow" | "deny", got ${tomlTypeName(sockets)}`);
    const allow: string[] = [];
    const deny: string[] = [];
    for (const [socket, verdict] of Object.entries(sockets)) {
      if (verdict !== "allow" && verdict !== "deny") {
        throw entryError(src, "unix_sockets", socket, `expected "allow" or "deny", got ${typeof verdict === "string" ? JSON.stringify(verdict) : tomlTypeName(verdict)}`);
      }
      if (!socket.startsWith("/")) throw entryError(src, "unix_sockets", socket, `${JSON.stringify(socket)} is not an absolute path`);
      (verdict === "allow" ? allow : deny).push(socket);
    }
    out.allow_unix_sockets = allow;
    out.denied_unix_sockets = deny;
  }
  return out;
}

/** Runs smol-toml, turning its syntax errors into {@link ConfigError}. */
function parseToml(src: Source): Record<string, unknown> {
  try {
    return parse(src.text, { integersAsBigInt: true, maxDepth: MAX_TOML_DEPTH });
  } catch (e) {
    if (e instanceof TomlError) {
      const message = redactSecretLines(e.message);
      const firstLine = message.split("\n", 1)[0]!.trim();
      const excerpt = message.slice(message.indexOf("\n") + 1).trimEnd();
      throw new ConfigError(
        `failed to parse ${src.path}: line ${e.line}, column ${e.column}: ${firstLine}${excerpt && excerpt !== firstLine ? `\n${excerpt}` : ""}`,
        undefined,
        e.line,
      );
    }
    const message = e instanceof Error ? e.message : String(e);
    throw new ConfigError(`failed to parse ${src.path}: ${message}`);
  }
}

/** A line of TOML that assigns the admin token (its value must never be echoed). */
const SECRET_ASSIGNMENT = /^(.*\badmin_token["']?\s*=).*$/gm;

/**
 * smol-toml quotes the offending line in its errors; a line that sets `admin_token` is shown
 * with its value replaced, so a broken file never prints the secret (stderr, /reload answers).
 */
export function redactSecretLines(message: string): string {
  return message.replace(SECRET_ASSIGNMENT, "$1 <redacted>");
}

/** Validates one known key and stores it into `network`. */
function applyKey(src: Source, network: NetworkConfig, key: keyof NetworkConfig, value: unknown): void {
  const got = tomlTypeName(value);
  switch (NETWORK_KEY_KINDS[key]) {
    case "boolean":
      if (typeof value !== "boolean") throw keyError(src, key, `expected boolean, got ${got}`);
      Object.assign(network, { [key]: value });
      return;
    case "string":
      if (typeof value !== "string") throw keyError(src, key, `expected string, got ${got}`);
      if (key === "admin_token") {
        const fault = value.trim() === "" ? "must not be empty" : bearerTokenFault(value);
        if (fault !== undefined) throw keyError(src, key, fault);
      }
      Object.assign(network, { [key]: value });
      return;
    case "mode":
      if (typeof value !== "string") throw keyError(src, key, `expected string, got ${got}`);
      if (!isNetworkMode(value)) {
        const allowed = NETWORK_MODES.map((m) => `"${m}"`).join(" or ");
        throw keyError(src, key, `${JSON.stringify(value)} is not a valid mode (expected ${allowed})`);
      }
      network.mode = value;
      return;
    case "count": {
      const n = typeof value === "bigint" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n)) throw keyError(src, key, `expected a whole number, got ${got}`);
      if (n < 0 || n > MAX_LIMIT) throw keyError(src, key, `${n} is out of range (0 to ${MAX_LIMIT}; 0 means no limit)`);
      Object.assign(network, { [key]: n });
      return;
    }
    case "seconds": {
      const n = typeof value === "bigint" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isInteger(n)) throw keyError(src, key, `expected a whole number of seconds, got ${got}`);
      if (n < 0 || n > MAX_TIMEOUT_SECS) throw keyError(src, key, `${n} is out of range (0 to ${MAX_TIMEOUT_SECS} seconds; 0 means no limit)`);
      Object.assign(network, { [key]: n });
      return;
    }
    case "hooks":
      network.mitm_hooks = tableList(src, "mitm_hooks", value, parseMitmHooks);
      return;
    case "rules":
      network.limited_mode_allow = tableList(src, "limited_mode_allow", value, parseLimitedModeAllow);
      return;
    case "string[]": {
      if (!Array.isArray(value)) throw keyError(src, key, `expected array of strings, got ${got}`);
      const list: string[] = [];
      for (const [i, item] of value.entries()) {
        if (typeof item !== "string") {
          const detail = `expected array of strings, got array containing ${tomlTypeName(item)} at index ${i}`;
          throw keyError(src, key, detail);
        }
        if ((key === "allow_unix_sockets" || key === "denied_unix_sockets") && !item.startsWith("/")) {
          throw keyError(src, key, `${JSON.stringify(item)} is not an absolute path`, i);
        }
        if (key === "allowed_domains" || key === "denied_domains") checkPattern(src, key, item, i);
        list.push(item);
      }
      Object.assign(network, { [key]: list });
      return;
    }
  }
}

/**
 * Checks an array of tables (`mitm_hooks`, `limited_mode_allow`) with `parse`, re-raising its
 * {@link TableListError} with the file, the line of the entry's `[[…]]` header, and the table.
 */
function tableList<T>(src: Source, key: string, value: unknown, parse: (value: unknown) => T): T {
  try {
    return parse(value);
  } catch (e) {
    if (!(e instanceof TableListError)) throw e;
    const line = (e.index === undefined ? undefined : findArrayTableLine(src.text, `${src.table}.${key}`, e.index)) ?? findKeyLine(src.text, src.table, key);
    return keyErrorAt(src, line, `${src.table}.${e.message}`, `${src.table}.${key}`, { cause: e });
  }
}

/** Compiles one domain pattern, re-raising a {@link PatternError} with the file location. */
function checkPattern(src: Source, key: string, pattern: string, index: number): void {
  try {
    compilePatterns([pattern]);
  } catch (e) {
    if (!(e instanceof PatternError)) throw e;
    throw keyError(src, key, e.message, index);
  }
}

/** True when `value` is one of {@link NETWORK_MODES}. */
function isNetworkMode(value: string): value is NetworkMode {
  return (NETWORK_MODES as readonly string[]).includes(value);
}

/** Checks a listener URL parses, re-raising its error with the file location. */
function checkListenUrl(src: Source, key: (typeof LISTEN_URL_KEYS)[number], value: string): void {
  try {
    parseListenUrl(value, `${src.table}.${key}`);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const line = findKeyLine(src.text, src.table, key);
    throw new ConfigError(`${prefix(src, line)}${e.message}`, `${src.table}.${key}`, line, { cause: e });
  }
}

/** A {@link ConfigError} about `network.KEY` (or `network.KEY[INDEX]`) in the file's format. */
function keyError(src: Source, key: string, detail: string, index?: number): ConfigError {
  const line = findKeyLine(src.text, src.table, key);
  const where = index === undefined ? "" : `[${index}]`;
  return new ConfigError(`${prefix(src, line)}${src.table}.${key}${where}: ${detail}`, `${src.table}.${key}`, line);
}

function keyErrorAt(src: Source, line: number | undefined, text: string, key: string, options: { cause: unknown }): never {
  throw new ConfigError(`${prefix(src, line)}${text}`, key, line, options);
}

/** `PATH:LINE: ` when the line is known, else `PATH: `. */
function prefix(src: Source, line: number | undefined): string {
  return line === undefined ? `${src.path}: ` : `${src.path}:${line}: `;
}
