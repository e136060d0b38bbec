/**
 * TLS origination on `node:tls`, shared by the Node adapter and the Bun adapter (Bun runs
 * `node:tls` natively): connect to the vetted IP, send SNI and verify the certificate for the
 * request's host name against the system roots plus the configured extra CA.
 *
 * @module
 */
import { isIP } from "node:net";
import * as tls from "node:tls";
import { DialError, type Conn, type DialOptions, type NetAddr, type TlsOptions } from "../../core/net/contract.ts";
import { NodeConn } from "../node/conn.ts";

/** OpenSSL/Node codes that mean "this certificate is not trusted for this name". */
const VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "HOSTNAME_MISMATCH",
]);

/** Dial `addr` and originate TLS for `t.serverName`. */
export function connectNodeTls(addr: NetAddr, t: TlsOptions, options?: DialOptions): Promise<Conn> {
  return new Promise<Conn>((resolve, reject) => {
    const ca = t.extraCa ? [...tls.rootCertificates, t.extraCa] : undefined;
    const socket = tls.connect({
      host: addr.host,
      port: addr.port,
      // SNI carries names only; an IP target is verified against the certificate's IP entries.
      servername: isIP(t.serverName) ? undefined : t.serverName,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(t.serverName, cert),
      ca,
      ALPNProtocols: ["http/1.1"],
    });
    const signal = options?.signal;
    const onAbort = (): void => {
      socket.destroy();
      reject(new DialError("timeout", addr, "TLS dial aborted or timed out"));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      signal?.removeEventListener("abort", onAbort);
      const verify = VERIFY_CODES.has(e.code ?? "") || /certificate/i.test(e.message);
      const kind = verify ? "tls" : e.code === "ECONNREFUSED" ? "refused" : e.code === "ETIMEDOUT" ? "timeout" : "other";
      reject(new DialError(kind, addr, verify ? `certificate verification failed for ${t.serverName}: ${e.message}` : e.message, { cause: e }));
    });
    socket.once("secureConnect", () => {
      signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      resolve(new NodeConn(socket));
    });
  });
}
