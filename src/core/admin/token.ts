/**
 * Where the admin token comes from: the environment overrides the config file, so a token need
 * not be written to disk.
 *
 * @module
 */
import { bearerTokenFault } from "../config/bearer-token.ts";
import { ConfigError, type NetworkConfig } from "../config/types.ts";

/** Environment variable holding the admin token; wins over `network.admin_token` when non-empty. */
export const ADMIN_TOKEN_ENV = "CODEX_NETWORK_PROXY_ADMIN_TOKEN";

/**
 * The admin token in force: `CODEX_NETWORK_PROXY_ADMIN_TOKEN` when set and non-empty, else
 * `network.admin_token` (when non-empty), else `undefined` (no authentication).
 *
 * @throws ConfigError (key `CODEX_NETWORK_PROXY_ADMIN_TOKEN`) when the variable is set to
 *   something that is not a bearer token (RFC 6750 §2.1); the message never quotes it.
 */
export function adminTokenFrom(network: NetworkConfig, env: (name: string) => string | undefined): string | undefined {
  const fromEnv = env(ADMIN_TOKEN_ENV);
  if (fromEnv !== undefined && fromEnv !== "") {
    const fault = bearerTokenFault(fromEnv);
    if (fault !== undefined) throw new ConfigError(`${ADMIN_TOKEN_ENV} ${fault}`, ADMIN_TOKEN_ENV);
    return fromEnv;
  }
  return network.admin_token === undefined || network.admin_token === "" ? undefined : network.admin_token;
}
