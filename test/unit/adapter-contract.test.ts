/**
 * The adapter contract suite (`test/contract/suite.ts`) against every implementation of the
 * socket contract: the Node, Bun and Deno adapters, each in its own runtime (vitest runs under
 * Node, so each runtime runs `test/contract/run-<runtime>.ts`, which prints one JSON line per
 * case), and the in-memory net of `test/helpers/memory-net.ts`, in process.
 *
 * One `it` per runtime × case, failing with the case's own error. The memory net runs only the
 * cases that need nothing but a connected pair: it has no listener, no UDP and no flow control
 * (its writes always resolve at once), so those cases are listed as skipped with that reason.
 *
 * A case that a runtime adapter genuinely fails (an adapter bug) stays in the suite and is
 * marked `it.fails` in {@link KNOWN_BUGS}, so the suite stays green and the bug stays visible:
 * once the adapter is fixed, that `it.fails` fails and the entry must go.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { connPair } from "../helpers/memory-net.ts";
import { cases, runCase, type Capability, type CaseResult, type Target } from "../contract/suite.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Deno must never check for updates nor prompt (see vitest.config.ts). */
const OFFLINE = { DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" };
/** The whole runner, all cases; each case has its own, shorter deadline inside. */
const RUNNER_DEADLINE_MS = 25_000;

type Runtime = "node" | "bun" | "deno";
const RUNTIMES: readonly Runtime[] = ["node", "bun", "deno"];

const COMMANDS: Record<Runtime, { command: string; args: string[] }> = {
  node: { command: process.execPath, args: ["--import", "tsx", join(ROOT, "test/contract/run-node.ts")] },
  bun: { command: join(ROOT, "node_modules/.bin/bun"), args: [join(ROOT, "test/contract/run-bun.ts")] },
  deno: {
    command: join(ROOT, "node_modules/.bin/deno"),
    args: ["run", "-A", "--quiet", "--no-lock", join(ROOT, "test/contract/run-deno.ts")],
  },
};

/**
 * Cases a runtime adapter fails today: runtime → case name → the bug. Each is run as
 * `it.fails`, with the bug named here.
 */
const KNOWN_BUGS: Partial<Record<Runtime, Record<string, string>>> = {
  bun: {
    "acceptTls: after the client's TLS half-close the proxy's answer still flows (RFC 8446 §6.1)":
      "Bun 1.4's TLS answers a client's close_notify with its own and drops what is written after it (also with a Node client; checked by hand)",
  },
};

interface RunnerOutput {
  readonly results: Map<string, CaseResult>;
  /** Why the runner did not finish normally, if it did not. */
  readonly failure?: string;
  readonly stderr: string;
}

/** Spawn a runtime's runner and collect its JSON lines; never rejects. */
function runRunner(runtime: Runtime): Promise<RunnerOutput> {
  const { command, args } = COMMANDS[runtime];
  return new Promise((resolve) => {
    const results = new Map<string, CaseResult>();
    let stdout = "";
    let stderr = "";
    let done = false;
    let failure: string | undefined;
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...OFFLINE }, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => {
      failure = `the ${runtime} runner did not finish within ${RUNNER_DEADLINE_MS} ms`;
      child.kill("SIGKILL");
    }, RUNNER_DEADLINE_MS);
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", (e) => {
      failure ??= `cannot start the ${runtime} runner: ${e.message}`;
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      for (const line of stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        const o = parsed as Partial<CaseResult> & { done?: boolean };
        if (o.done === true) done = true;
        else if (typeof o.name === "string" && typeof o.ok === "boolean") results.set(o.name, o as CaseResult);
      }
      if (!done) failure ??= `the ${runtime} runner ended without finishing (exit ${code ?? signal})`;
      resolve({ results, failure, stderr });
    });
  });
}

const runs = new Map<Runtime, Promise<RunnerOutput>>();
const runOf = (r: Runtime): Promise<RunnerOutput> => {
  let p = runs.get(r);
  if (!p) runs.set(r, (p = runRunner(r)));
  return p;
};

// Start the three runners at once; each `it` awaits its runtime's.
beforeAll(() => {
  for (const r of RUNTIMES) void runOf(r);
});

const tail = (s: string): string => (s.trim() ? `\n--- runner stderr (tail) ---\n${s.trim().slice(-2000)}` : "");

for (const runtime of RUNTIMES) {
  describe(`adapter contract on ${runtime}`, () => {
    for (const c of cases) {
      const bug = KNOWN_BUGS[runtime]?.[c.name];
      if (bug) {
        it.fails(`${c.name} [known bug: ${bug}]`, async () => {
          const out = await runOf(runtime);
          const r = out.results.get(c.name);
          if (!r) return; // no result at all: let `it.fails` report it (the runner broke)
          if (!r.ok) throw new Error(r.error ?? "failed");
        });
        continue;
      }
      it(c.name, async (ctx) => {
        const out = await runOf(runtime);
        const r = out.results.get(c.name);
        if (!r) throw new Error(`no result from the ${runtime} runner for this case${out.failure ? `: ${out.failure}` : ""}${tail(out.stderr)}`);
        if (r.skipped) ctx.skip(`${runtime}: ${r.skipped}`);
        if (!r.ok) throw new Error(`${runtime}: ${r.error ?? "failed"}`);
      });
    }
  });
}

/** The in-memory net: connected pairs only. */
const memoryTarget: Target = {
  label: "memory net",
  capabilities: new Set<Capability>(["pair"]),
  async pair(t) {
    const [client, server] = connPair();
    t.defer(() => {
      client.abort();
      server.abort();
    });
    return { client, server };
  },
};

const MEMORY_LACKS: Record<Capability, string> = {
  pair: "",
  "flow-control": "its writes always resolve at once (no flow control)",
  listen: "it has no listener or dialler",
  udp: "it has no UDP",
};

describe("adapter contract on the in-memory net (test/helpers/memory-net.ts)", () => {
  // Cases that need what the in-memory net does not have are not run on it (not skipped: they
  // do not apply); this test names them, so the list cannot grow unnoticed.
  it("runs every case on connected pairs; the others need what it lacks", () => {
    const notApplicable = cases
      .filter((c) => c.needs.some((n) => !memoryTarget.capabilities.has(n)))
      .map((c) => `${c.name}: ${c.needs.filter((n) => !memoryTarget.capabilities.has(n)).map((m) => MEMORY_LACKS[m]).join("; ")}`);
    expect(notApplicable).toHaveLength(cases.length - cases.filter((c) => c.needs.every((n) => memoryTarget.capabilities.has(n))).length);
    expect(notApplicable.every((line) => /no flow control|no listener or dialler|no UDP/.test(line))).toBe(true);
    expect(cases.filter((c) => c.needs.every((n) => memoryTarget.capabilities.has(n))).length).toBeGreaterThanOrEqual(10);
  });

  for (const c of cases) {
    if (c.needs.some((n) => !memoryTarget.capabilities.has(n))) continue;
    it(c.name, async (ctx) => {
      const r = await runCase(c, memoryTarget);
      if (r.skipped) ctx.skip(r.skipped);
      if (!r.ok) throw new Error(`memory net: ${r.error ?? "failed"}`);
    });
  }
});
