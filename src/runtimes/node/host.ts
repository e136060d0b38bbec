/**
 * Node's file, environment and process capabilities, shared by the standalone entries of the
 * runtimes that provide Node's `process` (Node and Bun) and by the libraries.
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import type { Net } from "../../core/net/contract.ts";
import type { StandaloneHost } from "../../core/cli/standalone.ts";
import { startAuditExport } from "../shared/otel-export.ts";

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
export async function pathKind(path: string): Promise<"file" | "dir" | "missing" | "other"> {
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

/** The standalone host on `process` and `node:fs`, with the runtime's own sockets (`net`). */
export function processStandaloneHost(runtime: string, net: Net): StandaloneHost {
  // A closed stderr (the reader went away) must not take the proxy down with EPIPE.
  process.stderr.on("error", () => {});
  return {
    runtime,
    args: process.argv.slice(2),
    env: (name) => process.env[name],
    readTextFile,
    pathKind,
    fileMtime,
    homeDir: () => homedir(),
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    net,
    startAuditExport,
    onShutdownSignal(handler) {
      process.once("SIGINT", () => handler("SIGINT"));
      process.once("SIGTERM", () => handler("SIGTERM"));
    },
  };
}
