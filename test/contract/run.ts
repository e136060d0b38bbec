/**
 * Runs the contract suite ({@link cases}) against one runtime adapter, in the runtime it is
 * running in, and prints one JSON line per case (`{"name", "ok", "error"?, "skipped"?, "ms"}`),
 * then `{"done": true, ...}`. Runtime-neutral (`node:process` exists in Node, Bun and Deno); the
 * entry points are `run-node.ts`, `run-bun.ts` and `run-deno.ts`.
 *
 * Arguments: substrings of case names to run only those (for debugging).
 *
 * An unhandled rejection or uncaught exception while a case runs fails that case: a stray
 * failure from an adapter's internals is a contract breach too.
 *
 * @module
 */
import process from "node:process";
import type { Net } from "../../src/core/net/contract.ts";
import { cases, netTarget, runCase, type CaseResult } from "./suite.ts";

export async function runAll(runtime: string, net: Net, version: string): Promise<void> {
  const only = process.argv.slice(2).filter((a) => !a.startsWith("-"));
  const stray: string[] = [];
  const note = (kind: string) => (e: unknown) => {
    stray.push(`${kind}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  };
  process.on("unhandledRejection", note("unhandled rejection"));
  process.on("uncaughtException", note("uncaught exception"));
  const target = netTarget(runtime, net);
  const started = Date.now();
  for (const c of cases) {
    if (only.length > 0 && !only.some((o) => c.name.includes(o))) continue;
    stray.length = 0;
    let result: CaseResult = await runCase(c, target);
    await new Promise((r) => setTimeout(r, 10)); // let late rejections of this case surface
    if (stray.length > 0) {
      const extra = stray.join("; ");
      result = { ...result, ok: false, error: result.error ? `${result.error}; ${extra}` : extra };
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  const done = JSON.stringify({ done: true, runtime, version, ms: Date.now() - started });
  // Exit once stdout is flushed: a connection left lingering must not keep the runner alive.
  process.stdout.write(`${done}\n`, () => process.exit(0));
}
