/**
 * Extra trusted roots for TLS origination: the PEM file named by `CODEX_CA_CERTIFICATE`, else
 * by `SSL_CERT_FILE`, added to the system roots.
 *
 * @module
 */

/** The variables naming an extra CA bundle, in order of precedence. */
export const EXTRA_CA_VARIABLES = ["CODEX_CA_CERTIFICATE", "SSL_CERT_FILE"] as const;

/**
 * Read the extra CA bundle, if one is named. A named file that is missing or holds no
 * certificate is reported through `warn` and ignored (the system roots still apply).
 */
export async function loadExtraCa(
  env: (name: string) => string | undefined,
  readTextFile: ((path: string) => Promise<string | null>) | undefined,
  warn: (message: string) => void,
): Promise<string | undefined> {
  for (const name of EXTRA_CA_VARIABLES) {
    const path = env(name);
    if (!path) continue;
    if (!readTextFile) {
      warn(`${name}=${path}: this runtime cannot read files; ignored`);
      return undefined;
    }
    const pem = await readTextFile(path).catch((e: Error) => (warn(`${name}=${path}: ${e.message}; ignored`), null));
    if (pem === null) {
      warn(`${name}=${path}: no such file; ignored`);
      return undefined;
    }
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
      warn(`${name}=${path}: no PEM certificate in the file; ignored`);
      return undefined;
    }
    return pem;
  }
  return undefined;
}
