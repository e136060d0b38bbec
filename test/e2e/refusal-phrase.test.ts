/**
 * Refusals that real clients show: Python (what pip prints) and wget print a refused request's
 * status line, so its reason phrase says what happened and to which host. curl prints only the
 * code; the `x-proxy-error` header and the body stay as they were for every client.
 *
 * Needs python3 and wget (`.ci/run` installs them). Network: loopback only; refused names are
 * under `.invalid` and never resolved.
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { networkConfig, type ProxyProcess, proxyFreeEnv, startProxy } from "./helpers/index.ts";

let proxy: ProxyProcess;

beforeAll(async () => {
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], denied_domains: ["denied.invalid"] }));
});

afterAll(async () => {
  await proxy?.stop();
});

/** Run a command to completion (bounded); its exit code and both outputs. */
function run(command: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 20_000, env: proxyFreeEnv() }, (err, stdout, stderr) => {
      const code: unknown = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== "number") return reject(err ?? new Error(`${command} failed`));
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

const PYTHON_GET = `
import sys, urllib.request
proxy = sys.argv[1]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
try:
    opener.open(sys.argv[2], timeout=10)
except Exception as e:
    print(e)
`;

describe("the reason phrase of a refusal", () => {
  it("Python's urllib (what pip shows) names the host and why for a refused HTTPS tunnel", async () => {
    const r = await run("python3", ["-c", PYTHON_GET, proxy.url, "https://refused.invalid/"]);
    expect(r.out).toContain("Tunnel connection failed: 403 Blocked by network policy: refused.invalid is not in the allowlist");
  });

  it("Python's urllib names a denylisted host for a plain request", async () => {
    const r = await run("python3", ["-c", PYTHON_GET, proxy.url, "http://denied.invalid/"]);
    expect(r.out).toContain("HTTP Error 403: Blocked by network policy: denied.invalid is on the denylist");
  });

  it("wget names the host and why, for plain requests and tunnels", async () => {
    const plain = await run("wget", ["-O", "-", "-e", "use_proxy=yes", "-e", `http_proxy=${proxy.url}`, "http://refused.invalid/"]);
    expect(plain.code).not.toBe(0);
    expect(plain.out).toContain("ERROR 403: Blocked by network policy: refused.invalid is not in the allowlist.");
    const tunnel = await run("wget", ["-O", "-", "-e", "use_proxy=yes", "-e", `https_proxy=${proxy.url}`, "https://refused.invalid/"]);
    expect(tunnel.code).not.toBe(0);
    expect(tunnel.out).toContain("Proxy tunneling failed: Blocked by network policy: refused.invalid is not in the allowlist");
  });

  it("a local literal says so", async () => {
    const r = await run("python3", ["-c", PYTHON_GET, proxy.url, "https://127.0.0.2:9/"]);
    expect(r.out).toContain("Tunnel connection failed: 403 Blocked by network policy: 127.0.0.2 is or resolves to a local or private network address");
  });
});
