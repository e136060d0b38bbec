/**
 * Standalone entry on Deno: `deno run -A src/runtimes/deno/main.ts --config FILE` (also
 * `deno task start`). Files, environment and signals use Deno's own APIs.
 *
 * @module
 */
import { runStandalone } from "../../core/cli/standalone.ts";
import { startAuditExport } from "../shared/otel-export.ts";
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

async function stat(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

const code = await runStandalone({
  runtime: `deno ${Deno.version.deno}`,
  args: Deno.args,
  env: (name) => Deno.env.get(name),
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
  net: denoNet,
  startAuditExport,
  onShutdownSignal(handler) {
    Deno.addSignalListener("SIGINT", () => handler("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => handler("SIGTERM"));
  },
});
Deno.exit(code);
