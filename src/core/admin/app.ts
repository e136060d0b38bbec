/**
 * The admin API (docs/behaviour.md §7) as a Hono app, to serve on its own listener or mount inside
 * another app (`parent.route("/proxy", createAdminApp(state))`). Routes are relative, and the
 * catch-all 404 is a route rather than a `notFound` handler, so when mounted it only answers
 * under the mount prefix.
 *
 * Choices this project made (docs/behaviour.md §7 records them):
 * - A known path with the wrong method (`POST /health`, `GET /mode`) is `404 not found`, as the
 *   "anything else" of docs/behaviour.md §7 says, not `405`.
 * - A mode the managed constraints forbid is `409 Conflict` with the reason: the request is
 *   well-formed but conflicts with the state.
 * - With a token set, every request but `GET /health` and the live page's three static files
 *   (`/`, `/app.js`, `/app.css`, which hold no data) is authenticated before routing, so an
 *   unknown path without the token is `401`, not `404` (nothing is revealed to strangers).
 * - `GET /config` never shows the token: `admin_token` is `"<redacted>"` or `null`.
 * - Before anything else, even `/health`, the browser guard (`./browser-guard.ts`) refuses with
 *   `403` what a web page could have made a browser send: a `Host` that is not this admin API's
 *   (DNS rebinding), a foreign `Origin`, `Sec-Fetch-Site: cross-site`/`same-site` (CSRF). No
 *   CORS header is ever sent.
 *
 * @module
 */
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { silentLogger, TARGET, type Logger } from "../log.ts";
import { StateChangeError, type ProxyState } from "../state.ts";
import { BEARER_REFUSAL_TEXT, bearerTokenAuth } from "./auth.ts";
import { browserGuard, type BrowserGuardOptions } from "./browser-guard.ts";
import { eventsHandler } from "./events.ts";
import { PAGE_CSP, PAGE_CSS, PAGE_JS, pageHtml } from "./page.ts";
import { adminBodyLimit, MAX_ADMIN_BODY_BYTES, readBoundedBody, type BodyRefusals } from "./body.ts";
import { parseModeRequest } from "./mode-request.ts";
import { redactNetwork, scrubSecrets } from "./redact.ts";

/** Content type of `GET /metrics` (the Prometheus text format). */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Options of {@link createAdminApp}. `allowedHosts` (from {@link BrowserGuardOptions}): host
 * names or IP literals accepted in `Host` besides `localhost` and loopback literals, which are
 * always accepted; default none (loopback only). Give the names an embedding app is served
 * under, e.g. `{ allowedHosts: ["proxy.internal"] }`. `Origin` and `Sec-Fetch-Site` are checked
 * whatever is given.
 */
export interface AdminOptions extends BrowserGuardOptions {
  /** When non-empty, every endpoint but `/health` needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Where request outcomes are logged (target `codex_network_proxy::admin`). Default: silent. */
  log?: Logger;
}

/** Body of `GET /health`. */
export const HEALTH_BODY = "ok";
/** Body of every `404`. */
export const NOT_FOUND_BODY = "not found";
/** `error` of a `401`. */
export const UNAUTHORIZED_ERROR = "unauthorized";
/** HTTP 409: the change conflicts with the managed constraints. */
const STATUS_CONFLICT = 409;

/** `{"status":"error","error":…}` with `status`. */
function errorJson(c: Context, status: 400 | 401 | 409 | 413 | 500, error: string): Response {
  return c.json({ status: "error", error }, status);
}

/**
 * The admin API over `state`.
 *
 * @throws TypeError for an `allowedHosts` entry that is not a host name or IP literal, or a
 *   `token` that is not a bearer token (RFC 6750 §2.1).
 */
