/**
 * The {@link Runtime} of the runtimes that provide Node's `process`, `node:fs` and `node:os`
 * (Node, and Bun through its Node compatibility): files, environment, arguments, output and
 * signals, around the runtime's own sockets (`net`).
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import type { Net } from "../../core/net/contract.ts";
import type { PathKind, StandaloneRuntime } from "../../core/runtime.ts";

/** File contents, or `null` when the file does not exist. */
export async function readTextFile(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** What is at `path`. */
export async function pathKind(path: string): Promise<PathKind> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? "dir" : s.isFile() ? "file" : "other";
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "missing";
    throw e;
  }
}

/** Modification time in milliseconds, or `undefined` when the file does not exist. */
export async function fileMtime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Write to a process stream; a closed reader (EPIPE) must not take the proxy down. */
function quietWriter(stream: NodeJS.WriteStream): (text: string) => void {
  let guarded = false;
  return (text) => {
    if (!guarded) {
      stream.on("error", () => {});
      guarded = true;
    }
    stream.write(text);
  };
}

/**
 * The runtime on `process` and `node:fs`, with `net` for sockets. `name` is the runtime and its
 * version (`node v20.11.1`). The audit exporter is left out: the standalone entry adds it, so
 * the library does not load the OpenTelemetry SDK.
 */
export function processRuntime(name: string, net: Net): StandaloneRuntime {
  return {
    net,
    name,
    args: process.argv.slice(2),
    env: (key) => process.env[key],
    readTextFile,
    pathKind,
    fileMtime,
    homeDir: () => homedir(),
    stdout: quietWriter(process.stdout),
    stderr: quietWriter(process.stderr),
    onShutdownSignal(handler) {
      process.once("SIGINT", () => handler("SIGINT"));
      process.once("SIGTERM", () => handler("SIGTERM"));
    },
  };
}
