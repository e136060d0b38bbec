/**
 * TLS origination on `node:tls`, shared by the Node adapter and the Bun adapter (Bun runs
 * `node:tls` natively): connect to the vetted IP, send SNI and verify the certificate for the
 * request's host name against the system roots plus the configured extra CA.
 *
 * @module
 */
import { isIP } from "node:net";
import * as tls from "node:tls";
import type { Conn, DialOptions, NetAddr, TlsOptions } from "../../core/net/contract.ts";
import { errnoFailure, settleNodeDial } from "./node-dial.ts";

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
  return settleNodeDial(socket, {
    ready: "secureConnect",
    target: addr,
    signal: options?.signal,
    abortDetail: "TLS dial aborted or timed out",
    describe(e) {
      const verify = VERIFY_CODES.has(e.code ?? "") || /certificate/i.test(e.message);
      return verify ? { kind: "tls", detail: `certificate verification failed for ${t.serverName}: ${e.message}` } : errnoFailure(e);
    },
  });
}
