/**
 * The local certificate authority for TLS interception (issue 13; docs/behaviour.md): an ECDSA
 * P-256 CA with a clear subject and a validity of years, and short-lived leaf certificates it
 * issues per host (a DNS name or an IP address in the subject alternative name), kept in a
 * bounded cache. Certificates are built with PKI.js over WebCrypto, so this runs in the
 * runtime-neutral core on Node, Bun and Deno alike.
 *
 * The extensions follow what strict verifiers ask for (Python 3.13's `VERIFY_X509_STRICT`,
 * OpenSSL 3): the CA has critical basic constraints (CA, path length 0), a critical key usage
 * (certificate and CRL signing) and a subject key identifier; a leaf has basic constraints (not
 * a CA), a critical key usage (digital signature), the server-auth extended key usage, its
 * subject alternative name and the CA's key identifier as authority key identifier.
 *
 * @module
 */
import * as asn1js from "asn1js";
import ipaddr from "ipaddr.js";
import * as pkijs from "pkijs";
import { fromPem, toPem } from "./pem.ts";

/** Common name of a CA this proxy creates. */
export const CA_COMMON_NAME = "codex-network-proxy local CA";

/** Validity of a CA this proxy creates: ten years. */
export const CA_VALIDITY_DAYS = 3_650;

/** Validity of a leaf certificate: short, since leaves are made again on demand. */
export const LEAF_VALIDITY_DAYS = 7;

/** A cached leaf this close to its end is replaced by a new one. */
export const LEAF_RENEW_BEFORE_MS = 24 * 60 * 60 * 1000;

/** How far back every certificate's validity starts, for clients whose clocks run behind. */
export const CLOCK_SKEW_MS = 60 * 60 * 1000;

/** Most leaves kept (least recently used dropped first). */
export const LEAF_CACHE_MAX = 1_024;

/** Longest common name X.509 allows (RFC 5280, ub-common-name); longer host names go in the SAN only. */
const MAX_COMMON_NAME_CHARS = 64;

