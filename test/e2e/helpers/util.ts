/**
 * Small shared utilities for the end-to-end tests: deadlines, temp dirs, hashing, the
 * deterministic byte pattern served by the origin's `/bytes` route, and a proxy-free
 * environment for child processes.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root, computed from this file's location (test/e2e/helpers/ → ../../..). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The Node entry point of the standalone proxy. */
export const PROXY_MAIN = join(REPO_ROOT, "src/runtimes/node/main.ts");

/** The runtimes the standalone proxy is tested on. */
export type Runtime = "node" | "bun" | "deno";

/** The runtime this test run spawns the proxy under (vitest project env `CNP_E2E_RUNTIME`). */
export const RUNTIME: Runtime = parseRuntime(process.env.CNP_E2E_RUNTIME);

function parseRuntime(value: string | undefined): Runtime {
  if (value === undefined || value === "" || value === "node") return "node";
  if (value === "bun" || value === "deno") return value;
  throw new Error(`CNP_E2E_RUNTIME must be node, bun or deno, not ${JSON.stringify(value)}`);
}

/** Command and arguments that start the standalone proxy under {@link RUNTIME}. */
export function proxyCommand(args: readonly string[], runtime: Runtime = RUNTIME): { command: string; args: string[] } {
  switch (runtime) {
    case "node":
      return { command: process.execPath, args: ["--import", "tsx", PROXY_MAIN, ...args] };
    case "bun":
      return { command: join(REPO_ROOT, "node_modules/.bin/bun"), args: [join(REPO_ROOT, "src/runtimes/bun/main.ts"), ...args] };
    case "deno":
      return { command: join(REPO_ROOT, "node_modules/.bin/deno"), args: ["run", "-A", "--quiet", join(REPO_ROOT, "src/runtimes/deno/main.ts"), ...args] };
  }
}

/** Reject with a clear message when `promise` does not settle within `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A fresh temporary directory and a function that removes it. */
export function makeTempDir(prefix = "cnp-e2e-"): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Hex SHA-256 of some bytes. */
export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Byte `i` of the deterministic pattern that `/bytes?n=N` streams. */
export function patternByte(i: number): number {
  return (i * 31 + 7) % 251;
}

/** The first `n` bytes of the pattern (what `/bytes?n=N` must deliver). */
export function patternBytes(n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = patternByte(i);
  return out;
}

/** Resident set (VmRSS, Linux `/proc`) of process `pid`, in bytes. */
export function residentBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

/** The process environment without any *_proxy variable (so no client bypasses or chains). */
export function proxyFreeEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...OFFLINE_RUNTIME_ENV };
  for (const [k, v] of Object.entries(process.env)) {
    if (/_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * Keeps the runtimes under test from calling home: Deno checks for a newer release at start
 * (a request to its download host, which would even go through a test's upstream proxy).
 * Tests only ever talk to loopback.
 */
export const OFFLINE_RUNTIME_ENV = { DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" } as const;

/** Sleep. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `pred` every 20 ms until it holds; reject after `timeoutMs`. */
export async function pollUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await delay(20);
  }
}
