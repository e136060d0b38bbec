/**
 * Request hooks (issue 13 item 5, docs/behaviour.md §5.19) in full mode: the hooked host's
 * CONNECTs are intercepted, a request matching a hook reaches the origin with the secret injected
 * as `Authorization` (the client never sent it; a client's own value is replaced) and its
 * `Cookie` stripped; a request matching no hook is a 403 `blocked-by-mitm-hook`; a host without
 * hooks stays an opaque tunnel (the client checks the origin's own certificate). The secret is in
 * no log line (debug level), no audit record and no admin response. A hook whose secret is unset
 * stops startup with the hook and key named. On node, bun and deno.
 *
 * Two TLS origins on 127.0.0.1: `localhost` (hooked) and `127.0.0.1` (not hooked), each with a
 * certificate from its own test CA.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminJson } from "./helpers/admin.ts";
import { curl, curlHttp, makeTempDir, networkConfig, type ProxyProcess, RUNTIME, startProxy, startTlsOrigin, type TlsOrigin } from "./helpers/index.ts";
import { allRecords, type OtlpReceiver, startOtlpReceiver } from "./helpers/otlp.ts";

const SECRET = "hook-secret-7f3a9c1e5b";

let tmp: { dir: string; remove(): void };
let hooked: TlsOrigin;
let plain: TlsOrigin;
let proxy: ProxyProcess;
let receiver: OtlpReceiver;
let home: string;

const HOOKS = `
[[network.mitm_hooks]]
host = "localhost"
match = { methods = ["GET", "POST"], path_prefixes = ["/api/"] }
actions.strip_request_headers = ["cookie"]
actions.inject_request_headers = [{ name = "authorization", secret_env_var = "E2E_HOOK_TOKEN", prefix = "Bearer " }]

[[network.mitm_hooks]]
host = "localhost"
match = { methods = ["GET"], path_prefixes = ["pattern:/public/*/"] }
`;

function config(): string {
  return (
    networkConfig({ mode: "full", mitm: true, allowed_domains: ["localhost", "127.0.0.1"] }) +
    HOOKS +
    `\n[otel]\nexporter = { otlp-http = { endpoint = "${receiver.endpoint}", protocol = "json" } }\n`
  );
}

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-hooks-");
  home = join(tmp.dir, "codex-home");
  mkdirSync(home);
  [hooked, plain, receiver] = await Promise.all([startTlsOrigin(tmp.dir), startTlsOrigin(tmp.dir, "127.0.0.1"), startOtlpReceiver()]);
  proxy = await startProxy(config(), {
    env: { CODEX_HOME: home, CODEX_CA_CERTIFICATE: hooked.caPath, E2E_HOOK_TOKEN: SECRET, RUST_LOG: "debug" },
    waitForAdmin: true,
  });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await Promise.allSettled([hooked?.close(), plain?.close(), receiver?.close()]);
  tmp?.remove();
});

const url = (path: string) => `https://localhost:${hooked.port}${path}`;
const proxyCa = () => join(home, "proxy", "ca.pem");
const via = () => ["-x", `http://127.0.0.1:${proxy.port}`];

