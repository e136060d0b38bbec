/**
 * The local CA for TLS interception (src/core/mitm/ca.ts, pem.ts): what it creates is checked
 * by OpenSSL itself (`openssl x509 -text`, `openssl verify -x509_strict -purpose sslserver`) and
 * by a real TLS handshake on loopback; leaves per DNS name and per IP address, the bounded cache
 * and renewal near expiry (with a clock the test moves), loading a CA back from PEM, and every
 * way a CA can be refused, each naming what is wrong.
 */
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CA_COMMON_NAME,
  CA_VALIDITY_DAYS,
  CaError,
  LEAF_CACHE_MAX,
  LEAF_RENEW_BEFORE_MS,
  LEAF_VALIDITY_DAYS,
  LocalCa,
} from "../../src/core/mitm/ca.ts";
import { fromPem, PemError, toPem } from "../../src/core/mitm/pem.ts";

const DAY = 24 * 60 * 60 * 1000;
let dir: string;
let ca: LocalCa;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cnp-ca-"));
  ca = await LocalCa.generate();
  writeFileSync(join(dir, "ca.pem"), ca.certPem);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `openssl x509 -text` of a PEM certificate. */
function x509Text(pem: string): string {
  return execFileSync("openssl", ["x509", "-noout", "-text"], { input: pem, encoding: "utf8" });
}

