/**
 * Configuration: parsing `config.toml`'s `[network]` table and planning listener addresses
 * (docs/behaviour.md §1).
 *
 * @module
 */

export {
  ConfigError,
  defaultNetworkConfig,
  type ListenAddr,
  type ListenPlan,
  type LoadedConfig,
  type NetworkConfig,
  type NetworkMode,
} from "./types.ts";
export { MAX_TOML_DEPTH, parseConfigText } from "./parse.ts";
export {
  isLoopbackHost,
  LOOPBACK_BIND_HOST,
  parseListenUrl,
  planListeners,
  SCHEME_DEFAULT_PORTS,
} from "./listen-url.ts";
export { findKeyLine } from "./key-line.ts";
export { NETWORK_KEYS, NETWORK_MODES } from "./schema.ts";
