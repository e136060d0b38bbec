/**
 * The Deno {@link Runtime}: Deno's sockets (`./net.ts`), files, environment, arguments, output
 * and signals, all on Deno's own APIs.
 *
 * @module
 */
import type { PrivateFiles } from "../../core/mitm/ca-store.ts";
import type { StandaloneRuntime } from "../../core/runtime.ts";
import { denoNet } from "./net.ts";

const encoder = new TextEncoder();

/** Write all of `text` to a stream resource, ignoring a closed reader (EPIPE). */
function writeAll(out: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  try {
    for (let at = 0; at < bytes.length; ) at += out.writeSync(bytes.subarray(at));
  } catch {
    // the reader went away: logging must never stop the proxy
  }
}

/** What `Deno.stat` says, or `undefined` when nothing is there. */
async function stat(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** {@link PrivateFiles} on Deno's file API: `lstat`, `createNew` with a mode, `mkdir -p`. */
export const denoPrivateFiles: PrivateFiles = {
  async lstat(path) {
    try {
      const s = await Deno.lstat(path);
      return { kind: s.isSymlink ? "symlink" : s.isFile ? "file" : s.isDirectory ? "dir" : "other", mode: (s.mode ?? 0) & 0o777 };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  },
  async readText(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  },
  async createExclusive(path, text, mode) {
    try {
      await Deno.writeTextFile(path, text, { createNew: true, mode });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return false;
      throw e;
    }
    await Deno.chmod(path, mode); // exactly `mode`, whatever the umask took away
    return true;
  },
  async mkdirp(path, mode) {
    await Deno.mkdir(path, { recursive: true, mode });
  },
  async replaceText(path, text, mode) {
    const temporary = `${path}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeTextFile(temporary, text, { createNew: true, mode });
      await Deno.chmod(temporary, mode);
      await Deno.rename(temporary, path);
    } catch (e) {
      await Deno.remove(temporary).catch(() => {});
      throw e;
    }
  },
  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  },
};

/** Everything the core gets from Deno. */
export const denoRuntime: StandaloneRuntime = {
  net: denoNet,
  name: `deno ${Deno.version.deno}`,
  args: Deno.args,
  env: (key) => Deno.env.get(key),
  readTextFile: (path) => denoPrivateFiles.readText(path),
  async pathKind(path) {
    const s = await stat(path);
    return s === undefined ? "missing" : s.isDirectory ? "dir" : s.isFile ? "file" : "other";
  },
  fileMtime: async (path) => (await stat(path))?.mtime?.getTime(),
  privateFiles: denoPrivateFiles,
  homeDir: () => Deno.env.get("HOME"),
  cwd: () => Deno.cwd(),
  stdout: (text) => writeAll(Deno.stdout, text),
  stderr: (text) => writeAll(Deno.stderr, text),
  onShutdownSignal(handler) {
    Deno.addSignalListener("SIGINT", () => handler("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => handler("SIGTERM"));
  },
};
