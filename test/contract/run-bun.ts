/** The contract suite on the Bun adapter: `bun test/contract/run-bun.ts`. */
import process from "node:process";
import { bunNet } from "../../src/runtimes/bun/net.ts";
import { runAll } from "./run.ts";

await runAll("bun", bunNet, `bun ${process.versions.bun ?? "?"}`);
