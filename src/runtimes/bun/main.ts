/**
 * Standalone entry on Bun: `bun src/runtimes/bun/main.ts --config FILE`.
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { startAuditExport } from "../shared/otel-export.ts";
import { startMetricsExport } from "../shared/otel-metrics.ts";
import { bunRuntime } from "./runtime.ts";

process.exit(await runStandalone({ ...bunRuntime, startAuditExport, startMetricsExport }));