/** `openssl verify` of `leafPem` against the CA, strict, for TLS servers; its output. */
function verify(leafPem: string, caPem = ca.certPem): string {
  const leafPath = join(dir, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  const caPath = join(dir, `ca-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(leafPath, leafPem);
  writeFileSync(caPath, caPem);
  return execFileSync("openssl", ["verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", caPath, leafPath], { encoding: "utf8" });
}

describe("PEM", () => {
  it("round-trips bytes of any length, in 64-character lines", () => {
    for (const n of [1, 2, 3, 47, 48, 49, 100_000]) {
      const bytes = crypto.getRandomValues(new Uint8Array(Math.min(n, 65_536)));
      const pem = toPem(bytes, "CERTIFICATE");
      expect(pem.split("\n").every((l) => l.length <= 64)).toBe(true);
      expect(fromPem(`junk before\n${pem}junk after`, "CERTIFICATE")).toEqual(bytes);
    }
  });

  it("says what is missing or broken", () => {
    expect(() => fromPem("nothing here", "PRIVATE KEY")).toThrow(PemError);
    expect(() => fromPem("nothing here", "PRIVATE KEY")).toThrow('no "-----BEGIN PRIVATE KEY-----" … "-----END PRIVATE KEY-----" block found');
    expect(() => fromPem("-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n", "CERTIFICATE")).toThrow("the CERTIFICATE block is not valid base64");
    expect(() => fromPem("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "CERTIFICATE")).toThrow("the CERTIFICATE block is empty");
  });
});

describe("LocalCa.generate", () => {
  it("makes an ECDSA P-256 CA with a clear subject, ten years of validity and the CA extensions", () => {
    const text = x509Text(ca.certPem);
    expect(text).toMatch(new RegExp(`Subject: CN = ${CA_COMMON_NAME}\n`));
    expect(text).toMatch(new RegExp(`Issuer: CN = ${CA_COMMON_NAME}\n`));
    expect(text).toContain("ASN1 OID: prime256v1");
    expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain("X509v3 Subject Key Identifier");
    expect(ca.subject).toBe(`CN=${CA_COMMON_NAME}`);
    const years = (ca.notAfter - Date.now()) / DAY / 365;
    expect(years).toBeGreaterThan(CA_VALIDITY_DAYS / 365 - 0.01);
    expect(CA_VALIDITY_DAYS).toBeGreaterThanOrEqual(365 * 5);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });
});

describe("leaves", () => {
  it("a DNS name: verified by OpenSSL as a TLS server certificate, short-lived, with the CA as authority", async () => {
    const leaf = await ca.leafFor("api.example.test");
    expect(verify(leaf.certPem)).toMatch(/: OK\n$/);
    const text = x509Text(leaf.certPem);
    expect(text).toMatch(/X509v3 Subject Alternative Name: \s+DNS:api\.example\.test/);
    expect(text).toContain("Subject: CN = api.example.test");
    expect(text).toMatch(/X509v3 Basic Constraints: \s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Server Authentication/);
    expect(text).toContain("X509v3 Authority Key Identifier");
    const days = (leaf.notAfter - Date.now()) / DAY;
    expect(days).toBeGreaterThan(LEAF_VALIDITY_DAYS - 0.01);
    expect(days).toBeLessThanOrEqual(LEAF_VALIDITY_DAYS);
  });

  it.each([
    ["127.0.0.1", "IP Address:127.0.0.1"],
    ["::1", "IP Address:0:0:0:0:0:0:0:1"],
  ])("an IP address (%s) goes in the SAN as an IP address", async (host, san) => {
    const leaf = await ca.leafFor(host);
    expect(verify(leaf.certPem)).toMatch(/: OK\n$/);
    expect(x509Text(leaf.certPem)).toMatch(new RegExp(`X509v3 Subject Alternative Name: \\s+${san.replace(/[.:]/g, "\\$&")}`));
  });

  it("a host name longer than a common name may be has its name in the SAN only (critical)", async () => {
    const long = `${"a".repeat(60)}.example.test`;
    const leaf = await ca.leafFor(long);
    expect(verify(leaf.certPem)).toMatch(/: OK\n$/);
    const text = x509Text(leaf.certPem);
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s+DNS:a{60}\.example\.test/);
    expect(text).not.toContain("Subject: CN");
  });

  it("a real TLS handshake: a client that trusts the CA accepts the leaf for its server name", async () => {
    const leaf = await ca.leafFor("localhost");
    const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end("hello over tls"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const got = await new Promise<string>((resolve, reject) => {
        const c = connect({ host: "127.0.0.1", port, servername: "localhost", ca: ca.certPem }, () => undefined);
        let text = "";
        c.on("data", (d: Buffer) => (text += d.toString()));
        c.on("end", () => resolve(text));
        c.on("error", reject);
      });
      expect(got).toBe("hello over tls");
      // a client that does not trust the CA refuses it
      await expect(
        new Promise((resolve, reject) => {
          const c = connect({ host: "127.0.0.1", port, servername: "localhost" }, () => resolve("connected"));
          c.on("error", reject);
        }),
      ).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
    } finally {
      server.close();
    }
  });

  it("refuses what is neither a DNS name nor an IP address, naming it", async () => {
    await expect(ca.leafFor("bad host")).rejects.toThrow(CaError);
    await expect(ca.leafFor("bad host")).rejects.toThrow('no certificate for "bad host": not a DNS name or an IP address');
  });
});

describe("the leaf cache", () => {
  it("gives the same leaf for a host (case-insensitively) and shares one issue between concurrent calls", async () => {
    const fresh = await LocalCa.generate();
    const [a, b] = await Promise.all([fresh.leafFor("same.example.test"), fresh.leafFor("SAME.example.test")]);
    expect(b).toBe(a);
    expect(await fresh.leafFor("same.example.test")).toBe(a);
    expect(fresh.cachedLeaves).toBe(1);
  });

  it("replaces a leaf close to its end", async () => {
    let now = Date.now();
    const fresh = await LocalCa.generate(() => now);
    const first = await fresh.leafFor("renew.example.test");
    now += LEAF_VALIDITY_DAYS * DAY - LEAF_RENEW_BEFORE_MS - 60_000; // still a minute before the renewal point
    expect(await fresh.leafFor("renew.example.test")).toBe(first);
    now += 120_000;
    const second = await fresh.leafFor("renew.example.test");
    expect(second).not.toBe(first);
    expect(second.notAfter).toBeGreaterThan(first.notAfter);
  });

  it(`keeps at most ${LEAF_CACHE_MAX} leaves, dropping the least recently used`, async () => {
    const fresh = await LocalCa.generate();
    const first = await fresh.leafFor("h0.example.test");
    for (let i = 1; i < LEAF_CACHE_MAX; i++) await fresh.leafFor(`h${i}.example.test`);
    expect(await fresh.leafFor("h0.example.test")).toBe(first); // used again: now the most recent
    await fresh.leafFor("one-more.example.test");
    expect(fresh.cachedLeaves).toBe(LEAF_CACHE_MAX);
    expect(await fresh.leafFor("h0.example.test")).toBe(first); // kept
    await fresh.leafFor("h1.example.test"); // was the least recently used: dropped, made again
    expect(fresh.cachedLeaves).toBe(LEAF_CACHE_MAX);
  }, 60_000);
});

describe("on Bun and Deno (the CA lives in the runtime-neutral core)", () => {
  const script = (caModule: string) =>
    `const { LocalCa } = await import(${JSON.stringify(caModule)});
const ca = await LocalCa.generate();
const leaf = await ca.leafFor("127.0.0.1");
const again = await LocalCa.fromPem(ca.certPem, ca.keyPem);
const other = await again.leafFor("bun-or-deno.example.test");
console.log(JSON.stringify({ ca: ca.certPem, leaf: leaf.certPem, other: other.certPem }));`;
  it.each([
    ["bun", (file: string) => [join(process.cwd(), "node_modules/.bin/bun"), [file]] as const],
    ["deno", (file: string) => [join(process.cwd(), "node_modules/deno/deno"), ["run", "-A", "--quiet", file]] as const],
  ])("%s makes a CA and leaves OpenSSL verifies", (_name, command) => {
    const file = join(process.cwd(), `.ca-check-${process.pid}-${_name}.mts`);
    writeFileSync(file, script(join(process.cwd(), "src/core/mitm/ca.ts")));
    try {
      const [bin, args] = command(file);
      const out = JSON.parse(execFileSync(bin, [...args], { encoding: "utf8", env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" } })) as Record<string, string>;
      expect(verify(out.leaf!, out.ca!)).toMatch(/: OK\n$/);
      expect(verify(out.other!, out.ca!)).toMatch(/: OK\n$/);
      expect(x509Text(out.leaf!)).toMatch(/IP Address:127\.0\.0\.1/);
    } finally {
      rmSync(file, { force: true });
    }
  }, 30_000);
});

describe("LocalCa.fromPem", () => {
  it("loads a CA back: its leaves verify against the same certificate", async () => {
    const loaded = await LocalCa.fromPem(ca.certPem, ca.keyPem);
    expect(loaded.subject).toBe(ca.subject);
    expect(verify((await loaded.leafFor("reloaded.example.test")).certPem)).toMatch(/: OK\n$/);
  });

  it("refuses unreadable PEM, a certificate that is no CA, an expired CA, a foreign or non-P-256 key", async () => {
    const other = await LocalCa.generate();
    const leaf = await ca.leafFor("not-a-ca.example.test");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    await expect(LocalCa.fromPem("garbage", ca.keyPem)).rejects.toThrow(/^the CA certificate cannot be read: no "-----BEGIN CERTIFICATE-----"/);
    await expect(LocalCa.fromPem(leaf.certPem, leaf.keyPem)).rejects.toThrow("the CA certificate is not a CA certificate (no basic constraints with CA set)");
    await expect(LocalCa.fromPem(ca.certPem, ca.keyPem, () => ca.notAfter + 1)).rejects.toThrow(/^the CA certificate expired on \d{4}-/);
    await expect(LocalCa.fromPem(ca.certPem, other.keyPem)).rejects.toThrow("the CA key does not belong to the CA certificate");
    await expect(LocalCa.fromPem(ca.certPem, rsa)).rejects.toThrow(/^the CA key is not an ECDSA P-256 key in PKCS#8 PEM/);
    await expect(LocalCa.fromPem(ca.certPem, "garbage")).rejects.toThrow(CaError);
  });
});
