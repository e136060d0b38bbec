/**
 * The contract suite on the Deno adapter: `deno run -A test/contract/run-deno.ts`.
 *
 * The adapter is imported by a computed specifier: it uses Deno's types, which `tsc` (run over
 * `test/`) does not know; `deno check` covers the adapter itself.
 */
import process from "node:process";
import type { Net } from "../../src/core/net/contract.ts";
import { runAll } from "./run.ts";

const adapter = new URL("../../src/runtimes/deno/net.ts", import.meta.url).href;
const { denoNet } = (await import(adapter)) as { denoNet: Net };
await runAll("deno", denoNet, `deno ${process.versions.deno ?? "?"}`);
