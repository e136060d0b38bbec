/**
 * The `[[network.mitm_hooks]]` entries (docs/behaviour.md §5.19): their shape, and the checks
 * that turn a parsed TOML value into {@link MitmHookConfig}s or say which hook and key is wrong.
 *
 * ```toml
 * [[network.mitm_hooks]]
 * host = "api.example.com"
 * match = { methods = ["GET", "POST"], path_prefixes = ["/v1/", "pattern:/repos/*\/issues"] }
 * actions.strip_request_headers = ["cookie"]
 * actions.inject_request_headers = [{ name = "authorization", secret_env_var = "API_TOKEN", prefix = "Bearer " }]
 * ```
 *
 * The configuration holds where a secret comes from (a variable's name, a file's path), never
 * the secret: that is read separately (`hook-secrets.ts`), so `/config` can show the hooks.
 *
 * @module
 */
import { HOP_BY_HOP } from "../http/headers.ts";
import { pathPrefixFault } from "../policy/path-prefix.ts";
import { normalizeHost, splitHostPort } from "../policy/host.ts";
import { TableListError } from "../config/error.ts";
import { isTomlTable, tomlTypeName } from "../config/toml-value.ts";

/** What a request must look like for a hook to apply. */
export interface MitmHookMatch {
  /** Methods, upper case. */
  methods: string[];
  /** Literal path prefixes, or `pattern:` globs whose `*` never crosses `/`. */
  path_prefixes: string[];
  /** Query parameters that must be present, each with its allowed values (`[]`: any value). */
  query?: Record<string, string[]>;
  /** Request headers (lower-case names) that must be present, with allowed values (`[]`: any). */
  headers?: Record<string, string[]>;
}

/** A header the proxy adds, its value read from a secret. */
export interface MitmHeaderInjection {
  /** Header name, lower case. */
  name: string;
  /** Environment variable holding the secret (exactly one of this and `secret_file`). */
  secret_env_var?: string;
  /** Absolute path of a file holding the secret. */
  secret_file?: string;
  /** Text put before the secret (`"Bearer "`). */
  prefix?: string;
}

/** What a matching hook does to the request before it is sent. */
export interface MitmHookActions {
  /** Request headers removed (lower-case names). */
  strip_request_headers: string[];
  /** Headers set from secrets; any the client sent under the same name are removed first. */
  inject_request_headers: MitmHeaderInjection[];
}

/** One `[[network.mitm_hooks]]` entry. */
export interface MitmHookConfig {
  /** Exact host (normalised: lower case, no trailing dot); no wildcard, no port. */
  host: string;
  match: MitmHookMatch;
  actions: MitmHookActions;
}

/** Most hooks one configuration may hold. */
export const MAX_MITM_HOOKS = 1_000;

/**
 * Headers a hook may neither strip nor inject: the hop-by-hop and framing ones the proxy makes
 * itself (RFC 9110 §7.6.1, RFC 9112 §6), `host` (routing) and `expect` (the proxy relays it).
 */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([...HOP_BY_HOP, "host", "expect"]);

/**
 * Methods a hook may not name: TRACE makes an origin echo the request, injected secrets
 * included, back to the client (RFC 9110 §9.3.8); CONNECT inside a tunnel is refused anyway.
 */
const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(["TRACE", "CONNECT"]);

/** Variables that hold the proxy's own secrets: never a hook's to send anywhere. */
const PROXY_SECRET_VARIABLES: ReadonlySet<string> = new Set(["CODEX_NETWORK_PROXY_ADMIN_TOKEN"]);

/** An HTTP token (RFC 9110 §5.6.2): method and header names. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** An environment variable name as shells accept it. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Characters a header value part may hold: visible ASCII, space and tab (RFC 9110 §5.5). */
const FIELD_TEXT = /^[\t\x20-\x7e]*$/;


/** Keys of each hook table, for unknown-key errors. */
const HOOK_KEYS = ["host", "match", "actions"];
const MATCH_KEYS = ["methods", "path_prefixes", "query", "headers", "body"];
const ACTION_KEYS = ["strip_request_headers", "inject_request_headers"];
const INJECT_KEYS = ["name", "secret_env_var", "secret_file", "prefix"];

/** A problem in `mitm_hooks`: hook `index` (`undefined`: the list), key `path` below it. */
function hookError(index: number | undefined, path: string, detail: string): TableListError {
  return new TableListError("mitm_hooks", index, path, detail);
}

