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
    const home = rt.env?.("CODEX_HOME") || `${(rt.homeDir?.() ?? "").replace(/\/+$/, "")}/.codex`;
    const ca = await loadOrCreateCa(files, home);
    log.log("info", TARGET.main, `TLS interception CA ${caPaths(home).cert} (${ca.subject}, valid until ${new Date(ca.notAfter).toISOString().slice(0, 10)})`);
    return ca;
  });
}
