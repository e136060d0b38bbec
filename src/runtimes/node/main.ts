/**
 * Standalone entry on Node: `node --import tsx src/runtimes/node/main.ts --config FILE`
 * (also `npm start -- …` and the package's `codex-network-proxy` bin).
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { processStandaloneHost } from "./host.ts";
import { nodeNet } from "./net.ts";

const code = await runStandalone(processStandaloneHost(`node ${process.version}`, nodeNet));
process.exitCode = code;
// Anything still scheduled (a pending DNS lookup, a timer) must not keep a stopped proxy alive.
setImmediate(() => process.exit(code));
