/**
 * Letting clients trust the interception CA without hand work (docs/behaviour.md §9.4): a bundle
 * of the system's root certificates, the extra CA the proxy itself trusts
 * (`CODEX_CA_CERTIFICATE` / `SSL_CERT_FILE`) and the interception CA, written next to the CA,
 * and the variables common tools read pointing at it. The bundle replaces a tool's trust store
 * (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, …), so it must hold the system roots too: an opaque
 * tunnel (full mode) still needs them.
 *
 * @module
 */
import { checkDirectory, type PrivateFiles } from "./ca-store.ts";
import { splitPemBlocks } from "./pem.ts";

/** The bundle's file name, beside `ca.pem`, for the CA kept in `$CODEX_HOME/proxy`. */
export const CA_BUNDLE_FILE = "ca-bundle.pem";
/** Mode of the bundle (public certificates). */
export const CA_BUNDLE_MODE = 0o644;
/** Mode of a directory made for a bundle. */
const BUNDLE_DIR_MODE = 0o700;

/**
 * Where systems keep their root bundle, tried in order: Debian, Ubuntu, Alpine and Arch; Fedora
 * and RHEL; their extracted store; openSUSE; macOS and the BSDs.
 */
export const SYSTEM_ROOT_FILES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
  "/etc/ssl/ca-bundle.pem",
  "/etc/ssl/cert.pem",
] as const;

/** What writing the bundle needs from the runtime. */
export interface BundleSources {
  readonly files: PrivateFiles;
  /** Reads a system root file; `null` when it does not exist. */
  readTextFile?(path: string): Promise<string | null>;
  /** The runtime's own roots (Node's and Bun's `tls.rootCertificates`), when no system file has any. */
  bundledRoots?(): readonly string[];
}

/**
 * The system roots, PEM: the first of {@link SYSTEM_ROOT_FILES} holding a certificate, else the
 * runtime's own; `undefined` when neither has any (an unreadable file counts as none).
 */
export async function systemRootsPem(sources: Pick<BundleSources, "readTextFile" | "bundledRoots">): Promise<string | undefined> {
  if (sources.readTextFile) {
    for (const path of SYSTEM_ROOT_FILES) {
      const text = await sources.readTextFile(path).catch(() => null);
      if (text !== null && splitPemBlocks(text, "CERTIFICATE").length > 0) return text;
    }
  }
  const bundled = sources.bundledRoots?.() ?? [];
  return bundled.length > 0 ? bundled.join("\n") : undefined;
}

/**
 * The bundle's text: every certificate of `parts`, each once, in order (a bundle made from an
 * environment that already pointed at an earlier bundle does not grow).
 */
export function bundleText(parts: readonly (string | undefined)[]): string {
  const seen = new Set<string>();
  let out = "";
  for (const part of parts) {
    if (part === undefined) continue;
    for (const block of splitPemBlocks(part, "CERTIFICATE")) {
      if (seen.has(block)) continue;
      seen.add(block);
      out += `${block}\n`;
    }
  }
  return out;
}

/**
 * Write the bundle for `caPem` into `dir` (made 0700 when missing; refused when it is a symbolic
 * link or writable by others, like the CA's own) as `name`, atomically, and return its path and
 * whether it holds system roots. `warn` hears when none were found: the bundle then holds only
 * the CAs, and must not replace a tool's trust store.
 */
export async function writeCaBundle(
  sources: BundleSources,
  dir: string,
  name: string,
  caPem: string,
  extraCa: string | undefined,
  warn: (message: string) => void,
): Promise<{ path: string; complete: boolean }> {
  await checkDirectory(sources.files, dir);
  await sources.files.mkdirp(dir, BUNDLE_DIR_MODE);
  const roots = await systemRootsPem(sources);
  if (roots === undefined) {
    warn(`no system root certificates found (tried ${SYSTEM_ROOT_FILES.join(", ")}): ${dir}/${name} holds only the proxy's CA, so only NODE_EXTRA_CA_CERTS and DENO_CERT name it`);
  }
  const path = `${dir}/${name}`;
  await sources.files.replaceText(path, bundleText([roots, extraCa, caPem]), CA_BUNDLE_MODE);
  return { path, complete: roots !== undefined };
}
