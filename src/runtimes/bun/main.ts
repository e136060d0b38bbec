/**
 * Standalone entry on Bun: `bun src/runtimes/bun/main.ts --config FILE`. Sockets, UDP and the
 * admin server are Bun's own (`./net.ts`); files, environment and signals use the Node
 * compatibility layer Bun provides.
 *
 * @module
 */
import { homedir } from "node:os";
import { runStandalone } from "../../core/standalone.ts";
import { fileMtime, pathKind, readTextFile } from "../node/host.ts";
import { bunNet } from "./net.ts";

declare const Bun: { version: string };

process.stderr.on("error", () => {}); // a closed stderr must not stop the proxy

const code = await runStandalone({
  runtime: `bun ${Bun.version}`,
  args: process.argv.slice(2),
  env: (name) => process.env[name],
  readTextFile,
  pathKind,
  fileMtime,
  homeDir: () => homedir(),
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  net: bunNet,
  onShutdownSignal(handler) {
    process.once("SIGINT", () => handler("SIGINT"));
    process.once("SIGTERM", () => handler("SIGTERM"));
  },
});
process.exit(code);
