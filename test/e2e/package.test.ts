/**
 * Packages: the npm tarball (`npm pack`) installed into a fresh project works from its exports
 * on Node (root, `./node`, `./admin`), Bun (`./bun`) and Deno (`./deno`), its bin runs, and the JSR package
 * passes `deno publish --dry-run`. Runs once, in the node project (vitest.config.ts).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Origin, REPO_ROOT, startOrigin } from "./helpers/index.ts";

const run = promisify(execFile);
const BUN = join(REPO_ROOT, "node_modules/.bin/bun");
const DENO = join(REPO_ROOT, "node_modules/.bin/deno");

/** A consumer script: start the library on port 0, proxy one request, print the status. */
function consumer(specifier: string, originPort: number): string {
  return `
import { NetworkProxy } from ${JSON.stringify(specifier)};
import { connect } from "node:net";
const proxy = await NetworkProxy.builder().config({ allowed_domains: ["127.0.0.1"] }).httpAddr("127.0.0.1:0").build();
const handle = await proxy.run();
const status = await new Promise((resolve, reject) => {
  const s = connect(handle.addresses.http.port, "127.0.0.1", () =>
    s.write("GET http://127.0.0.1:${originPort}/from-package HTTP/1.1\\r\\nHost: 127.0.0.1:${originPort}\\r\\nConnection: close\\r\\n\\r\\n"));
  let text = "";
  s.on("data", (d) => (text += d));
  s.on("end", () => resolve(text.split(" ")[1]));
  s.on("error", reject);
});
await handle.shutdown();
console.log("status", status);
`;
}

describe("packages", () => {
  let dir: string;
  let origin: Origin;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "cnp-pack-"));
    origin = await startOrigin();
    const { stdout } = await run("npm", ["pack", "--pack-destination", dir, "--silent"], { cwd: REPO_ROOT, timeout: 120_000 });
    const tarball = join(dir, stdout.trim().split("\n").pop()!);
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    await run("npm", ["install", tarball, "--no-audit", "--no-fund", "--prefer-offline", "--silent"], { cwd: dir, timeout: 240_000 });
  }, 300_000);

  afterAll(async () => {
    await origin?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the tarball ships the built library and the sources, not the tests", () => {
    const pkg = join(dir, "node_modules", "codex-network-proxy");
    expect(readdirSync(join(pkg, "dist/lib/runtimes/node"))).toContain("index.js");
    expect(readdirSync(join(pkg, "src/runtimes"))).toEqual(expect.arrayContaining(["node", "bun", "deno"]));
    expect(readdirSync(pkg)).not.toContain("test");
  });

  it.each(["codex-network-proxy", "codex-network-proxy/node"])("Node imports %s, starts the proxy and forwards a request", async (specifier) => {
    writeFileSync(join(dir, "use.mjs"), consumer(specifier, origin.port));
    const { stdout } = await run(process.execPath, ["use.mjs"], { cwd: dir, timeout: 30_000 });
    expect(stdout).toContain("status 200");
  });

  it("Node imports codex-network-proxy/admin", async () => {
    writeFileSync(join(dir, "admin.mjs"), `import { createAdminApp } from "codex-network-proxy/admin"; console.log(typeof createAdminApp);`);
    const { stdout } = await run(process.execPath, ["admin.mjs"], { cwd: dir, timeout: 30_000 });
    expect(stdout.trim()).toBe("function");
  });

  it("Bun imports codex-network-proxy/bun, starts the proxy and forwards a request", async () => {
    writeFileSync(join(dir, "use-bun.ts"), consumer("codex-network-proxy/bun", origin.port));
    const { stdout } = await run(BUN, ["use-bun.ts"], { cwd: dir, timeout: 30_000 });
    expect(stdout).toContain("status 200");
  });

  it("Deno imports codex-network-proxy/deno, starts the proxy and forwards a request", async () => {
    writeFileSync(join(dir, "use-deno.ts"), consumer("codex-network-proxy/deno", origin.port));
    writeFileSync(join(dir, "deno.json"), JSON.stringify({ nodeModulesDir: "manual" }));
    const { stdout } = await run(DENO, ["run", "-A", "--quiet", "use-deno.ts"], { cwd: dir, timeout: 60_000 });
    expect(stdout).toContain("status 200");
  }, 70_000);

  it("the installed bin runs the built JavaScript, with no TypeScript loader installed", async () => {
    // tsx is a development dependency only: the consumer never gets it, so the bin can only work
    // by running dist/lib.
    expect(existsSync(join(dir, "node_modules/tsx"))).toBe(false);
    const { stdout } = await run(join(dir, "node_modules/.bin/codex-network-proxy"), ["--version"], { cwd: dir, timeout: 30_000 });
    expect(stdout.trim()).toBe("codex-network-proxy 0.1.0");
  });

  it("the JSR package passes deno publish --dry-run", async () => {
    const { stdout, stderr } = await run(DENO, ["publish", "--dry-run", "--allow-dirty"], { cwd: REPO_ROOT, timeout: 120_000 });
    expect(stdout + stderr).toContain("Dry run complete");
  }, 130_000);
});
