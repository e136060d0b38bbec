/**
 * The standalone command line (docs/behaviour.md §1): --help, --version, enabled = false, config
 * errors with exit code 2, CODEX_HOME, listener clamping and shutdown on signals.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  curlHttp,
  type EchoReply,
  makeTempDir,
  networkConfig,
  type Origin,
  type ProxyProcess,
  RawClient,
  runCli,
  RUNTIME,
  startEchoServer,
  startOrigin,
  startProxy,
  type TcpServer,
  withDeadline,
} from "./helpers/index.ts";

let origin: Origin;
let echo: TcpServer;
const temps: { remove(): void }[] = [];
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  [origin, echo] = await Promise.all([startOrigin(), startEchoServer()]);
});

afterEach(async () => {
  await Promise.allSettled(proxies.splice(0).map((p) => p.stop("SIGKILL")));
  for (const t of temps.splice(0)) t.remove();
});

afterAll(async () => {
  await Promise.allSettled([origin?.close(), echo?.close()]);
});

/** Write `text` as config.toml into a fresh temp dir; returns the dir and file path. */
function configFile(text: string): { dir: string; file: string } {
  const t = makeTempDir("cnp-e2e-cli-");
  temps.push(t);
  const file = join(t.dir, "config.toml");
  writeFileSync(file, text);
  return { dir: t.dir, file };
}

describe(`runtime under test: ${RUNTIME}`, () => {
  it("the spawned proxy really runs on this project's runtime", async () => {
    const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
    proxies.push(p);
    expect(p.stderr()).toMatch(new RegExp(`codex-network-proxy \\S+ on ${RUNTIME} `));
  });
});

describe("CLI basics", () => {
  it("--help exits 0 and prints usage", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/usage/i);
    expect(r.stdout).toContain("--config");
  });

  it("--version prints `codex-network-proxy 0.1.0` and exits 0", async () => {
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("codex-network-proxy 0.1.0");
  });

  it("an unknown argument is a usage error (exit 2)", async () => {
    const r = await runCli(["--no-such-flag"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--no-such-flag");
  });
});

