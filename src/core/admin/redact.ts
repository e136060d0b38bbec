/**
 * Keeping the admin token out of responses and log lines: the redacted view of the config
 * (`GET /config`) and scrubbing of error messages (a TOML parse error quotes the offending line,
 * which may be the `admin_token` line).
 *
 * @module
 */
import type { NetworkConfig } from "../config/types.ts";

/** What `GET /config` shows instead of a configured admin token. */
export const REDACTED = "<redacted>";

/** `admin_token = <value>` as it may appear quoted in a config error message. */
const ADMIN_TOKEN_ASSIGNMENT = /(admin_token["']?\s*=\s*)("(?:\\.|[^"\\])*"?|'[^']*'?|\S+)/g;

/** `network` as `GET /config` reports it: every key, the admin token replaced. */
export type RedactedNetwork = Omit<NetworkConfig, "admin_token"> & { admin_token: typeof REDACTED | null };

/**
 * The `[network]` view for `GET /config`. `admin_token` is never shown: it is `"<redacted>"`
 * when a token protects the admin API (from the config or given to the app, e.g. via the
 * environment variable) and `null` when none does.
 */
export function redactNetwork(network: Readonly<NetworkConfig>, tokenInForce: boolean): RedactedNetwork {
  const hasToken = tokenInForce || (network.admin_token !== undefined && network.admin_token !== "");
  return { ...structuredClone(network as NetworkConfig), admin_token: hasToken ? REDACTED : null };
}

/** `message` with every occurrence of each secret, and any `admin_token = …` value, replaced. */
export function scrubSecrets(message: string, secrets: readonly (string | undefined)[]): string {
  let out = message.replace(ADMIN_TOKEN_ASSIGNMENT, `$1${REDACTED}`);
  for (const s of secrets) {
    if (s) out = out.split(s).join(REDACTED);
  }
  return out;
}
