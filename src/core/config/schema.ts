/**
 * The shape of the `[network]` table (docs/behaviour.md §1): which TOML type each key takes.
 *
 * @module
 */

import type { NetworkConfig, NetworkMode } from "./types.ts";

/**
 * How a `[network]` key is validated. `mode` is a string restricted to {@link NETWORK_MODES};
 * `seconds` a whole number from 0 to `MAX_TIMEOUT_SECS`; `count` a whole number from 0 to
 * `MAX_LIMIT` (0: no limit); `hooks` the `[[network.mitm_hooks]]`
 * array of tables (`parseMitmHooks`); `rules` the `limited_mode_allow` array of tables
 * (`parseLimitedModeAllow`).
 */
export type KeyKind = "boolean" | "string" | "string[]" | "mode" | "seconds" | "count" | "hooks" | "rules";

/** The expected type of every `[network]` key, in the order of docs/behaviour.md §1. */
export const NETWORK_KEY_KINDS: { readonly [K in keyof NetworkConfig]-?: KeyKind } = {
  enabled: "boolean",
  proxy_url: "string",
  admin_url: "string",
  enable_socks5: "boolean",
  socks_url: "string",
  enable_socks5_udp: "boolean",
  allow_upstream_proxy: "boolean",
  dangerously_allow_non_loopback_proxy: "boolean",
  dangerously_allow_non_loopback_admin: "boolean",
  mode: "mode",
  limited_mode_allow: "rules",
  allowed_domains: "string[]",
  denied_domains: "string[]",
  allow_local_binding: "boolean",
  allow_unix_sockets: "string[]",
  dangerously_allow_all_unix_sockets: "boolean",
  denied_unix_sockets: "string[]",
  request_body_idle_timeout_secs: "seconds",
  max_connections: "count",
  max_tunnels: "count",
  max_requests_per_second: "count",
  max_request_burst: "count",
  tunnel_idle_timeout: "seconds",
  admin_token: "string",
  mitm: "boolean",
  mitm_hooks: "hooks",
};

/** Every key the `[network]` table accepts. */
export const NETWORK_KEYS = Object.keys(NETWORK_KEY_KINDS) as readonly (keyof NetworkConfig)[];

/** The values `network.mode` accepts. */
export const NETWORK_MODES: readonly NetworkMode[] = ["full", "limited"];

/** The keys holding listener addresses, validated with `parseListenUrl`. */
export const LISTEN_URL_KEYS = ["proxy_url", "admin_url", "socks_url"] as const;

/** True when `key` is a known `[network]` key. */
export function isNetworkKey(key: string): key is keyof NetworkConfig {
  return Object.hasOwn(NETWORK_KEY_KINDS, key);
}
