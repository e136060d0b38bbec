/**
 * Single-file binaries: `npm run build:binary` (bun build --compile) is built and started once,
 * and a request goes through it. `deno task compile` needs a `denort` runtime that `deno
 * compile` downloads; this machine's network forbids that download, so that case runs only
 * when `DENORT_BIN` names one or Deno's cache already holds it, and otherwise is skipped with
 * the reason in its name.
 */
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "node:net";
import { delay, networkConfig, type Origin, type ProxyProcess, requestOnce, REPO_ROOT, startOrigin, startProxy } from "./helpers/index.ts";
import { allRecords, startOtlpReceiver } from "./helpers/otlp.ts";

const run = promisify(execFile);
const DENO_VERSION = "2.9.5";

/** A denort this machine already has, if any (deno compile would otherwise download it). */
function cachedDenort(): string | undefined {
  if (process.env.DENORT_BIN && existsSync(process.env.DENORT_BIN)) return process.env.DENORT_BIN;
  const denoDir = process.env.DENO_DIR ?? join(homedir(), ".cache", "deno");
  const zip = join(denoDir, "dl", "release", `v${DENO_VERSION}`, "denort-x86_64-unknown-linux-gnu.zip");
  return existsSync(zip) ? zip : undefined;
}

describe("single-file binary (bun build --compile)", () => {
  const binary = join(REPO_ROOT, "dist", "codex-network-proxy");
  let origin: Origin;
  let proxy: ProxyProcess | undefined;

  beforeAll(async () => {
    rmSync(binary, { force: true });
    await run("npm", ["run", "build:binary"], { cwd: REPO_ROOT, timeout: 120_000 });
    origin = await startOrigin();
  }, 150_000);

  afterAll(async () => {
    await proxy?.stop();
    await origin?.close();
  });

  it("builds a self-contained executable that prints its version", async () => {
    expect(existsSync(binary)).toBe(true);
    const { stdout } = await run(binary, ["--version"], { timeout: 10_000 });
    expect(stdout.trim()).toBe("codex-network-proxy 0.1.0");
  });

  it("starts from the binary and proxies a request", async () => {
    proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }), { command: binary });
    const a = `127.0.0.1:${origin.port}`;
    const ok = await requestOnce(proxy.port, `GET http://${a}/through-binary HTTP/1.1\r\nHost: ${a}\r\n\r\n`);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text).url).toBe("/through-binary");
    const refused = await requestOnce(proxy.port, `GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n`);
    expect(refused.status).toBe(403);
    expect(proxy.stderr()).toMatch(/ on bun /);
  });

  it("exports audit events from its worker thread (bundled as the binary's second entry point)", async () => {
    const rx = await startOtlpReceiver();
    const exporting = await startProxy(
      `[otel]\nexporter = { otlp-http = { endpoint = "${rx.endpoint}", protocol = "json" } }\n\n${networkConfig({ allowed_domains: ["127.0.0.1"] })}`,
      { command: binary, env: { CODEX_NETWORK_PROXY_AUDIT_THREAD: "worker" } },
    );
    try {
      expect(exporting.stderr()).toContain("audit events exported with otlp-http (json) from a worker thread");
      const a = `127.0.0.1:${origin.port}`;
      expect((await requestOnce(exporting.port, `GET http://${a}/audited HTTP/1.1\r\nHost: ${a}\r\n\r\n`)).status).toBe(200);
      expect(await exporting.stop()).toBe(0); // SIGTERM flushes
      const records = allRecords(rx);
      expect(records.map((r) => r.attributes["server.port"])).toContain(origin.port);
    } finally {
      await exporting.stop();
      await rx.close();
    }
  });
});

/** Whether a connection to 127.0.0.1:`port` is refused (nothing listens there). */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

describe("npm start", () => {
  it("runs the built Node entry, and SIGTERM to npm reaches the proxy: it stops, nothing is left listening", async () => {
    const proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }), { command: "npm", commandArgs: ["start", "--"] });
    try {
      expect(proxy.stdout()).toContain("node dist/lib/runtimes/node/main.js");
      expect(await proxy.stop("SIGTERM", 15_000)).toBe(0);
      expect(proxy.stderr()).toContain("SIGTERM received");
      // the proxy itself, not only npm, is gone: its port refuses
      const deadline = Date.now() + 10_000;
      while (!(await refuses(proxy.port))) {
        if (Date.now() > deadline) throw new Error(`port ${proxy.port} still accepts after npm stopped: the proxy outlived it`);
        await delay(50);
      }
    } finally {
      await proxy.stop("SIGKILL").catch(() => undefined);
    }
  }, 60_000);
});

describe("deno tasks", () => {
  it("deno task start runs the Deno entry", async () => {
    const { stdout } = await run(join(REPO_ROOT, "node_modules/.bin/deno"), ["task", "--quiet", "start", "--version"], { cwd: REPO_ROOT, timeout: 60_000 });
    expect(stdout.trim()).toBe("codex-network-proxy 0.1.0");
  }, 70_000);
});

describe("deno compile", () => {
  const denort = cachedDenort();
  const name = denort
    ? "deno task compile builds a binary that proxies a request"
    : "deno task compile — SKIPPED: no denort (DENORT_BIN unset, none in Deno's cache) and this machine cannot download it";
  it.skipIf(!denort)(name, async () => {
    const binary = join(REPO_ROOT, "dist", "codex-network-proxy-deno");
    rmSync(binary, { force: true });
    await run(join(REPO_ROOT, "node_modules/.bin/deno"), ["task", "compile"], {
      cwd: REPO_ROOT,
      timeout: 120_000,
      env: { ...process.env, DENORT_BIN: denort },
    });
    const { stdout } = await run(binary, ["--version"], { timeout: 10_000 });
    expect(stdout.trim()).toBe("codex-network-proxy 0.1.0");
  }, 150_000);
});
