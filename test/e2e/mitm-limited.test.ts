/**
 * HTTPS in limited mode (issue 13): with `mitm = true` the proxy intercepts CONNECT with a leaf
 * from its local CA (made on first need in `$CODEX_HOME/proxy`, key 0600) and decides each
 * request inside like a plain one: curl trusting the CA gets GET and HEAD answered by the TLS
 * origin (which the proxy verifies through `CODEX_CA_CERTIFICATE`), a POST is a 403
 * `blocked-by-method-policy`, a `Host` naming another host a 400, and a client that does not
 * trust the CA fails its handshake while the proxy goes on serving. Without `mitm`, limited mode
 * refuses CONNECT with `blocked-by-mitm-required`. The `env` command prints the proxy and CA
 * variables (a bundle of the system roots and the CA), with which Python `requests`, curl and
 * Node's fetch through undici's `ProxyAgent` get 200 with no option of their own. On node, bun
 * and deno.
 *
 * The origin is an HTTPS server on 127.0.0.1 with a certificate for `localhost` from a test CA
 * of its own (made by the CA code, checked by OpenSSL in test/unit/mitm-ca.test.ts).
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fetch, ProxyAgent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curl, curlHttp, makeTempDir, networkConfig, type ProxyProcess, RUNTIME, runCli, startProxy, startTlsOrigin, type TlsOrigin } from "./helpers/index.ts";
import { adminJson } from "./helpers/admin.ts";
import { curlWithEnv } from "./helpers/library.ts";
import { pythonRequest as python } from "./helpers/python.ts";

let tmp: { dir: string; remove(): void };
let origin: TlsOrigin;
let proxy: ProxyProcess;
let home: string;

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-mitm-");
  home = join(tmp.dir, "codex-home");
  origin = await startTlsOrigin(tmp.dir);
  mkdirSync(home);
  proxy = await startProxy(networkConfig({ mode: "limited", mitm: true, allowed_domains: ["localhost"] }), {
    env: { CODEX_HOME: home, CODEX_CA_CERTIFICATE: origin.caPath },
    waitForAdmin: true,
  });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await origin?.close();
  tmp?.remove();
});

const url = (path: string) => `https://localhost:${origin.port}${path}`;
const proxyCa = () => join(home, "proxy", "ca.pem");
const via = () => ["-x", `http://127.0.0.1:${proxy.port}`];

describe(`HTTPS in limited mode with mitm = true (${RUNTIME})`, () => {
  it("GET and HEAD reach the TLS origin through the interception; the CA is made on first need, its key 0600", async () => {
    // the first CONNECT makes the CA, so curl cannot trust its file yet: -k for that one only
    const first = await curlHttp([...via(), "-k", url("/first")]);
    expect(first.status, first.stderr).toBe(200);
    const get = await curlHttp([...via(), "--cacert", proxyCa(), url("/read?q=1")]);
    expect(get.status, get.stderr).toBe(200);
    expect(get.text).toBe("origin: GET /read?q=1");
    expect(origin.seen.at(-1)).toEqual({ method: "GET", url: "/read?q=1", host: `localhost:${origin.port}` });
    const head = await curlHttp([...via(), "--cacert", proxyCa(), "-I", url("/head")]);
    expect(head.status).toBe(200);
    expect((statSync(join(home, "proxy", "ca.key")).mode & 0o777).toString(8)).toBe("600");
    expect(readFileSync(proxyCa(), "utf8")).toMatch(/^-----BEGIN CERTIFICATE-----/);
  });

  it("a POST inside the tunnel is refused with 403 blocked-by-method-policy and never reaches the origin", async () => {
    const before = origin.seen.length;
    const post = await curlHttp([...via(), "--cacert", proxyCa(), "-X", "POST", "-d", "x=1", url("/write")]);
    expect(post.status).toBe(403);
    expect(post.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
    expect(JSON.parse(post.text)).toMatchObject({ status: "blocked", reason: "method_not_allowed" });
    expect(origin.seen.length).toBe(before);
  });

  it("a Host naming another host inside the tunnel is a 400 host mismatch", async () => {
    const before = origin.seen.length;
    const r = await curlHttp([...via(), "--cacert", proxyCa(), "-H", "Host: evil.example", url("/x")]);
    expect(r.status).toBe(400);
    expect(r.text).toContain("host mismatch");
    expect(origin.seen.length).toBe(before);
  });

  it("a client that does not trust the CA fails its handshake; the proxy logs why and goes on serving", async () => {
    const r = await curl([...via(), url("/untrusted")]);
    expect(r.code).toBe(60); // curl: peer certificate cannot be authenticated with known CA certificates
    const ok = await curlHttp([...via(), "--cacert", proxyCa(), url("/after")]);
    expect(ok.status).toBe(200);
    // Bun's TLS (BoringSSL over the connection's stream) reports curl's "unknown CA" alert as
    // BAD_PACKET_LENGTH, so there the kind is "other"; the log line still carries its words
    const kinds = RUNTIME === "bun" ? "rejected|closed|other" : "rejected|closed";
    expect(proxy.stderr()).toMatch(new RegExp(`CONNECT localhost:\\d+ for 127\\.0\\.0\\.1:\\d+: TLS handshake with the client failed \\((${kinds})\\): \\S`));
    // and recorded: /blocked shows which host a client would not trust the interception for
    const blocked = await adminJson<{ blocked: { host: string; reason: string; method: string; port: number }[] }>(proxy.adminPort!, "/blocked");
    expect(blocked.blocked).toContainEqual(expect.objectContaining({ host: "localhost", port: origin.port, reason: "mitm_handshake_failed", method: "CONNECT" }));
  });
});

describe(`CA file safety (${RUNTIME})`, () => {
  it.each([
    ["a group-readable key", (key: string) => chmodSync(key, 0o640), "has mode 0640, open to group or others"],
    ["a symlinked key", (key: string) => (renameSync(key, `${key}.real`), symlinkSync(`${key}.real`, key)), "is a symbolic link"],
  ])("%s is refused with its path: the CONNECT gets a 502, the log says why", async (_what, spoil, words) => {
    const unsafeHome = join(tmp.dir, `unsafe-${words.length}`);
    mkdirSync(unsafeHome);
    const made = await runCli(["env", "--config", writeEnvConfig(`unsafe-${words.length}.toml`, 3999)], { env: { CODEX_HOME: unsafeHome } });
    expect(made.code, made.stderr).toBe(0); // made a CA there
    const key = join(unsafeHome, "proxy", "ca.key");
    spoil(key);
    const p = await startProxy(networkConfig({ mode: "limited", mitm: true, allowed_domains: ["localhost"] }), { env: { CODEX_HOME: unsafeHome } });
    try {
      const r = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, "-k", url("/x")]);
      expect(r.stdout.toString("latin1")).toMatch(/^HTTP\/1\.1 502 /);
      expect(r.stdout.toString("latin1")).not.toContain(key); // the details stay in the log
      expect(p.stderr()).toContain(key);
      expect(p.stderr()).toContain(words);
    } finally {
      await p.stop();
    }
  });
});

/** A limited-mode, mitm config file naming a fixed proxy port (what `env` needs), in the temp dir. */
function writeEnvConfig(name: string, port: number): string {
  const file = join(tmp.dir, name);
  writeFileSync(file, networkConfig({ mode: "limited", mitm: true, allowed_domains: ["localhost"], proxy_url: `http://127.0.0.1:${port}` }));
  return file;
}

