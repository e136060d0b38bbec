/**
 * README "Library API": the example works as written. The ```ts block under that heading is
 * written to a temporary `.mts` file inside the repository (so `import … from
 * "codex-network-proxy"` resolves through package.json's self-reference "exports") and run with
 * `node --import tsx`. It binds loopback port 0 listeners only and sends no traffic.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const RUN_TIMEOUT_MS = 30_000;

/** The first fenced block of `lang` in the `## heading` section of `markdown`. */
function codeBlockUnder(markdown: string, heading: string, lang: string): string {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => l.trim() === `## ${heading}`);
  if (start < 0) throw new Error(`README has no "## ${heading}" heading`);
  let end = lines.findIndex((l, i) => i > start && /^##? /.test(l));
  if (end < 0) end = lines.length;
  const section = lines.slice(start + 1, end);
  const open = section.findIndex((l) => l.trim() === "```" + lang);
  if (open < 0) throw new Error(`"## ${heading}" has no \`\`\`${lang} block`);
  const close = section.findIndex((l, i) => i > open && l.trim() === "```");
  if (close < 0) throw new Error(`unterminated \`\`\`${lang} block under "## ${heading}"`);
  return section.slice(open + 1, close).join("\n") + "\n";
}

/** The environment without proxy variables (the example must not depend on them). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/_proxy$/i.test(k)) env[k] = v;
  return env;
}

function run(file: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", file], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`README example still running after ${RUN_TIMEOUT_MS} ms; stdout ${JSON.stringify(stdout)} stderr ${JSON.stringify(stderr)}`));
    }, RUN_TIMEOUT_MS);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

let tmpFile: string | undefined;

afterEach(() => {
  if (tmpFile) rmSync(tmpFile, { force: true });
  tmpFile = undefined;
});

describe("README Library API example", () => {
  it("imports codex-network-proxy, runs, prints the bound address and exits 0", async () => {
    const code = codeBlockUnder(readFileSync(join(REPO_ROOT, "README.md"), "utf8"), "Library API", "ts");
    expect(code).toContain('from "codex-network-proxy"');
    tmpFile = join(REPO_ROOT, "test", `.tmp-readme-example-${process.pid}-${randomBytes(4).toString("hex")}.mts`);
    writeFileSync(tmpFile, code);
    const r = await run(tmpFile);
    expect({ code: r.code, signal: r.signal }, `stderr:\n${r.stderr}\nstdout:\n${r.stdout}`).toEqual({ code: 0, signal: null });
    // console.log(handle.addresses.http, childEnv.HTTPS_PROXY !== undefined)
    const m = /\{\s*host:\s*'127\.0\.0\.1',\s*port:\s*(\d+)\s*\}\s+true\s*$/.exec(r.stdout);
    expect(m, `stdout: ${JSON.stringify(r.stdout)}`).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
  }, RUN_TIMEOUT_MS + 5_000);
});
