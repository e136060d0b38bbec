/**
 * Standalone entry on Node: `node --import tsx src/runtimes/node/main.ts --config FILE`
 * (also `npm start -- …` and the package's `codex-network-proxy` bin).
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { startAuditExport } from "../shared/otel-export.ts";
import { nodeRuntime } from "./runtime.ts";

const code = await runStandalone({ ...nodeRuntime, startAuditExport });
process.exitCode = code;
// Anything still scheduled (a pending DNS lookup, a timer) must not keep a stopped proxy alive.
setImmediate(() => process.exit(code));