describe(`limited mode with mitm = false (${RUNTIME})`, () => {
  it("refuses CONNECT with 403 blocked-by-mitm-required", async () => {
    const plain = await startProxy(networkConfig({ mode: "limited", allowed_domains: ["localhost"] }), { env: { CODEX_HOME: home } });
    try {
      const r = await curlHttp(["-p", "-x", `http://127.0.0.1:${plain.port}`, url("/x")]);
      expect(r.status).toBe(403);
      expect(r.headers["x-proxy-error"]).toBe("blocked-by-mitm-required");
      expect(r.stderr).toMatch(/403/);
    } finally {
      await plain.stop();
    }
  });
});

/** `export NAME='value'` lines as a map (values as the shell would read them). */
function parseExports(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.trim().split("\n")) {
    const m = /^export ([A-Za-z_][A-Za-z0-9_]*)='((?:[^']|'\\'')*)'$/.exec(line);
    if (!m) throw new Error(`not an export line: ${line}`);
    vars[m[1]!] = m[2]!.replaceAll("'\\''", "'");
  }
  return vars;
}

describe(`\`codex-network-proxy env\`: clients trust the CA without hand work (${RUNTIME})`, () => {
  let vars: Record<string, string>;

  beforeAll(async () => {
    // the same settings with the proxy's real port (the running one asked for port 0)
    const config = writeEnvConfig("env-config.toml", proxy.port);
    // no CODEX_CA_CERTIFICATE here: the clients must trust the proxy's CA, not the origin's
    const r = await runCli(["env", "--config", config], { env: { CODEX_HOME: home } });
    expect(r.code, r.stderr).toBe(0);
    vars = parseExports(r.stdout);
  }, 30_000);

  it("prints the proxy variables and the CA variables, all pointing at a bundle of the system roots and the CA", () => {
    const bundle = join(home, "proxy", "ca-bundle.pem");
    expect(vars.HTTPS_PROXY).toBe(`http://127.0.0.1:${proxy.port}`);
    expect(vars.NO_PROXY).toBe("");
    for (const name of ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT", "DENO_CERT"]) expect(vars[name], name).toBe(bundle);
    const text = readFileSync(bundle, "utf8");
    const ca = readFileSync(proxyCa(), "utf8").trim();
    expect(text).toContain(ca);
    const system = readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8");
    const certs = (t: string) => t.split("-----BEGIN CERTIFICATE-----").length - 1;
    expect(certs(text)).toBe(certs(system) + 1);
    expect((statSync(bundle).mode & 0o777).toString(8)).toBe("644");
  });

  it("Python requests with those variables gets the origin's answer, and a 403 for a POST", async () => {
    const get = await python(vars, "GET", url("/py?x=1"));
    expect(get.stdout.split("\n").slice(0, 3), get.stderr).toEqual(["200", "-", "origin: GET /py?x=1"]);
    const post = await python(vars, "POST", url("/py"));
    expect(post.stdout.split("\n").slice(0, 2), post.stderr).toEqual(["403", "blocked-by-method-policy"]);
  });

  it("curl with only those variables (CURL_CA_BUNDLE, HTTPS_PROXY) gets 200", async () => {
    const r = await curlWithEnv([url("/curl-env")], vars);
    expect(r.status, r.stderr).toBe(200);
    expect(r.text).toBe("origin: GET /curl-env");
  });

  it("Node fetch through undici's ProxyAgent trusting the bundle gets 200", async () => {
    const agent = new ProxyAgent({ uri: vars.HTTPS_PROXY!, requestTls: { ca: readFileSync(vars.NODE_EXTRA_CA_CERTS!, "utf8") } });
    try {
      const res = await fetch(url("/undici"), { dispatcher: agent });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("origin: GET /undici");
    } finally {
      await agent.close();
    }
  });
});
