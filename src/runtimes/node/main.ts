/**
 * Standalone entry on Node: `node --import tsx src/runtimes/node/main.ts --config FILE`
 * (also `npm start -- …` and the package's `codex-network-proxy` bin).
 *
 * @module
 */
import { homedir } from "node:os";
import { runStandalone } from "../../core/standalone.ts";
import { fileMtime, pathKind, readTextFile } from "./host.ts";
import { nodeNet } from "./net.ts";

// A closed stderr (the reader went away) must not take the proxy down with EPIPE.
process.stderr.on("error", () => {});

const code = await runStandalone({
  runtime: `node ${process.version}`,
  args: process.argv.slice(2),
  env: (name) => process.env[name],
  readTextFile,
  pathKind,
  fileMtime,
  homeDir: () => homedir(),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  net: nodeNet,
  onShutdownSignal(handler) {
    process.once("SIGINT", () => handler("SIGINT"));
    process.once("SIGTERM", () => handler("SIGTERM"));
  },
});
process.exitCode = code;
// Anything still scheduled (a pending DNS lookup, a timer) must not keep a stopped proxy alive.
setImmediate(() => process.exit(code));
