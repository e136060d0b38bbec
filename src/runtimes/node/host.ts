/**
 * Node's file and environment capabilities, shared by the standalone entry and the library.
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises";

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
