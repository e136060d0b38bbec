/**
 * Keeping web pages away from the admin API. A browser will send requests to a loopback port on
 * behalf of any page it shows, so without this guard any web site could drive the admin API:
 *
 * - **Cross-site request forgery.** A page on another site can `POST /mode` with a plain HTML
 *   form or a `fetch` that needs no CORS preflight (`Content-Type: text/plain` or
 *   `application/x-www-form-urlencoded`). It cannot read the answer, but the mode changes, and
 *   `limited` can be widened to `full`.
 * - **DNS rebinding.** A page on `evil.example` makes its own name resolve to 127.0.0.1: its
 *   requests are then same-origin for the browser, so it can read `/config` and `/blocked` and
 *   change the mode. They still carry `Host: evil.example`.
 *
 * The guard refuses, with `403 {"status":"error","error":…}` naming the bad value, logged at
 * `warn`, everything a browser could have sent for a page. The checks run in this order, before
 * the bearer token is looked at and for every path, `/health` included (a rebinding page must
 * not even learn that the admin API is there):
 *
 * 1. `Host` must be present and name this admin API: `localhost`, a loopback literal
 *    (127.0.0.0/8 in any spelling {@link normalizeHost} canonicalises, `[::1]`,
 *    `[::ffff:127.0.0.1]`), or one of the extra `allowedHosts`; any port. A page cannot make a
 *    browser send such a Host for a name it controls, so DNS rebinding is refused here.
 * 2. `Origin`, when present, must be this admin API's own origin: the request's scheme
 *    (`http://` unless it arrived over TLS) followed by its (already accepted) `Host`.
 *    `Origin: null` (sandboxed frames, `file:` pages, some redirects) is refused too.
 * 3. `Sec-Fetch-Site`, when present, must be `same-origin` or `none` (typed in the address
 *    bar). `cross-site` and `same-site` are refused: same-site includes every other port on
 *    localhost, e.g. a development server's page on `localhost:3000`.
 *
 * Command-line clients are unaffected: `curl http://127.0.0.1:8080/…` sends `Host:
 * 127.0.0.1:8080` and neither `Origin` nor `Sec-Fetch-Site`, whatever its `Content-Type`. No CORS
 * header is ever sent, so a preflight (`OPTIONS`) never succeeds and no page can read an answer.
 *
 * Limits: a browser too old to send `Origin` on a cross-site `POST` and `Sec-Fetch-Site` at all
 * (every current browser sends both) is stopped only by the `Host` check and the admin token.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { TARGET, type Logger } from "../log.ts";
import { isUnspecifiedIp } from "../net/ip.ts";
import { isLoopbackIp } from "../policy/address-class.ts";
import { normalizeHost } from "../policy/host.ts";
import { MAX_QUOTED_VALUE_CHARS } from "./mode-request.ts";

/** Options of the browser guard, also accepted by `createAdminApp` and `NetworkProxy.adminApp()`. */
export interface BrowserGuardOptions {
  /**
   * Host names and IP literals accepted in the `Host` header (with any port) besides
   * `localhost` and the loopback literals, which are always accepted: the names under which the
   * embedding app serves the admin API, e.g. `["proxy.internal"]`. Names must match exactly (no
   * wildcards, no subdomains); IP literals match in any spelling. `0.0.0.0` or `::` accepts every
   * IP literal (never a DNS name other than `localhost`: a literal cannot be rebound). Only name
   * hosts here that no web page can control. Default: none, i.e. loopback only.
   *
   * @throws TypeError from `createAdminApp` for an entry that is not a host name or IP literal.
   */
  readonly allowedHosts?: readonly string[];
}

/** Status of every refusal: the request is understood, and will not be served. */
export const BROWSER_REFUSAL_STATUS = 403;

/** The one DNS name always accepted in `Host`: browsers and resolvers keep it on loopback. */
export const LOCALHOST_NAME = "localhost";

/** `Sec-Fetch-Site` values that show the request did not come from another origin's page. */
export const ACCEPTED_FETCH_SITES: readonly string[] = ["same-origin", "none"];

