/** The contract suite on the Node adapter: `node --import tsx test/contract/run-node.ts`. */
import process from "node:process";
import { nodeNet } from "../../src/runtimes/node/net.ts";
import { runAll } from "./run.ts";

await runAll("node", nodeNet, process.version);
