/**
 * The Node {@link Runtime}: Node's sockets (`./net.ts`) with `process` and `node:fs`.
 *
 * @module
 */
import type { StandaloneRuntime } from "../../core/runtime.ts";
import { processRuntime } from "../shared/process-runtime.ts";
import { nodeNet } from "./net.ts";

/** Everything the core gets from Node. */
export const nodeRuntime: StandaloneRuntime = processRuntime(`node ${process.version}`, nodeNet);