describe(`request hooks in full mode (${RUNTIME})`, () => {
  it("a matching request reaches the origin with the secret injected and the cookie stripped; the client never had it", async () => {
    // the first intercepted CONNECT makes the CA, so curl cannot trust its file yet: -k for that one only
    const first = await curlHttp([...via(), "-k", url("/api/first")]);
    expect(first.status, first.stderr).toBe(200);
    const post = await curlHttp([...via(), "--cacert", proxyCa(), "-v", "-H", "Cookie: session=abc", "-X", "POST", "-d", "x=1", url("/api/items?x=1")]);
    expect(post.status, post.stderr).toBe(200);
    expect(post.text).toBe("origin: POST /api/items?x=1");
    expect(hooked.seen.at(-1)).toEqual({ method: "POST", url: "/api/items?x=1", host: `localhost:${hooked.port}`, authorization: `Bearer ${SECRET}` });
    expect(post.stderr).not.toContain(SECRET); // curl -v shows every header it sent and got
  });

  it("a client's own Authorization is replaced by the injected one", async () => {
    const r = await curlHttp([...via(), "--cacert", proxyCa(), "-H", "Authorization: Bearer client-own", url("/api/me")]);
    expect(r.status).toBe(200);
    expect(hooked.seen.at(-1)?.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("the second hook (a glob, no actions) lets its requests through untouched", async () => {
    const r = await curlHttp([...via(), "--cacert", proxyCa(), url("/public/docs/index.html")]);
    expect(r.status).toBe(200);
    expect(hooked.seen.at(-1)).toEqual({ method: "GET", url: "/public/docs/index.html", host: `localhost:${hooked.port}` });
  });

  it.each([
    ["a method no hook allows", ["-X", "DELETE"], "/api/items"],
    ["a path no hook covers", [], "/admin"],
    ["a path the glob does not reach (its * stops at a /)", [], "/public/readme"],
    ["a path walking out of a prefix", ["--path-as-is"], "/api/../admin"],
    ["a path cut short by a # after ..", ["--request-target", "/api/..#x"], "/api/x"],
    ["a ..; segment", ["--path-as-is"], "/api/..;/admin"],
  ])("%s is refused with 403 blocked-by-mitm-hook and never reaches the origin", async (_what, args, path) => {
    const before = hooked.seen.length;
    const r = await curlHttp([...via(), "--cacert", proxyCa(), ...args, url(path)]);
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-mitm-hook");
    expect(JSON.parse(r.text)).toMatchObject({ status: "blocked", reason: "mitm_hook_denied", host: "localhost", port: hooked.port });
    expect(hooked.seen.length).toBe(before);
  });

  it("a host without hooks is an opaque tunnel: the client verifies the origin's own certificate", async () => {
    const r = await curlHttp([...via(), "--cacert", plain.caPath, `https://127.0.0.1:${plain.port}/opaque`]);
    expect(r.status, r.stderr).toBe(200);
    expect(r.text).toBe("origin: GET /opaque");
    // the proxy's CA alone is not enough there: nothing was intercepted
    const withProxyCa = await curl([...via(), "--cacert", proxyCa(), `https://127.0.0.1:${plain.port}/opaque`]);
    expect(withProxyCa.code).toBe(60);
  });

  it("the secret appears in no admin response, no log line and no audit record", async () => {
    const cfg = await adminJson<{ network: { mitm_hooks: unknown[] } }>(proxy.adminPort!, "/config");
    expect(cfg.network.mitm_hooks).toHaveLength(2);
    expect(JSON.stringify(cfg)).toContain("E2E_HOOK_TOKEN"); // where it comes from is shown
    const blocked = await adminJson<{ blocked: { reason: string }[] }>(proxy.adminPort!, "/blocked");
    expect(blocked.blocked.some((b) => b.reason === "mitm_hook_denied")).toBe(true);
    for (const body of [cfg, blocked]) expect(JSON.stringify(body)).not.toContain(SECRET);
    await proxy.stop(); // flushes the audit export
    const records = allRecords(receiver);
    expect(records.some((r) => r.attributes["network.policy.reason"] === "mitm_hook_denied" && r.attributes["network.policy.scope"] === "proxy_state")).toBe(true);
    expect(receiver.posts.length).toBeGreaterThan(0);
    for (const post of receiver.posts) expect(post.body.toString("latin1")).not.toContain(SECRET);
    expect(proxy.stderr()).toContain("intercepted for 127.0.0.1:");
    expect(proxy.stderr()).not.toContain(SECRET);
  });
});

describe(`hook configuration errors (${RUNTIME})`, () => {
  it("a hook whose secret variable is unset stops startup, naming the hook and key", async () => {
    const text = networkConfig({ mitm: true, allowed_domains: ["localhost"] }) + HOOKS;
    const started = startProxy(text, { env: { CODEX_HOME: home } });
    await expect(started).rejects.toThrow(/network\.mitm_hooks\[0\]\.actions\.inject_request_headers\[0\]\.secret_env_var: environment variable E2E_HOOK_TOKEN is not set or empty/);
  });
});
