/**
 * The library intercepts too (issue 13): `NetworkProxy.builder().mitmCa({ certPem, keyPem })`
 * hands it a CA of the embedding app's, and in limited mode with `mitm = true` curl trusting that
 * CA reads from a TLS origin on loopback through the embedded proxy while a POST is refused. A CA
 * that is not one is refused on the first CONNECT (502) and the proxy goes on serving. In-process
 * on Node (the library tests' project).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalCa } from "../../src/core/mitm/ca.ts";
import { NetworkProxy, nodeRuntime, type NetworkProxyHandle } from "../../src/runtimes/node/index.ts";
import { curlHttp, makeTempDir, pollUntil, startTlsOrigin, type TlsOrigin } from "./helpers/index.ts";
import { pythonRequest } from "./helpers/python.ts";

let tmp: { dir: string; remove(): void };
let origin: TlsOrigin;
const handles: NetworkProxyHandle[] = [];

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-lib-mitm-");
  origin = await startTlsOrigin(tmp.dir);
});

afterAll(async () => {
  await Promise.allSettled(handles.map((h) => h.shutdown()));
  await origin?.close();
  tmp?.remove();
});

/** The embedded proxies' environment: the origin's CA, and a CODEX_HOME of the test's (never the real one). */
function testEnv(): Record<string, string> {
  return { CODEX_CA_CERTIFICATE: origin.caPath, CODEX_HOME: join(tmp.dir, "codex-home") };
}

/** An embedded proxy in limited mode with interception, trusting the origin's CA. */
async function embedded(ca: { certPem: string; keyPem: string }): Promise<NetworkProxyHandle> {
  const runtime = { ...nodeRuntime, env: (n: string) => testEnv()[n] };
  const proxy = await NetworkProxy.builder(runtime)
    .config({ mode: "limited", mitm: true, allowed_domains: ["localhost"] })
    .httpAddr("127.0.0.1:0")
    .mitmCa(ca)
    .build();
  const handle = await proxy.run();
  handles.push(handle);
  return handle;
}

