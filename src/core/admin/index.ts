/**
 * The admin API (docs/behaviour.md §7): the Hono app and its helpers.
 *
 * @module
 */
export { createAdminApp, HEALTH_BODY, NOT_FOUND_BODY, UNAUTHORIZED_ERROR, type AdminOptions } from "./app.ts";
export { BEARER_CHALLENGES, BEARER_REFUSAL_TEXT, BEARER_SCHEME, bearerTokenAuth, type BearerRefusal } from "./auth.ts";
export {
  ACCEPTED_FETCH_SITES,
  BROWSER_REFUSAL_STATUS,
  LOCALHOST_NAME,
  browserGuard,
  browserRefusal,
  compileAcceptedHosts,
  isAcceptedHost,
  type AcceptedHosts,
  type BrowserGuardOptions,
  type BrowserGuardSetup,
} from "./browser-guard.ts";
export { adminBodyLimit, MAX_ADMIN_BODY_BYTES, readBoundedBody, type BodyRefusals } from "./body.ts";
export { MAX_QUOTED_VALUE_CHARS, parseModeRequest, type ModeRequest } from "./mode-request.ts";
export { REDACTED, redactNetwork, scrubSecrets, type RedactedNetwork } from "./redact.ts";
export { ADMIN_TOKEN_ENV, adminTokenFrom } from "./token.ts";
