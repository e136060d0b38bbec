/**
 * `[[network.mitm_hooks]]` compiled for the request path (docs/behaviour.md §5.19): a lookup by
 * host, each hook's match as sets and precompiled globs, its injected headers with their secrets.
 * Compiled once per configuration (with the state snapshot), consulted by the gate.
 *
 * A request to a hooked host is matched against that host's hooks in order; the first match's
 * actions apply. A path the origin could read differently from the proxy (a `.` or `..`
 * segment, also ended by `;`, an empty segment, an encoded `.`, `/` or `\`, a backslash, a `#`)
 * matches no hook: a prefix rule must not be walked around. Header conditions are checked on
 * the headers that will be sent (end-to-end ones), not on hop-by-hop ones that are dropped.
 *
 * @module
 */
import { ConfigError } from "../config/error.ts";
import { endToEndHeaders } from "../http/headers.ts";
import { headerValues, type HttpHeader } from "../http/parser.ts";
import { compilePathPrefix, isAmbiguousPath } from "../policy/path-prefix.ts";
import type { MitmHookConfig } from "./hook-config.ts";
import { secretKey, type HookSecrets } from "./hook-secrets.ts";

/** One hook, ready to match. */
export interface CompiledHook {
  /** Position in `network.mitm_hooks`. */
  readonly index: number;
  readonly methods: ReadonlySet<string>;
  readonly pathPrefixes: readonly ((path: string) => boolean)[];
  /** Parameter → allowed values (`undefined`: any value, but present). */
  readonly query: readonly (readonly [string, ReadonlySet<string> | undefined])[];
  /** Lower-case header name → allowed values (`undefined`: any value, but present). */
  readonly headers: readonly (readonly [string, ReadonlySet<string> | undefined])[];
  /** Lower-case names removed: stripped ones and injected ones. */
  readonly remove: ReadonlySet<string>;
  /** Headers added, with their secret values. Never logged or serialised. */
  readonly inject: readonly HttpHeader[];
}

/** What a hook is matched against. */
export interface HookRequest {
  readonly method: string;
  /** Origin-form target: `/path?query`. */
  readonly path: string;
  readonly headers: readonly HttpHeader[];
}

/** Hooks by host; empty when none are configured. */
export class HookTable {
  private constructor(private readonly byHost: ReadonlyMap<string, readonly CompiledHook[]>) {}

  /** No hooks at all. */
  static readonly EMPTY: HookTable = new HookTable(new Map());

  /**
   * Compile `hooks` with their `secrets` (from `readHookSecrets`). A secret that was not read is
   * an error naming the hook: compiling never reads anything itself.
   */
  static compile(hooks: readonly MitmHookConfig[], secrets: HookSecrets): HookTable {
    if (hooks.length === 0) return HookTable.EMPTY;
    const byHost = new Map<string, CompiledHook[]>();
    for (const [index, hook] of hooks.entries()) {
      const list = byHost.get(hook.host) ?? [];
      list.push(compileHook(hook, index, secrets));
      byHost.set(hook.host, list);
    }
    return new HookTable(byHost);
  }

  /** The hooks of `host` (normalised), in configuration order; `undefined` when it has none. */
  forHost(host: string): readonly CompiledHook[] | undefined {
    return this.byHost.get(host);
  }
}

/** The first of `hooks` that `req` matches, or `undefined`. */
export function matchHook(hooks: readonly CompiledHook[], req: HookRequest): CompiledHook | undefined {
  const q = req.path.indexOf("?");
  const path = q < 0 ? req.path : req.path.slice(0, q);
  if (isAmbiguousPath(path)) return undefined;
  let params: URLSearchParams | undefined;
  let sent: HttpHeader[] | undefined;
  for (const hook of hooks) {
    if (!hook.methods.has(req.method)) continue;
    if (!hook.pathPrefixes.some((matches) => matches(path))) continue;
    if (hook.query.length > 0) {
      params ??= new URLSearchParams(q < 0 ? "" : req.path.slice(q + 1));
      if (!hook.query.every(([name, allowed]) => allowedValues(params!.getAll(name), allowed))) continue;
    }
    if (hook.headers.length > 0) {
      sent ??= endToEndHeaders(req.headers);
      if (!hook.headers.every(([name, allowed]) => allowedValues(headerValues(sent!, name).map((v) => v.trim()), allowed))) continue;
    }
    return hook;
  }
  return undefined;
}

/**
 * The end-to-end `headers` with `hook`'s actions applied: stripped and injected names removed,
 * then the injections added. Hop-by-hop headers go first, so a `Connection` header naming an
 * injected header cannot have it dropped on the way out.
 */
export function applyHook(headers: readonly HttpHeader[], hook: CompiledHook): HttpHeader[] {
  const out = endToEndHeaders(headers).filter((h) => !hook.remove.has(h.lower ?? h.name.toLowerCase()));
  out.push(...hook.inject);
  return out;
}

/** True when `hook` would send a secret (it must then go over TLS). */
export function injectsSecret(hook: CompiledHook): boolean {
  return hook.inject.length > 0;
}

/** Every value present, and each one allowed (`allowed` undefined: any). */
function allowedValues(values: readonly string[], allowed: ReadonlySet<string> | undefined): boolean {
  if (values.length === 0) return false;
  return allowed === undefined || values.every((v) => allowed.has(v));
}

function compileHook(hook: MitmHookConfig, index: number, secrets: HookSecrets): CompiledHook {
  const inject = hook.actions.inject_request_headers.map((injection): HttpHeader => {
    const secret = secrets.get(secretKey(injection));
    if (secret === undefined) throw new ConfigError(`network.mitm_hooks[${index}]: the secret of header ${injection.name} was not read`, "network.mitm_hooks");
    return Object.freeze({ name: injection.name, value: `${injection.prefix ?? ""}${secret}`, lower: injection.name });
  });
  const remove = new Set([...hook.actions.strip_request_headers, ...inject.map((h) => h.lower!)]);
  return Object.freeze({
    index,
    methods: new Set(hook.match.methods),
    pathPrefixes: hook.match.path_prefixes.map(compilePathPrefix),
    query: valueSets(hook.match.query),
    headers: valueSets(hook.match.headers),
    remove,
    inject: Object.freeze(inject),
  });
}

function valueSets(map: Readonly<Record<string, readonly string[]>> | undefined): (readonly [string, ReadonlySet<string> | undefined])[] {
  return Object.entries(map ?? {}).map(([name, values]) => [name, values.length === 0 ? undefined : new Set(values)] as const);
}