/** Check `value`, the parsed `network.mitm_hooks`, and return the hooks it holds. */
export function parseMitmHooks(value: unknown): MitmHookConfig[] {
  if (!Array.isArray(value)) throw hookError(undefined, "", `expected an array of tables ([[network.mitm_hooks]]), got ${tomlTypeName(value)}`);
  if (value.length > MAX_MITM_HOOKS) throw hookError(undefined, "", `at most ${MAX_MITM_HOOKS} hooks are accepted, got ${value.length}`);
  return value.map((hook, i) => parseHook(hook, i));
}

function parseHook(value: unknown, i: number): MitmHookConfig {
  const fail = (path: string, detail: string): TableListError => hookError(i, path, detail);
  const table = expectTable(value, "", fail);
  checkKeys(table, HOOK_KEYS, "", fail);
  const host = parseHost(table.host, fail);
  const match = parseMatch(expectTable(required(table, "match", "", fail), ".match", fail), fail);
  const actions = Object.hasOwn(table, "actions") ? parseActions(expectTable(table.actions, ".actions", fail), fail) : { strip_request_headers: [], inject_request_headers: [] };
  return { host, match, actions };
}

type Fail = (path: string, detail: string) => TableListError;

function parseHost(value: unknown, fail: Fail): string {
  if (value === undefined) throw fail(".host", "missing (the exact host the hook applies to)");
  if (typeof value !== "string") throw fail(".host", `expected string, got ${tomlTypeName(value)}`);
  if (value.includes("*")) throw fail(".host", `${JSON.stringify(value)}: a hook names one exact host, wildcards are not accepted`);
  const parts = splitHostPort(value.trim());
  if (parts?.port !== undefined) throw fail(".host", `${JSON.stringify(value)}: a hook names a host without a port`);
  const normalized = normalizeHost(value);
  if (!normalized) throw fail(".host", `${JSON.stringify(value)} is not a host name or IP address`);
  return normalized.name;
}

function parseMatch(table: Record<string, unknown>, fail: Fail): MitmHookMatch {
  checkKeys(table, MATCH_KEYS, ".match", fail);
  if (Object.hasOwn(table, "body")) throw fail(".match.body", "is reserved for a later version and not accepted yet");
  const methods = nonEmptyStrings(required(table, "methods", ".match", fail), ".match.methods", fail).map((m, j) => {
    if (!TOKEN.test(m)) throw fail(`.match.methods[${j}]`, `${JSON.stringify(m)} is not an HTTP method`);
    if (FORBIDDEN_METHODS.has(m.toUpperCase())) throw fail(`.match.methods[${j}]`, `${m.toUpperCase()} is not accepted (TRACE echoes injected secrets back to the client; CONNECT is never forwarded inside a tunnel)`);
    return m.toUpperCase();
  });
  const path_prefixes = nonEmptyStrings(required(table, "path_prefixes", ".match", fail), ".match.path_prefixes", fail).map((p, j) => {
    const fault = pathPrefixFault(p);
    if (fault !== undefined) throw fail(`.match.path_prefixes[${j}]`, fault);
    return p;
  });
  const match: MitmHookMatch = { methods, path_prefixes };
  if (Object.hasOwn(table, "query")) match.query = valueMap(table.query, ".match.query", false, fail);
  if (Object.hasOwn(table, "headers")) match.headers = valueMap(table.headers, ".match.headers", true, fail);
  return match;
}

function parseActions(table: Record<string, unknown>, fail: Fail): MitmHookActions {
  checkKeys(table, ACTION_KEYS, ".actions", fail);
  const strip = Object.hasOwn(table, "strip_request_headers") ? strings(table.strip_request_headers, ".actions.strip_request_headers", fail) : [];
  const strip_request_headers = strip.map((name, j) => headerName(name, `.actions.strip_request_headers[${j}]`, fail));
  const injectValue = Object.hasOwn(table, "inject_request_headers") ? table.inject_request_headers : [];
  if (!Array.isArray(injectValue)) throw fail(".actions.inject_request_headers", `expected an array of tables, got ${tomlTypeName(injectValue)}`);
  const inject_request_headers = injectValue.map((entry, j) => parseInjection(entry, `.actions.inject_request_headers[${j}]`, fail));
  for (const [j, injection] of inject_request_headers.entries()) {
    if (inject_request_headers.findIndex((other) => other.name === injection.name) !== j) throw fail(`.actions.inject_request_headers[${j}].name`, `${JSON.stringify(injection.name)} is injected twice`);
  }
  return { strip_request_headers, inject_request_headers };
}

