/**
 * The variables that make common tools trust the interception CA (docs/behaviour.md §9.4), each
 * pointing at the bundle `ca-bundle.ts` writes. Kept apart from the bundle code so that `env()`
 * does not load the certificate library.
 *
 * @module
 */

/**
 * The variables tools read for their trusted roots, each set to the bundle: OpenSSL and Go
 * (`SSL_CERT_FILE`), Node and Bun (`NODE_EXTRA_CA_CERTS`, added to their own roots), Python
 * requests, curl, git, pip, Deno, npm and Cargo.
 */
export const CA_BUNDLE_VARIABLES = [
  "SSL_CERT_FILE",
  "NODE_EXTRA_CA_CERTS",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "GIT_SSL_CAINFO",
  "PIP_CERT",
  "DENO_CERT",
  "npm_config_cafile",
  "CARGO_HTTP_CAINFO",
] as const;

/** The variables that add a file's certificates to a tool's own roots instead of replacing them. */
export const ADDITIVE_CA_VARIABLES = ["NODE_EXTRA_CA_CERTS", "DENO_CERT"] as const;

/**
 * Each of {@link CA_BUNDLE_VARIABLES} set to `bundle.path`; only the
 * {@link ADDITIVE_CA_VARIABLES} when the bundle lacks the system roots (it would break every
 * site that is not intercepted as a replacement trust store).
 */
export function caEnv(bundle: { readonly path: string; readonly complete: boolean }): Record<string, string> {
  const names: readonly string[] = bundle.complete ? CA_BUNDLE_VARIABLES : ADDITIVE_CA_VARIABLES;
  return Object.fromEntries(names.map((name) => [name, bundle.path]));
}