describe("the library with mitmCa(…)", () => {
  it("requests inside an intercepted tunnel keep the per-command attribution of its CONNECT (envFor)", async () => {
    const appCa = await LocalCa.generate();
    const caFile = join(tmp.dir, "attr-ca.pem");
    writeFileSync(caFile, appCa.certPem);
    const seen: { method?: string; command?: string }[] = [];
    const runtime = { ...nodeRuntime, env: (n: string) => testEnv()[n] };
    const proxy = await NetworkProxy.builder(runtime)
      .config({ mode: "limited", mitm: true, allowed_domains: [], allow_local_binding: true })
      .httpAddr("127.0.0.1:0")
      .mitmCa({ certPem: appCa.certPem, keyPem: appCa.keyPem })
      .policyDecider((req) => {
        seen.push({ method: req.method, command: req.command });
        return { decision: "allow" };
      })
      .build();
    const h = await proxy.run();
    handles.push(h);
    const env = h.envFor({ command: "pip install attributed" });
    const r = await curlHttp(["-x", env.HTTPS_PROXY!, "--cacert", caFile, `https://localhost:${origin.port}/attributed`]);
    expect(r.status, r.stderr).toBe(200);
    expect(seen).toEqual([
      { method: "CONNECT", command: "pip install attributed" },
      { method: "GET", command: "pip install attributed" },
    ]);
  });

  it("intercepts with the app's CA: GET reaches the TLS origin, POST is refused", async () => {
    const appCa = await LocalCa.generate();
    const caFile = join(tmp.dir, "app-ca.pem");
    writeFileSync(caFile, appCa.certPem);
    const h = await embedded({ certPem: appCa.certPem, keyPem: appCa.keyPem });
    const via = ["-x", `http://127.0.0.1:${h.addresses.http.port}`, "--cacert", caFile];
    const get = await curlHttp([...via, `https://localhost:${origin.port}/lib`]);
    expect(get.status, get.stderr).toBe(200);
    expect(get.text).toBe("origin: GET /lib");
    const post = await curlHttp([...via, "-X", "POST", "-d", "x", `https://localhost:${origin.port}/w`]);
    expect(post.status).toBe(403);
    expect(post.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
  });

  it("a CA that is not one is a 502 on the CONNECT, and the proxy goes on serving", async () => {
    const appCa = await LocalCa.generate();
    const leafAsCa = await appCa.leafFor("not-a-ca.example");
    const h = await embedded({ certPem: leafAsCa.certPem, keyPem: leafAsCa.keyPem });
    const r = await curlHttp(["-x", `http://127.0.0.1:${h.addresses.http.port}`, "-k", `https://localhost:${origin.port}/x`]);
    expect(r.code).not.toBe(0);
    expect(r.stdout.toString("latin1")).toMatch(/^HTTP\/1\.1 502 /);
    const again = await curlHttp(["-x", `http://127.0.0.1:${h.addresses.http.port}`, "-k", `https://localhost:${origin.port}/y`]);
    expect(again.stdout.toString("latin1")).toMatch(/^HTTP\/1\.1 502 /);
  });

  it("env() and envFor() add the CA variables: a bundle of the system roots, the extra CA and the app's CA; Python requests trusts it", async () => {
    const appCa = await LocalCa.generate();
    const home = join(tmp.dir, "lib-home");
    const vars: Record<string, string> = { CODEX_CA_CERTIFICATE: origin.caPath, CODEX_HOME: home };
    const proxy = await NetworkProxy.builder({ ...nodeRuntime, env: (n: string) => vars[n] })
      .config({ mode: "limited", mitm: true, allowed_domains: ["localhost"] })
      .httpAddr("127.0.0.1:0")
      .mitmCa(appCa)
      .build();
    const h = await proxy.run();
    handles.push(h);
    const env = h.env();
    const bundle = env.REQUESTS_CA_BUNDLE!;
    expect(bundle).toMatch(new RegExp(`^${home}/proxy/ca-bundle-[0-9a-f]{16}\\.pem$`));
    for (const name of ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT", "DENO_CERT"]) expect(env[name], name).toBe(bundle);
    expect(h.envFor({ command: "pip install x" }).SSL_CERT_FILE).toBe(bundle);
    const text = readFileSync(bundle, "utf8");
    expect(text).toContain(appCa.certPem.trim());
    expect(text).toContain(readFileSync(origin.caPath, "utf8").trim());
    const system = readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8");
    expect(text.split("BEGIN CERTIFICATE").length).toBe(system.split("BEGIN CERTIFICATE").length + 2);
    const get = await pythonRequest(env, "GET", `https://localhost:${origin.port}/py-lib`);
    expect(get.stdout.split("\n").slice(0, 3), get.stderr).toEqual(["200", "-", "origin: GET /py-lib"]);
    // a bundle for an app's own CA goes at shutdown (one per CA would pile up)
    await h.shutdown();
    expect(existsSync(bundle)).toBe(false);
  });

  it("without interception env() has no CA variable; a reload that turns it on adds them", async () => {
    const home = join(tmp.dir, "lib-home-reload");
    const vars: Record<string, string> = { CODEX_HOME: home };
    const config = { mode: "limited" as const, mitm: false, allowed_domains: ["localhost"] };
    const proxy = await NetworkProxy.builder({ ...nodeRuntime, env: (n: string) => vars[n] })
      .configSource(() => config)
      .httpAddr("127.0.0.1:0")
      .build();
    const h = await proxy.run();
    handles.push(h);
    expect(h.env().SSL_CERT_FILE).toBeUndefined();
    config.mitm = true;
    await proxy.state.reload();
    await pollUntil(() => h.env().SSL_CERT_FILE !== undefined, 10_000, "the CA variables after the reload");
    expect(h.env().SSL_CERT_FILE).toBe(join(home, "proxy", "ca-bundle.pem"));
    expect(readFileSync(join(home, "proxy", "ca-bundle.pem"), "utf8")).toContain(readFileSync(join(home, "proxy", "ca.pem"), "utf8").trim());
    // and a reload that turns interception off takes them away again
    config.mitm = false;
    await proxy.state.reload();
    expect(h.env().SSL_CERT_FILE).toBeUndefined();
    expect(h.envFor({ command: "x" }).NODE_EXTRA_CA_CERTS).toBeUndefined();
    await h.shutdown();
    expect(existsSync(join(home, "proxy", "ca-bundle.pem"))).toBe(true); // the CA kept there keeps its bundle
  });
});