/** Request header naming the host the client addressed. */
const HOST_HEADER = "host";
/** Request header a browser adds naming the page's origin (every cross-origin `POST`). */
const ORIGIN_HEADER = "origin";
/** Fetch-metadata request header: how the requesting page relates to the target. */
const SEC_FETCH_SITE_HEADER = "sec-fetch-site";
/** The scheme of a request that arrived over TLS (an embedding app may serve one). */
const TLS_SCHEME = "https:";
/** The admin API's own scheme otherwise. */
const PLAIN_SCHEME = "http:";

/** The hosts a guard accepts in `Host`, compiled once. */
export interface AcceptedHosts {
  /** Canonical DNS names (punycode, lower case, no trailing dot), `localhost` included. */
  readonly names: ReadonlySet<string>;
  /** Canonical IP literals (no zone) besides the loopback ones. */
  readonly ips: ReadonlySet<string>;
  /** True when `0.0.0.0` or `::` was given: every IP literal is accepted. */
  readonly anyIp: boolean;
}

/**
 * Compile `allowedHosts` (see {@link BrowserGuardOptions}). `localhost` and loopback literals are
 * accepted whatever is given.
 *
 * @throws TypeError naming the first entry that is not a host name or IP literal.
 */
export function compileAcceptedHosts(allowedHosts: readonly string[] = []): AcceptedHosts {
  const names = new Set<string>([LOCALHOST_NAME]);
  const ips = new Set<string>();
  let anyIp = false;
  for (const entry of allowedHosts) {
    const host = typeof entry === "string" ? normalizeHost(entry) : null;
    if (host === null) throw new TypeError(`allowedHosts: ${quote(entry)} is not a host name or IP address`);
    if (host.ip === undefined) names.add(host.name);
    else if (isUnspecifiedIp(host.ip)) anyIp = true;
    else ips.add(host.ip);
  }
  return { names, ips, anyIp };
}

/** True when `Host` (as sent, port included) names a host in `accepted`. */
export function isAcceptedHost(hostHeader: string, accepted: AcceptedHosts): boolean {
  const host = normalizeHost(hostHeader);
  if (host === null) return false;
  if (host.ip === undefined) return accepted.names.has(host.name);
  return accepted.anyIp || isLoopbackIp(host.ip) || accepted.ips.has(host.ip);
}

/** Read access to request headers (a `Headers` object). */
export interface HeaderSource {
  get(name: string): string | null;
}

/**
 * Why a request must be refused as possibly sent by a browser for a web page, or `undefined`
 * when it may proceed. `url` is the request URL (only its scheme is used); `accepted` lists the
 * accepted hosts (several sets are unioned). Checks run in the order of the module comment.
 */
export function browserRefusal(headers: HeaderSource, url: string, accepted: readonly AcceptedHosts[]): string | undefined {
  const host = headers.get(HOST_HEADER);
  if (host === null || host === "") return "missing Host header: the admin API answers only requests addressed to it";
  if (!accepted.some((a) => isAcceptedHost(host, a))) {
    return `Host ${quote(host)} is not this admin API's address (accepted: ${describeAccepted(accepted)})`;
  }
  const origin = headers.get(ORIGIN_HEADER);
  if (origin !== null) {
    const own = ownOrigin(url, host);
    if (origin !== own) {
      return own === undefined
        ? `Origin ${quote(origin)} is refused: the admin API does not answer web pages`
        : `Origin ${quote(origin)} is not this admin API's origin ${quote(own)}: requests from other origins' web pages are refused`;
    }
  }
  const site = headers.get(SEC_FETCH_SITE_HEADER);
  if (site !== null && !ACCEPTED_FETCH_SITES.includes(site)) {
    const ok = ACCEPTED_FETCH_SITES.map((s) => quote(s)).join(" or ");
    return `Sec-Fetch-Site ${quote(site)}: requests from other origins' web pages are refused (only ${ok} is accepted)`;
  }
  return undefined;
}

/**
 * The origin a browser would send for a page served by this admin API under `host`: the
 * request's scheme (`https://` only when it arrived over TLS) and `host`, serialised as browsers
 * do (lower case, default port dropped). `undefined` when `host` is no URL host (an IPv6 zone).
 */
