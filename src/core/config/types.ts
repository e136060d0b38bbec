/**
 * The `[network]` configuration as the proxy uses it, with the defaults of docs/behaviour.md §1.
 * Keys keep their TOML (snake_case) spelling so `GET /config` and error messages match the file.
 *
 * @module
 */
import type { MitmHookConfig } from "../mitm/hook-config.ts";
import type { LimitedModeRule } from "../policy/limited-allow.ts";
import { DEFAULT_MAX_CONNECTIONS } from "../limits.ts";

export { ConfigError } from "./error.ts";

/** `full` allows every method; `limited` only GET, HEAD and OPTIONS (no tunnels, no SOCKS5). */
export type NetworkMode = "full" | "limited";

/** Every `[network]` key of docs/behaviour.md §1. */
export interface NetworkConfig {
  enabled: boolean;
  proxy_url: string;
  admin_url: string;
  enable_socks5: boolean;
  socks_url: string;
  enable_socks5_udp: boolean;
  allow_upstream_proxy: boolean;
  dangerously_allow_non_loopback_proxy: boolean;
  dangerously_allow_non_loopback_admin: boolean;
  mode: NetworkMode;
  allowed_domains: string[];
  denied_domains: string[];
  allow_local_binding: boolean;
  allow_unix_sockets: string[];
  /**
   * Every unix socket may be reached with `x-unix-socket` but those in
   * {@link denied_unix_sockets} (the Codex profile key of the same name). Forces loopback
   * listeners, like a non-empty `allow_unix_sockets`.
   */
  dangerously_allow_all_unix_sockets: boolean;
  /** Unix sockets never reached, even with `dangerously_allow_all_unix_sockets` (absolute paths). */
  denied_unix_sockets: string[];
  /**
   * Longest a request body may make no progress, in seconds: no byte from the client (`408`),
   * or the origin taking none (`502`); the connection is then closed. `0`: no limit. Tunnels
   * have no idle limit.
   */
  request_body_idle_timeout_secs: number;
  /** Bearer token for the admin API; `undefined` when unset. */
  admin_token?: string;
  /**
   * TLS interception with the local CA (`$CODEX_HOME/proxy/ca.pem`): in limited mode, CONNECT
   * tunnels are opened and every request inside is decided like a plain one. Off: limited mode
   * refuses CONNECT (`mitm_required`).
   */
  mitm: boolean;
  /**
   * `[[network.mitm_hooks]]`: per-host rules for intercepted requests (docs/behaviour.md §5.19).
   * CONNECTs to a hooked host are intercepted in full mode too; a request to it must match a
   * hook (`mitm_hook_denied`), whose actions strip and inject headers. Needs `mitm = true`.
   */
  mitm_hooks: MitmHookConfig[];
  /**
   * Requests limited mode lets through although their method writes (`git-upload-pack`,
   * GraphQL queries): `{ host, methods, path_prefixes }` rules (docs/behaviour.md §3.5). Never
   * CONNECT, never an upgrade.
   */
  limited_mode_allow: LimitedModeRule[];
  /**
   * Open client connections across the listeners (0: no limit). Beyond it a new connection gets
   * `503` with `Retry-After` (SOCKS5: reply `0x01`) and is closed (`too_many_connections`).
   */
  max_connections: number;
  /** Open CONNECT and SOCKS5 tunnels (0: no limit); beyond it `429` (`too_many_tunnels`). */
  max_tunnels: number;
  /** Requests per second per client address (0: no limit); beyond it `429` (`rate_limited`). */
  max_requests_per_second: number;
  /** Requests a client may make at once before its rate applies (0: the rate itself). */
  max_request_burst: number;
  /** Seconds a tunnel may carry no byte either way before it is closed (0: no limit). */
  tunnel_idle_timeout: number;
}

/** Default of `request_body_idle_timeout_secs`: a client silent this long inside a body is gone. */
export const DEFAULT_REQUEST_BODY_IDLE_TIMEOUT_SECS = 60;
/** Largest `request_body_idle_timeout_secs` accepted: one day. */
export const MAX_TIMEOUT_SECS = 86_400;

/** The defaults of docs/behaviour.md §1: disabled, loopback listeners, nothing allowed. */
export function defaultNetworkConfig(): NetworkConfig {
  return {
    enabled: false,
    proxy_url: "http://127.0.0.1:3128",
    admin_url: "http://127.0.0.1:8080",
    enable_socks5: false,
    socks_url: "http://127.0.0.1:8081",
    enable_socks5_udp: false,
    allow_upstream_proxy: false,
    dangerously_allow_non_loopback_proxy: false,
    dangerously_allow_non_loopback_admin: false,
    mode: "full",
    allowed_domains: [],
    denied_domains: [],
    allow_local_binding: false,
    allow_unix_sockets: [],
    dangerously_allow_all_unix_sockets: false,
    denied_unix_sockets: [],
    request_body_idle_timeout_secs: DEFAULT_REQUEST_BODY_IDLE_TIMEOUT_SECS,
    mitm: false,
    mitm_hooks: [],
    limited_mode_allow: [],
    max_connections: DEFAULT_MAX_CONNECTIONS,
    max_tunnels: 0,
    max_requests_per_second: 0,
    max_request_burst: 0,
    tunnel_idle_timeout: 0,
  };
}

/** A listener address after parsing and loopback clamping. */
export interface ListenAddr {
  host: string;
  port: number;
}

/** The addresses the proxy binds, after clamping (docs/behaviour.md §1). */
export interface ListenPlan {
  http: ListenAddr;
  admin: ListenAddr;
  socks5?: ListenAddr;
}


/** The result of loading a config: the values plus warnings to print (unknown keys, clamps). */
export interface LoadedConfig {
  network: NetworkConfig;
  warnings: string[];
  /** `[otel]`/`[analytics]`, when loaded from a file by the standalone entry. */
  telemetry?: import("./telemetry.ts").TelemetryConfig;
}