describe("the env command", () => {
  it("prints export lines for the configured listeners; without mitm, no CA variable and no CA made", async () => {
    const t = makeTempDir("cnp-e2e-cli-");
    temps.push(t);
    const { file } = configFile(`[network]\nenabled = true\nproxy_url = "http://127.0.0.1:3999"\nenable_socks5 = true\nsocks_url = "127.0.0.1:4999"\n`);
    const r = await runCli(["env", "--config", file], { env: { CODEX_HOME: t.dir } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("export HTTPS_PROXY='http://127.0.0.1:3999'\n");
    expect(r.stdout).toContain("export ALL_PROXY='socks5h://127.0.0.1:4999'\n");
    expect(r.stdout).toContain("export NO_PROXY=''\n");
    expect(r.stdout).not.toContain("SSL_CERT_FILE");
    expect(existsSync(join(t.dir, "proxy"))).toBe(false);
  });

  it.each([
    ['proxy_url = "http://127.0.0.1:0"', "network.proxy_url has port 0, which is picked when the proxy starts: env needs a fixed port"],
    ["enabled = false", "network.enabled is false: there is no proxy to point at"],
  ])("%s is exit 2 with the reason", async (line, message) => {
    const { file } = configFile(`[network]\nenabled = true\nproxy_url = "http://127.0.0.1:3999"\n`.replace(line.startsWith("enabled") ? "enabled = true" : /proxy_url = .*/, line));
    const r = await runCli(["env", "--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe("");
  });
});

describe("enabled = false and missing files", () => {
  it("enabled = false prints the skip message, binds nothing and exits 0", async () => {
    const { file } = configFile("[network]\nenabled = false\nproxy_url = \"http://127.0.0.1:0\"\n");
    const r = await runCli(["--config", file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("network.enabled is false; skipping proxy listeners");
    expect(r.stderr).not.toMatch(/listening on/);
  });

  it("a missing --config file is an error naming the path (a typo must not run the defaults)", async () => {
    const t = makeTempDir("cnp-e2e-cli-");
    temps.push(t);
    const missing = join(t.dir, "does-not-exist.toml");
    const r = await runCli(["--config", missing]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`config file ${missing} does not exist`);
    expect(r.stderr).not.toContain("skipping proxy listeners");
  });

  it("CODEX_HOME that exists but has no config.toml → defaults → exit 0", async () => {
    const t = makeTempDir("cnp-e2e-home-");
    temps.push(t);
    const r = await runCli([], { env: { CODEX_HOME: t.dir } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("network.enabled is false; skipping proxy listeners");
  });
});

describe("configuration errors exit 2 with a precise message", () => {
  it('mode = "fast" on line 3 names network.mode, the line and the allowed values', async () => {
    const { file } = configFile('[network]\nenabled = true\nmode = "fast"\nproxy_url = "http://127.0.0.1:0"\n');
    const r = await runCli(["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("network.mode");
    expect(r.stderr).toMatch(/config\.toml:3\b|line 3\b/);
    expect(r.stderr).toContain("full");
    expect(r.stderr).toContain("limited");
    expect(r.stderr).not.toMatch(/listening on/);
  });

  it("TOML syntax error → exit 2, `failed to parse PATH`", async () => {
    const { file } = configFile('[network]\nenabled = true\nallowed_domains = [\n');
    const r = await runCli(["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`failed to parse ${file}`);
  });

  it("a wrong type names the key", async () => {
    const { file } = configFile('[network]\nenabled = true\nallowed_domains = "127.0.0.1"\n');
    const r = await runCli(["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("network.allowed_domains: expected array of strings");
  });

  it("an invalid domain pattern names the pattern", async () => {
    const { file } = configFile('[network]\nenabled = true\nallowed_domains = ["ok.example", "bad[0-9].example"]\n');
    const r = await runCli(["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("bad[0-9].example");
  });

  it("a relative allow_unix_sockets entry is an error naming its index", async () => {
    const { file } = configFile('[network]\nenabled = true\nallow_unix_sockets = ["/tmp/ok.sock", "relative.sock"]\n');
    const r = await runCli(["--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/allow_unix_sockets/);
    expect(r.stderr).toMatch(/\b1\b/);
  });

  it("CODEX_HOME pointing to a missing directory → non-zero exit naming the path", async () => {
    const t = makeTempDir("cnp-e2e-home-");
    temps.push(t);
    const missing = join(t.dir, "no-such-codex-home");
    const r = await runCli([], { env: { CODEX_HOME: missing } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(missing);
  });

  it("CODEX_HOME pointing to a file → non-zero exit naming the path", async () => {
    const { file } = configFile("");
    const r = await runCli([], { env: { CODEX_HOME: file } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(file);
  });
});

describe("running from a config", () => {
  it("a config found through CODEX_HOME (no --config) works", async () => {
    const t = makeTempDir("cnp-e2e-home-");
    temps.push(t);
    const home = join(t.dir, "codex-home");
    mkdirSync(home);
    writeFileSync(join(home, "config.toml"), networkConfig({ allowed_domains: ["127.0.0.1"] }));
    const p = await startProxy("# unused: the config comes from CODEX_HOME\n", { noConfigFlag: true, env: { CODEX_HOME: home } });
    proxies.push(p);
    const r = await curlHttp(["-x", p.url, `${origin.url}/via-codex-home`]);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/via-codex-home");
    expect(await p.stop()).toBe(0);
  });

  it("an unknown [network] key is a warning naming it; the proxy still runs", async () => {
    const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], allowed_domian: ["typo.example"] }));
    proxies.push(p);
    expect(p.stderr()).toContain("allowed_domian");
    const r = await curlHttp(["-x", p.url, `${origin.url}/`]);
    expect(r.status).toBe(200);
  });

  it("other top-level tables are ignored", async () => {
    const p = await startProxy(`model = "x"\n[profiles.foo]\nbar = 1\n\n${networkConfig({ allowed_domains: ["127.0.0.1"] })}`);
    proxies.push(p);
    const r = await curlHttp(["-x", p.url, `${origin.url}/`]);
    expect(r.status).toBe(200);
  });

  it("a non-loopback proxy_url is clamped to 127.0.0.1 with a warning", async () => {
    const p = await startProxy(networkConfig({ proxy_url: "http://0.0.0.0:0", allowed_domains: ["127.0.0.1"] }));
    proxies.push(p);
    expect(p.host).toBe("127.0.0.1");
    expect(p.stderr()).toMatch(/warn/i);
  });

  it("SIGTERM with a CONNECT tunnel open → exit code 0 promptly", async () => {
    const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
    proxies.push(p);
    const c = await RawClient.connect(p.port);
    try {
      await c.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
      expect((await c.readResponse({ connect: true })).status).toBe(200);
      await c.write("x");
      expect((await c.readBytes(1)).toString()).toBe("x");
      const t0 = Date.now();
      const code = await p.stop("SIGTERM", 5_000);
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(3_000);
      // the tunnel is torn down
      expect(await c.waitClosed(3_000)).toBe(true);
    } finally {
      c.destroy();
    }
  });

  it("SIGINT → exit code 0", async () => {
    const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
    proxies.push(p);
    // serve one request first, so this checks SIGINT handling and not the start-up race below
    expect((await curlHttp(["-x", p.url, `${origin.url}/before-sigint`])).status).toBe(200);
    expect(await withDeadline(p.stop("SIGINT", 5_000), 6_000, "SIGINT exit")).toBe(0);
    expect(p.stderr()).toMatch(/SIGINT/);
  });

  it("a signal sent the moment the proxy announces it is listening still gives a clean exit 0", async () => {
    // A supervisor may stop the proxy right after its readiness line: by then the shutdown
    // handlers must be installed (else the default disposition kills the process).
    const signals: NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGTERM", "SIGINT", "SIGTERM", "SIGINT"];
    const results = await Promise.all(
      signals.map(async (signal) => {
        const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
        proxies.push(p);
        const code = await p.stop(signal, 5_000); // sent as soon as the listening line was read
        return `${signal}: exit code ${code}, killed by ${p.child.signalCode ?? "nothing"}`;
      }),
    );
    expect(results).toEqual(signals.map((s) => `${s}: exit code 0, killed by nothing`));
  });
});