function ownOrigin(url: string, host: string): string | undefined {
  let scheme = PLAIN_SCHEME;
  try {
    if (new URL(url).protocol === TLS_SCHEME) scheme = TLS_SCHEME;
  } catch {
    // Not a URL: keep the plain scheme.
  }
  try {
    return new URL(`${scheme}//${host}`).origin;
  } catch {
    return undefined;
  }
}

/** The accepted hosts in words, for error messages. */
function describeAccepted(accepted: readonly AcceptedHosts[]): string {
  const names = new Set<string>();
  const ips = new Set<string>();
  let anyIp = false;
  for (const a of accepted) {
    for (const n of a.names) names.add(n);
    for (const ip of a.ips) ips.add(ip);
    anyIp ||= a.anyIp;
  }
  const parts = [...names];
  parts.push(anyIp ? "any IP address" : "loopback addresses");
  if (!anyIp) parts.push(...ips);
  return parts.join(", ");
}

/** A JSON rendering of `value`, cut to {@link MAX_QUOTED_VALUE_CHARS} (header values are the client's). */
function quote(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > MAX_QUOTED_VALUE_CHARS ? `${s.slice(0, MAX_QUOTED_VALUE_CHARS)}…` : s;
}

/** Env key under which {@link serveAsAdminListener} tells the admin app its listener's hosts. */
const LISTENER_HOSTS = Symbol("codex-network-proxy admin listener hosts");

/** What {@link serveAsAdminListener} passes as the Hono env. */
interface ListenerEnv {
  readonly [LISTENER_HOSTS]: AcceptedHosts;
}

/** The listener's accepted hosts carried in a Hono env, if it is one {@link serveAsAdminListener} made. */
function listenerHosts(env: unknown): AcceptedHosts | undefined {
  if (typeof env !== "object" || env === null) return undefined;
  return (env as Partial<ListenerEnv>)[LISTENER_HOSTS];
}

/** A fetch handler that takes a Hono-style env (a Hono app's `fetch`). */
export type AdminFetch = (request: Request, env?: object) => Response | Promise<Response>;

/**
 * `handler` (the admin app's `fetch`) as served on the proxy's own admin listener bound to
 * `boundHost`: the app then also accepts `Host: <boundHost>` when `allowNonLoopback`
 * (`dangerously_allow_non_loopback_admin`) is on, and every IP literal when that bound host is
 * `0.0.0.0` or `::`. A loopback bind adds nothing: loopback is always accepted. The listener
 * replaces the runtime's env (the admin app uses none).
 */
export function serveAsAdminListener(handler: AdminFetch, boundHost: string, allowNonLoopback: boolean): (request: Request) => Response | Promise<Response> {
  const env: ListenerEnv = { [LISTENER_HOSTS]: compileAcceptedHosts(allowNonLoopback ? [boundHost] : []) };
  return (request) => handler(request, env);
}

/** What {@link browserGuard} needs besides the options. */
export interface BrowserGuardSetup extends BrowserGuardOptions {
  /** Where refusals are logged (target `codex_network_proxy::admin`, level `warn`). */
  readonly log: Logger;
}

/**
 * The guard as Hono middleware: refuses (see the module comment) or passes the request on.
 *
 * @throws TypeError for a bad `allowedHosts` entry (see {@link compileAcceptedHosts}).
 */
export function browserGuard(setup: BrowserGuardSetup): MiddlewareHandler {
  const configured = compileAcceptedHosts(setup.allowedHosts);
  return async (c: Context, next) => {
    const fromListener = listenerHosts(c.env);
    const accepted = fromListener === undefined ? [configured] : [configured, fromListener];
    const refusal = browserRefusal(c.req.raw.headers, c.req.url, accepted);
    if (refusal === undefined) return next();
    setup.log.log("warn", TARGET.admin, `admin ${c.req.method} ${c.req.path} refused: ${refusal}`);
    return c.json({ status: "error", error: refusal }, BROWSER_REFUSAL_STATUS);
  };
}
