/**
 * The Bun {@link Runtime}: Bun's own sockets, UDP and HTTP server (`./net.ts`); files,
 * environment and signals through the Node compatibility layer Bun provides.
 *
 * @module
 */
import type { StandaloneRuntime } from "../../core/runtime.ts";
import { processRuntime } from "../shared/process-runtime.ts";
import { bunNet } from "./net.ts";

declare const Bun: { version: string };

/** Everything the core gets from Bun. */
export const bunRuntime: StandaloneRuntime = processRuntime(`bun ${Bun.version}`, bunNet);
