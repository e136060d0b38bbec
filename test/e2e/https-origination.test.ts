/**
 * Absolute-form `GET https://…` through the proxy (no CONNECT): the proxy originates TLS to an
 * HTTPS origin on 127.0.0.1 whose certificate comes from a test CA generated here with openssl.
 * Trusted through `CODEX_CA_CERTIFICATE` (or `SSL_CERT_FILE`) the request succeeds; without it
 * the answer is a 502 that names the certificate failure. Limited mode still applies.
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { type AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, networkConfig, type ProxyProcess, requestOnce, startProxy } from "./helpers/index.ts";

const run = promisify(execFile);
let tmp: { dir: string; remove(): void };
let origin: Server;
let port: number;
let caPath: string;
const proxies: ProxyProcess[] = [];

/** A CA and a server certificate for 127.0.0.1 and localhost, made with openssl. */
async function makeCertificates(dir: string): Promise<void> {
  const o = (...args: string[]) => run("openssl", args, { cwd: dir, timeout: 30_000 });
  await o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=codex-network-proxy test CA");
  await o("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await o("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf");
}

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-tls-");
  await makeCertificates(tmp.dir);
  caPath = join(tmp.dir, "ca.pem");
  origin = createServer({ key: readFileSync(join(tmp.dir, "server.key")), cert: readFileSync(join(tmp.dir, "server.pem")) }, (req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`secure ${req.method} ${req.url}`);
  });
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", () => r()));
  port = (origin.address() as AddressInfo).port;
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await new Promise((r) => origin?.close(r));
  tmp?.remove();
});

async function proxyWith(env: Record<string, string>, config: Record<string, unknown> = {}): Promise<ProxyProcess> {
  const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], ...config }), { env });
  proxies.push(p);
  return p;
}

const get = (method = "GET", path = "/hello?x=1") => `${method} https://127.0.0.1:${port}${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 0\r\n\r\n`;

describe("absolute-form https:// (TLS originated by the proxy)", () => {
  it("trusted through CODEX_CA_CERTIFICATE: the request reaches the HTTPS origin", async () => {
    const p = await proxyWith({ CODEX_CA_CERTIFICATE: caPath });
    const r = await requestOnce(p.port, get());
    expect(r.status, r.text).toBe(200);
    expect(r.text).toBe("secure GET /hello?x=1");
  });

  it("trusted through SSL_CERT_FILE as well", async () => {
    const p = await proxyWith({ SSL_CERT_FILE: caPath });
    expect((await requestOnce(p.port, get())).status).toBe(200);
  });

  it("without the CA: 502 that says the certificate could not be verified", async () => {
    const p = await proxyWith({});
    const r = await requestOnce(p.port, get());
    expect(r.status).toBe(502);
    expect(r.text).toMatch(/^upstream failure: .*certificate verification failed for 127\.0\.0\.1/);
  });

  it("limited mode: GET passes, POST is refused before any TLS", async () => {
    const p = await proxyWith({ CODEX_CA_CERTIFICATE: caPath }, { mode: "limited" });
    expect((await requestOnce(p.port, get())).status).toBe(200);
    const post = await requestOnce(p.port, get("POST"));
    expect(post.status).toBe(403);
    expect(post.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
  });

  it("the policy decides the https target like any other (not allowlisted → 403)", async () => {
    const p = await proxyWith({ CODEX_CA_CERTIFICATE: caPath });
    const r = await requestOnce(p.port, `GET https://not-listed.invalid/ HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ reason: "not_allowed", port: 443 });
  });
});
