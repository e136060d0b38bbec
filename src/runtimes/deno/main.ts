/**
 * Standalone entry on Deno: `deno run -A src/runtimes/deno/main.ts --config FILE` (also
 * `deno task start`).
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { startAuditExport } from "../shared/otel-export.ts";
import { startMetricsExport } from "../shared/otel-metrics.ts";
import { denoRuntime } from "./runtime.ts";

Deno.exit(await runStandalone({ ...denoRuntime, startAuditExport, startMetricsExport }));
