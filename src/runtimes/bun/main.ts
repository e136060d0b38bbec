/**
 * Standalone entry on Bun: `bun src/runtimes/bun/main.ts --config FILE`. Sockets, UDP and the
 * admin server are Bun's own (`./net.ts`); files, environment and signals use the Node
 * compatibility layer Bun provides.
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { processStandaloneHost } from "../node/host.ts";
import { bunNet } from "./net.ts";

declare const Bun: { version: string };

const code = await runStandalone(processStandaloneHost(`bun ${Bun.version}`, bunNet));
process.exit(code);