const DAY_MS = 24 * 60 * 60 * 1000;
const EC_KEY: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const EC_IMPORT: EcKeyImportParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGN: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/** Object identifiers used here (RFC 5280 §4.2.1, RFC 4519). */
const OID = {
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

/** A CA that cannot be used: says what is wrong with it. */
export class CaError extends Error {
  override readonly name = "CaError";
}

/** A leaf certificate and its key, as PEM. */
export interface Leaf {
  readonly host: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** End of validity, ms since the epoch. */
  readonly notAfter: number;
}

/** The local CA: its certificate and key, and the leaves it issued. */
export class LocalCa {
  private readonly leaves = new Map<string, Promise<Leaf>>();

  private constructor(
    /** The CA certificate, PEM. */
    readonly certPem: string,
    /** The CA's private key, PKCS#8 PEM. */
    readonly keyPem: string,
    private readonly cert: pkijs.Certificate,
    private readonly key: CryptoKey,
    private readonly keyId: Uint8Array,
    private readonly now: () => number,
  ) {}

  /** A new CA: a fresh P-256 key, subject `CN=codex-network-proxy local CA`, valid ten years. */
  static async generate(now: () => number = Date.now): Promise<LocalCa> {
    const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
    const keyId = await keyIdentifier(keys.publicKey);
    const name = distinguishedName(CA_COMMON_NAME);
    const cert = newCertificate(name, name, now(), CA_VALIDITY_DAYS);
    cert.extensions = [
      extension(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: true, pathLenConstraint: 0 }).toSchema()),
      extension(OID.keyUsage, true, keyUsageBits(0x06, 1)), // keyCertSign (bit 5), cRLSign (bit 6)
      extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyId })),
    ];
    await cert.subjectPublicKeyInfo.importKey(keys.publicKey);
    await cert.sign(keys.privateKey, "SHA-256");
    const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
    return new LocalCa(toPem(cert.toSchema().toBER(false), "CERTIFICATE"), toPem(pkcs8, "PRIVATE KEY"), cert, keys.privateKey, keyId, now);
  }

  /**
   * A CA from its certificate and PKCS#8 key, PEM. Throws {@link CaError} saying what is wrong:
   * unreadable PEM, not a CA certificate, expired, not an ECDSA P-256 key, or a key that does
   * not belong to the certificate.
   */
  static async fromPem(certPem: string, keyPem: string, now: () => number = Date.now): Promise<LocalCa> {
    let cert: pkijs.Certificate;
    try {
      cert = pkijs.Certificate.fromBER(fromPem(certPem, "CERTIFICATE"));
    } catch (e) {
      throw new CaError(`the CA certificate cannot be read: ${(e as Error).message}`, { cause: e });
    }
    const constraints = cert.extensions?.find((x) => x.extnID === OID.basicConstraints)?.parsedValue as pkijs.BasicConstraints | undefined;
    if (constraints?.cA !== true) throw new CaError("the CA certificate is not a CA certificate (no basic constraints with CA set)");
    const notAfter = cert.notAfter.value.getTime();
    if (notAfter <= now()) throw new CaError(`the CA certificate expired on ${cert.notAfter.value.toISOString()}`);
    let key: CryptoKey;
    try {
      key = await crypto.subtle.importKey("pkcs8", fromPem(keyPem, "PRIVATE KEY"), EC_IMPORT, true, ["sign"]);
    } catch (e) {
      throw new CaError(`the CA key is not an ECDSA P-256 key in PKCS#8 PEM: ${(e as Error).message}`, { cause: e });
    }
    const publicKey = await cert.getPublicKey({ algorithm: { algorithm: EC_IMPORT, usages: ["verify"] } });
    const probe = new TextEncoder().encode("codex-network-proxy CA key check");
    const signature = await crypto.subtle.sign(SIGN, key, probe);
    if (!(await crypto.subtle.verify(SIGN, publicKey, signature, probe))) throw new CaError("the CA key does not belong to the CA certificate");
    const ski = cert.extensions?.find((x) => x.extnID === OID.subjectKeyIdentifier)?.parsedValue as asn1js.OctetString | undefined;
    const keyId = ski ? new Uint8Array(ski.valueBlock.valueHexView) : await keyIdentifier(publicKey);
    return new LocalCa(certPem, keyPem, cert, key, keyId, now);
  }

  /** End of the CA's validity, ms since the epoch. */
  get notAfter(): number {
    return this.cert.notAfter.value.getTime();
  }

  /** The CA's subject, e.g. `CN=codex-network-proxy local CA` (other attributes by their OID). */
  get subject(): string {
    return this.cert.subject.typesAndValues.map((t) => `${t.type === OID.commonName ? "CN" : t.type}=${t.value.valueBlock.value}`).join(" + ");
  }

  /** How many leaves are cached. */
  get cachedLeaves(): number {
    return this.leaves.size;
  }

  /**
   * A leaf for `host` (a DNS name, or an IPv4/IPv6 literal without brackets), from the cache
   * unless it is missing or close to its end. Concurrent calls for one host share one issue.
   */
  leafFor(host: string): Promise<Leaf> {
    const key = host.toLowerCase();
    const cached = this.leaves.get(key);
    if (cached) {
      this.leaves.delete(key); // most recently used goes last
      this.leaves.set(key, cached);
      return cached.then((leaf) => (leaf.notAfter - this.now() > LEAF_RENEW_BEFORE_MS ? leaf : this.issue(key)));
    }
    return this.issue(key);
  }

  private issue(host: string): Promise<Leaf> {
    const made = this.makeLeaf(host);
    this.leaves.delete(host);
    this.leaves.set(host, made);
    made.catch(() => this.leaves.get(host) === made && this.leaves.delete(host)); // a failure is not cached
    while (this.leaves.size > LEAF_CACHE_MAX) this.leaves.delete(this.leaves.keys().next().value!);
    return made;
  }

  private async makeLeaf(host: string): Promise<Leaf> {
    const isIp = ipaddr.isValid(host);
    // the policy's own host grammar (labels of letters, digits, "-" and "_"): what it allows gets a leaf
    if (!isIp && !/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?$/.test(host)) {
      throw new CaError(`no certificate for ${JSON.stringify(host)}: not a DNS name or an IP address`);
    }
    const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
    const cert = newCertificate(distinguishedName(host.length <= MAX_COMMON_NAME_CHARS ? host : undefined), this.cert.subject, this.now(), LEAF_VALIDITY_DAYS);
    const name = isIp
      ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: new Uint8Array(ipaddr.parse(host).toByteArray()) }) })
      : new pkijs.GeneralName({ type: 2, value: host });
    cert.extensions = [
      extension(OID.basicConstraints, false, new pkijs.BasicConstraints({ cA: false }).toSchema()),
      extension(OID.keyUsage, true, keyUsageBits(0x80, 7)), // digitalSignature (bit 0)
      extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth] }).toSchema()),
      extension(OID.subjectAltName, host.length > MAX_COMMON_NAME_CHARS, new pkijs.GeneralNames({ names: [name] }).toSchema()),
      extension(OID.authorityKeyIdentifier, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: this.keyId }) }).toSchema()),
    ];
    await cert.subjectPublicKeyInfo.importKey(keys.publicKey);
    await cert.sign(this.key, "SHA-256");
    const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
    return {
      host,
      certPem: toPem(cert.toSchema().toBER(false), "CERTIFICATE"),
      keyPem: toPem(pkcs8, "PRIVATE KEY"),
      notAfter: cert.notAfter.value.getTime(),
    };
  }
}

/** A certificate with a random positive serial and the validity window from `now`. */
function newCertificate(subject: pkijs.RelativeDistinguishedNames, issuer: pkijs.RelativeDistinguishedNames, now: number, days: number): pkijs.Certificate {
  const cert = new pkijs.Certificate();
  cert.version = 2; // X.509 v3
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive, and no leading zero byte
  cert.serialNumber = new asn1js.Integer({ valueHex: serial });
  cert.subject = subject;
  cert.issuer = issuer;
  cert.notBefore.value = new Date(now - CLOCK_SKEW_MS);
  cert.notAfter.value = new Date(now + days * DAY_MS);
  return cert;
}

/**
 * `CN=…`, or an empty name (a leaf for a host name too long for a common name). One attribute
 * only: PKI.js puts all of a name's attributes into one multi-valued RDN (`CN=… + O=…`).
 */
function distinguishedName(commonName?: string): pkijs.RelativeDistinguishedNames {
  const name = new pkijs.RelativeDistinguishedNames();
  if (commonName !== undefined) name.typesAndValues.push(new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: commonName }) }));
  return name;
}

function extension(extnID: string, critical: boolean, value: asn1js.BaseBlock): pkijs.Extension {
  return new pkijs.Extension({ extnID, critical, extnValue: value.toBER(false) });
}

/** A key-usage BIT STRING of one byte, `unused` low bits unused (RFC 5280 §4.2.1.3). */
function keyUsageBits(byte: number, unused: number): asn1js.BitString {
  return new asn1js.BitString({ valueHex: new Uint8Array([byte]), unusedBits: unused });
}

/** Key identifier: SHA-1 of the public key's bits (RFC 5280 §4.2.1.2, method 1). */
async function keyIdentifier(publicKey: CryptoKey): Promise<Uint8Array> {
  const raw = await crypto.subtle.exportKey("raw", publicKey);
  return new Uint8Array(await crypto.subtle.digest("SHA-1", raw));
}
