/**
 * Standalone entry on Node. Built to `dist/lib/runtimes/node/main.js`, which `npm start -- …` and
 * the package's `codex-network-proxy` bin run; `npm run dev -- …` runs this source through tsx.
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { startAuditExport } from "../shared/otel-export.ts";
import { startMetricsExport } from "../shared/otel-metrics.ts";
import { nodeRuntime } from "./runtime.ts";

const code = await runStandalone({ ...nodeRuntime, startAuditExport, startMetricsExport });
process.exitCode = code;
// Anything still scheduled (a pending DNS lookup, a timer) must not keep a stopped proxy alive.
setImmediate(() => process.exit(code));
