/**
 * The Deno {@link Runtime}: Deno's sockets (`./net.ts`), files, environment, arguments, output
 * and signals, all on Deno's own APIs.
 *
 * @module
 */
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

/** Everything the core gets from Deno. */
export const denoRuntime: StandaloneRuntime = {
  net: denoNet,
  name: `deno ${Deno.version.deno}`,
  args: Deno.args,
  env: (key) => Deno.env.get(key),
  async readTextFile(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  },
  async pathKind(path) {
    const s = await stat(path);
    return s === undefined ? "missing" : s.isDirectory ? "dir" : s.isFile ? "file" : "other";
  },
  fileMtime: async (path) => (await stat(path))?.mtime?.getTime(),
  homeDir: () => Deno.env.get("HOME"),
  stdout: (text) => writeAll(Deno.stdout, text),
  stderr: (text) => writeAll(Deno.stderr, text),
  onShutdownSignal(handler) {
    Deno.addSignalListener("SIGINT", () => handler("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => handler("SIGTERM"));
  },
};