export function createAdminApp(state: ProxyState, options: AdminOptions = {}): Hono {
  const log = options.log ?? silentLogger;
  const guard = browserGuard({ allowedHosts: options.allowedHosts, log });
  const token = options.token === "" ? undefined : options.token;
  /** Error text safe to send or log: no token value, no `admin_token = …`. */
  const safe = (message: string): string => scrubSecrets(message, [token, state.snapshot().network.admin_token]);

  const app = new Hono();

  app.onError((err, c) => {
    // Hono's middleware answers by throwing: the refusal it carries is the answer.
    if (err instanceof HTTPException) return err.getResponse();
    log.log("error", TARGET.admin, `admin ${c.req.method} ${c.req.path} failed: ${safe(err.message)}`);
    return errorJson(c, 500, "internal error");
  });

  // First of all, on every path: nothing a web page could have sent gets further.
  app.use("*", guard);

  // Registered before the token check: a matched route that answers ends the chain there.
  app.get("/health", (c) => c.text(HEALTH_BODY, 200));
  // The live page holds no data (it asks for the token and reads the API): no token needed.
  const pageHeaders = (type: string) => ({ "content-type": type, "content-security-policy": PAGE_CSP, "x-content-type-options": "nosniff", "cache-control": "no-store" });
  app.get("/", (c) => c.body(pageHtml(c.req.path), 200, pageHeaders("text/html; charset=utf-8")));
  app.get("/app.js", (c) => c.body(PAGE_JS, 200, pageHeaders("text/javascript; charset=utf-8")));
  app.get("/app.css", (c) => c.body(PAGE_CSS, 200, pageHeaders("text/css; charset=utf-8")));

  if (token !== undefined) {
    app.use(
      "*",
      bearerTokenAuth(token, (c, why) => {
        log.log("warn", TARGET.admin, `admin ${c.req.method} ${c.req.path} refused: ${BEARER_REFUSAL_TEXT[why]}`);
        return errorJson(c, 401, UNAUTHORIZED_ERROR);
      }),
    );
  }

  const bodyRefusals: BodyRefusals = {
    tooLarge: (c) => errorJson(c, 413, `request body exceeds ${MAX_ADMIN_BODY_BYTES} bytes`),
    badLength: (c, value) => errorJson(c, 400, `invalid content-length ${JSON.stringify(value.slice(0, 32))}`),
  };

  app.get("/config", (c) => {
    const s = state.snapshot();
    return c.json({ network: { ...redactNetwork(s.network, token !== undefined), mode: s.mode } }, 200);
  });

  app.get("/patterns", (c) => {
    const { network } = state.snapshot();
    return c.json({ allowed: [...network.allowed_domains], denied: [...network.denied_domains] }, 200);
  });

  app.get("/blocked", (c) => c.json({ blocked: state.blocked.list() }, 200));

  // The Prometheus text exposition format (version 0.0.4), written by the official serializer.
  app.get("/events", eventsHandler(state));

  app.get("/metrics", async (c) => c.body(await state.metrics.prometheusText(), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }));

  // A state change sent by a browser (it says so with `Origin` or `Sec-Fetch-Site`) must be JSON:
  // a page elsewhere cannot send that without a preflight this API never answers.
  const jsonFromBrowsers = async (c: Context, next: () => Promise<void>): Promise<Response | void> => {
    const fromBrowser = c.req.header("origin") !== undefined || c.req.header("sec-fetch-site") !== undefined;
    const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (fromBrowser && type !== "application/json") {
      log.log("warn", TARGET.admin, `admin ${c.req.method} ${c.req.path} refused: a browser's state change must be application/json`);
      return c.json({ status: "error", error: "a state change from a browser must have content-type application/json" }, 415);
    }
    await next();
  };

  app.post("/mode", jsonFromBrowsers, adminBodyLimit(bodyRefusals), async (c) => {
    const body = await readBoundedBody(c);
    if (body === undefined) return bodyRefusals.tooLarge(c);
    const req = parseModeRequest(body);
    if (!req.ok) {
      log.log("warn", TARGET.admin, `admin POST /mode refused: ${req.error}`);
      return errorJson(c, 400, req.error);
    }
    try {
      state.setMode(req.mode);
    } catch (e) {
      if (!(e instanceof StateChangeError)) throw e;
      const reason = safe(e.message);
      log.log("warn", TARGET.admin, `admin POST /mode ${req.mode} refused: ${reason}`);
      return errorJson(c, STATUS_CONFLICT, reason);
    }
    log.log("info", TARGET.admin, `admin set mode to ${req.mode}`);
    return c.json({ status: "ok", mode: req.mode }, 200);
  });

  app.post("/reload", jsonFromBrowsers, async (c) => {
    try {
      await state.reload();
    } catch (e) {
      const reason = safe(e instanceof Error ? e.message : String(e));
      log.log("warn", TARGET.admin, `admin reload failed, previous config kept: ${reason}`);
      return errorJson(c, 500, reason);
    }
    log.log("info", TARGET.admin, "admin reload: config reloaded");
    return c.json({ status: "reloaded" }, 200);
  });

  // docs/behaviour.md §7 "anything else", including a known path with another method.
  app.all("*", (c) => c.text(NOT_FOUND_BODY, 404));

  return app;
}
