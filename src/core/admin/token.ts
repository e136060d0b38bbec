/**
 * Where the admin token comes from: the environment overrides the config file, so a token need
 * not be written to disk.
 *
 * @module
 */
import type { NetworkConfig } from "../config/types.ts";

/** Environment variable holding the admin token; wins over `network.admin_token` when non-empty. */
export const ADMIN_TOKEN_ENV = "CODEX_NETWORK_PROXY_ADMIN_TOKEN";

/**
 * The admin token in force: `CODEX_NETWORK_PROXY_ADMIN_TOKEN` when set and non-empty, else
 * `network.admin_token` (when non-empty), else `undefined` (no authentication).
 */
export function adminTokenFrom(network: NetworkConfig, env: (name: string) => string | undefined): string | undefined {
  const fromEnv = env(ADMIN_TOKEN_ENV);
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return network.admin_token === undefined || network.admin_token === "" ? undefined : network.admin_token;
}
