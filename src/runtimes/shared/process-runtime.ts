/**
 * The {@link Runtime} of the runtimes that provide Node's `process`, `node:fs` and `node:os`
 * (Node, and Bun through its Node compatibility): files, environment, arguments, output and
 * signals, around the runtime's own sockets (`net`).
 *
 * @module
 */
import { chmod, lstat, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { rootCertificates } from "node:tls";
import type { Net } from "../../core/net/contract.ts";
import type { PrivateFiles } from "../../core/mitm/ca-store.ts";
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

/** {@link PrivateFiles} on `node:fs`: `lstat`, `O_EXCL` creation with a mode, `mkdir -p`. */
export const nodePrivateFiles: PrivateFiles = {
  async lstat(path) {
    try {
      const s = await lstat(path);
      return { kind: s.isSymbolicLink() ? "symlink" : s.isFile() ? "file" : s.isDirectory() ? "dir" : "other", mode: s.mode & 0o777 };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  },
  readText: readTextFile,
  async createExclusive(path, text, mode) {
    try {
      await writeFile(path, text, { flag: "wx", mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    }
    await chmod(path, mode); // exactly `mode`, whatever the umask took away
    return true;
  },
  async mkdirp(path, mode) {
    await mkdir(path, { recursive: true, mode });
  },
  async replaceText(path, text, mode) {
    const temporary = `${path}.${crypto.randomUUID()}.tmp`;
    try {
      await writeFile(temporary, text, { flag: "wx", mode });
      await chmod(temporary, mode);
      await rename(temporary, path);
    } catch (e) {
      await rm(temporary, { force: true });
      throw e;
    }
  },
  async remove(path) {
    await rm(path, { force: true });
  },
};

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
    privateFiles: nodePrivateFiles,
    homeDir: () => homedir(),
    cwd: () => process.cwd(),
    bundledRoots: () => rootCertificates,
    stdout: quietWriter(process.stdout),
    stderr: quietWriter(process.stderr),
    onShutdownSignal(handler) {
      process.once("SIGINT", () => handler("SIGINT"));
      process.once("SIGTERM", () => handler("SIGTERM"));
    },
  };
}
