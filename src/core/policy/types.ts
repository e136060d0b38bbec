/**
 * Vocabulary of policy decisions: reasons, sources, protocols and the per-reason wording of
 * docs/behaviour.md §5.
 *
 * @module
 */

/** The protocol a request arrived on, as reported in 403 bodies, `/blocked` and audit events. */
export type ProxyProtocol = "http" | "https_connect" | "socks5_tcp" | "socks5_udp";

/** Who made a decision. */
export type DecisionSource = "baseline_policy" | "mode_guard" | "proxy_state" | "decider";

/** Why a request was refused. Decider reasons are free-form strings. */
export type BlockReason =
  | "not_allowed"
  | "not_allowed_local"
  | "denied"
  | "method_not_allowed"
  /** Limited mode without TLS interception (`mitm = false`) refuses every CONNECT. */
  | "mitm_required"
  /** A request to a host with `mitm_hooks` that matches none of them (or cannot be inspected). */
  | "mitm_hook_denied"
  /** An intercepted tunnel whose client failed the TLS handshake with the proxy (recorded, not answered). */
  | "mitm_handshake_failed"
  /** `max_connections` client connections were open (503). */
  | "too_many_connections"
  /** `max_tunnels` tunnels were open (429). */
  | "too_many_tunnels"
  /** The client went over `max_requests_per_second` (429). */
  | "rate_limited"
  | "proxy_disabled"
  | "proxy_loop"
  | "decider_error"
  | "decider_timeout"
  | "unix_socket_unsupported"
  | (string & {});

/** A host-level verdict. When allowed, `addresses` are the vetted IPs to dial (DNS pinning). */
export type HostVerdict =
  | {
      readonly allowed: true;
      /** Normalised host (for logs and events). */
      readonly host: string;
      /**
       * IP literals vetted by the policy: dial exactly these, never resolve again. `undefined`
       * when the policy did not need to resolve (local binding allowed): resolve at dial time.
       */
      readonly addresses?: readonly string[];
      readonly source: DecisionSource;
      /** True only when a decider turned `not_allowed` into an allow. */
      readonly override: boolean;
    }
  | {
      readonly allowed: false;
      readonly host: string;
      readonly reason: BlockReason;
      readonly decision: "deny" | "ask";
      readonly source: DecisionSource;
    };

/**
 * The status a refusal is answered with: `503` when the proxy has no room for another
 * connection, `429` for a client over a tunnel or rate limit (RFC 6585 §4), else `403`.
 */
export function refusalStatus(reason: BlockReason): 403 | 429 | 503 {
  if (reason === "too_many_connections") return 503;
  return reason === "too_many_tunnels" || reason === "rate_limited" ? 429 : 403;
}

/** `x-proxy-error` header values (docs/behaviour.md §5). */
export function proxyErrorHeader(reason: BlockReason): string {
  switch (reason) {
    case "not_allowed":
    case "not_allowed_local":
      return "blocked-by-allowlist";
    case "denied":
      return "blocked-by-denylist";
    case "method_not_allowed":
      return "blocked-by-method-policy";
    case "mitm_required":
      return "blocked-by-mitm-required";
    case "mitm_hook_denied":
      return "blocked-by-mitm-hook";
    case "too_many_connections":
    case "too_many_tunnels":
    case "rate_limited":
      return "blocked-by-limit";
    default:
      return "blocked-by-policy";
  }
}

/** Human message for a refusal (docs/behaviour.md §5). */
export function blockMessage(reason: BlockReason): string {
  switch (reason) {
    case "not_allowed":
      return "Domain not in allowlist.";
    case "not_allowed_local":
      return "Sandbox policy blocks local/private network addresses.";
    case "denied":
      return "Domain denied by the sandbox policy.";
    case "method_not_allowed":
      return "Method not allowed in limited mode.";
    case "mitm_required":
      return "Limited mode needs TLS interception (network.mitm = true) to open HTTPS tunnels.";
    case "mitm_hook_denied":
      return "Request does not match any of the host's network.mitm_hooks.";
    case "too_many_connections":
      return "Too many open connections to the proxy (network.max_connections); retry later.";
    case "too_many_tunnels":
      return "Too many open tunnels (network.max_tunnels); retry later.";
    case "rate_limited":
      return "Too many requests from this client (network.max_requests_per_second); retry later.";
    default:
      return "Request blocked by network policy.";
  }
}
