/**
 * How a running proxy gets its local CA for TLS interception, on first need: from PEM the
 * embedding app hands over, or from `$CODEX_HOME/proxy` (the standalone proxy, and the library
 * when the app gives none). PKI.js is loaded only then, so a proxy that never intercepts never
 * loads it. A failure is not kept: fixing the files (e.g. `chmod 600`) works without a restart.
 *
 * @module
 */
import { TARGET, type Logger } from "../log.ts";
import type { Runtime } from "../runtime.ts";
import { EXTRA_CA_VARIABLES, loadExtraCa } from "../tls-trust.ts";
import type { LocalCa } from "./ca.ts";

/** A CA's certificate and PKCS#8 key, PEM (what `ca.pem` and `ca.key` hold). */
export interface CaMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

/** `load`, run once; a failed attempt is forgotten so that the next call tries again. */
function once(load: () => Promise<LocalCa>): () => Promise<LocalCa> {
  let loading: Promise<LocalCa> | undefined;
  return () => {
    if (!loading) {
      const attempt = load();
      loading = attempt;
      attempt.catch(() => {
        if (loading === attempt) loading = undefined;
      });
    }
    return loading;
  };
}

/** The CA in `material`, checked on first need (`LocalCa.fromPem`: it must be a usable P-256 CA). */
export function caFromPem(material: CaMaterial): () => Promise<LocalCa> {
  const { certPem, keyPem } = material;
  return once(async () => (await import("./ca.ts")).LocalCa.fromPem(certPem, keyPem));
}

/**
 * The CA kept in `$CODEX_HOME/proxy` (default `~/.codex/proxy`), loaded or made on first need;
 * `undefined` when the runtime cannot keep private files.
 */
export function caFromStore(rt: Pick<Runtime, "privateFiles" | "env" | "homeDir">, log: Logger): (() => Promise<LocalCa>) | undefined {
  const files = rt.privateFiles;
  if (!files) return undefined;
  return once(async () => {
    const { caPaths, loadOrCreateCa } = await import("./ca-store.ts");
    const home = codexHome(rt);
    const ca = await loadOrCreateCa(files, home);
    log.log("info", TARGET.main, `TLS interception CA ${caPaths(home).cert} (${ca.subject}, valid until ${new Date(ca.notAfter).toISOString().slice(0, 10)})`);
    return ca;
  });
}

/**
 * `$CODEX_HOME` (made absolute from the working directory when relative: it is handed to other
 * processes), else `~/.codex`. Throws when neither is known.
 */
export function codexHome(rt: Pick<Runtime, "env" | "homeDir" | "cwd">): string {
  const set = rt.env?.("CODEX_HOME");
  if (set) return set.startsWith("/") || !rt.cwd ? set : `${rt.cwd().replace(/\/+$/, "")}/${set}`;
  const home = rt.homeDir?.();
  if (!home) throw new Error("cannot find the home directory for the CA: set CODEX_HOME");
  return `${home.replace(/\/+$/, "")}/.codex`;
}

/** Where a trust bundle was written, and whether it holds the system roots. */
export interface TrustBundle {
  readonly path: string;
  /**
   * It holds the system roots, so it can replace a tool's trust store (`SSL_CERT_FILE`…);
   * without them only the variables that add to a tool's roots may name it.
   */
  readonly complete: boolean;
}

/** A runtime that can hold a bundle: files to write, the roots, the extra CA's variables. */
export type TrustRuntime = Pick<Runtime, "env" | "homeDir" | "cwd" | "privateFiles" | "readTextFile" | "bundledRoots">;

/** The names this code gives bundles: a variable naming one of them is not an extra CA. */
const OWN_BUNDLE_NAME = /^ca-bundle(?:-[0-9a-f]{16})?\.pem$/;

/**
 * Write the trust bundle for `ca` (docs/behaviour.md §9.4) into `$CODEX_HOME/proxy`:
 * `ca-bundle.pem` for the CA kept there (`fromStore`), `ca-bundle-<fingerprint>.pem` for an
 * app's own CA, so two proxies with different CAs never overwrite each other's. The extra CA
 * is the one `CODEX_CA_CERTIFICATE` / `SSL_CERT_FILE` names, unless that is a bundle this code
 * wrote there (a shell that ran `env`): an old CA or a removed root must not live on in it.
 * `undefined`, with a warning, when the runtime cannot write files.
 */
export async function writeTrustBundle(rt: TrustRuntime, ca: LocalCa, fromStore: boolean, log: Logger): Promise<TrustBundle | undefined> {
  const files = rt.privateFiles;
  const warn = (m: string) => log.log("warn", TARGET.main, m);
  if (!files) {
    warn("this runtime cannot write files: no CA bundle for clients, trust the proxy's CA by hand");
    return undefined;
  }
  const { CA_BUNDLE_FILE, writeCaBundle } = await import("./ca-bundle.ts");
  const { CA_DIR_NAME } = await import("./ca-store.ts");
  const name = fromStore ? CA_BUNDLE_FILE : `ca-bundle-${await fingerprint(ca.certPem)}.pem`;
  const dir = `${codexHome(rt).replace(/\/+$/, "")}/${CA_DIR_NAME}`;
  const readTextFile = rt.readTextFile && ((p: string) => rt.readTextFile!(p));
  const named = EXTRA_CA_VARIABLES.map((v) => rt.env?.(v)).find((p) => p);
  const own = named !== undefined && named.startsWith(`${dir}/`) && OWN_BUNDLE_NAME.test(named.slice(dir.length + 1));
  const extraCa = own ? undefined : await loadExtraCa((n) => rt.env?.(n), readTextFile, warn);
  const sources = { files, readTextFile, bundledRoots: rt.bundledRoots && (() => rt.bundledRoots!()) };
  return writeCaBundle(sources, dir, name, ca.certPem, extraCa, warn);
}

/** The first 16 hex digits of the SHA-256 of `text`. */
async function fingerprint(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