function parseInjection(value: unknown, path: string, fail: Fail): MitmHeaderInjection {
  const table = expectTable(value, path, fail);
  checkKeys(table, INJECT_KEYS, path, fail);
  const name = headerName(expectString(required(table, "name", path, fail), `${path}.name`, fail), `${path}.name`, fail);
  const out: MitmHeaderInjection = { name };
  const env = table.secret_env_var;
  const file = table.secret_file;
  if ((env === undefined) === (file === undefined)) throw fail(path, "needs exactly one of secret_env_var and secret_file");
  if (env !== undefined) {
    const n = expectString(env, `${path}.secret_env_var`, fail);
    if (!ENV_NAME.test(n)) throw fail(`${path}.secret_env_var`, `${JSON.stringify(n)} is not an environment variable name`);
    if (PROXY_SECRET_VARIABLES.has(n)) throw fail(`${path}.secret_env_var`, `${n} holds the proxy's own admin token and is never sent to an origin`);
    out.secret_env_var = n;
  } else {
    const p = expectString(file, `${path}.secret_file`, fail);
    if (!p.startsWith("/")) throw fail(`${path}.secret_file`, `${JSON.stringify(p)} is not an absolute path`);
    out.secret_file = p;
  }
  if (Object.hasOwn(table, "prefix")) {
    const prefix = expectString(table.prefix, `${path}.prefix`, fail);
    if (!FIELD_TEXT.test(prefix)) throw fail(`${path}.prefix`, "holds a control character");
    out.prefix = prefix;
  }
  return out;
}

function headerName(name: string, path: string, fail: Fail): string {
  if (!TOKEN.test(name)) throw fail(path, `${JSON.stringify(name)} is not a header name`);
  const lower = name.toLowerCase();
  if (RESERVED_HEADERS.has(lower)) throw fail(path, `${JSON.stringify(name)} frames or routes the request and is set by the proxy itself`);
  return lower;
}

/** A table of name → allowed values (`[]`: present with any value). */
function valueMap(value: unknown, path: string, headers: boolean, fail: Fail): Record<string, string[]> {
  const table = expectTable(value, path, fail);
  const out: Record<string, string[]> = {};
  for (const [key, allowed] of Object.entries(table)) {
    if (headers && !TOKEN.test(key)) throw fail(`${path}.${key}`, `${JSON.stringify(key)} is not a header name`);
    if (!headers && key === "") throw fail(path, "a query parameter name must not be empty");
    out[headers ? key.toLowerCase() : key] = strings(allowed, `${path}.${key}`, fail);
  }
  return out;
}

function required(table: Record<string, unknown>, key: string, path: string, fail: Fail): unknown {
  if (!Object.hasOwn(table, key)) throw fail(`${path}.${key}`, "missing (required)");
  return table[key];
}

function expectTable(value: unknown, path: string, fail: Fail): Record<string, unknown> {
  if (!isTomlTable(value)) throw fail(path, `expected table, got ${tomlTypeName(value)}`);
  return value;
}

function expectString(value: unknown, path: string, fail: Fail): string {
  if (typeof value !== "string") throw fail(path, `expected string, got ${tomlTypeName(value)}`);
  return value;
}

function strings(value: unknown, path: string, fail: Fail): string[] {
  if (!Array.isArray(value)) throw fail(path, `expected array of strings, got ${tomlTypeName(value)}`);
  return value.map((item, j) => expectString(item, `${path}[${j}]`, fail));
}

function nonEmptyStrings(value: unknown, path: string, fail: Fail): string[] {
  const list = strings(value, path, fail);
  if (list.length === 0) throw fail(path, "must not be empty");
  return list;
}

function checkKeys(table: Record<string, unknown>, known: readonly string[], path: string, fail: Fail): void {
  for (const key of Object.keys(table)) {
    if (!known.includes(key)) throw fail(`${path}.${key}`, `unknown key (expected ${known.filter((k) => k !== "body").join(", ")})`);
  }
}
