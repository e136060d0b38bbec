/**
 * Which allowlisted unix socket an `x-unix-socket` path stands for (docs/behaviour.md §5).
 *
 * @module
 */
import type { Net } from "../net/contract.ts";

/** Host reported for unix-socket decisions (their refusals and audit events). */
export const UNIX_SOCKET_HOST = "unix-socket";

/**
 * The allowed socket `path` stands for: an entry byte-equal to it, else the entry whose real
 * file is the same as `path`'s (symlinks resolved). Relative paths never match.
 */
export async function matchAllowedSocket(path: string, allowed: readonly string[], net: Pick<Net, "realPath">): Promise<string | undefined> {
  if (!path.startsWith("/")) return undefined;
  if (allowed.includes(path)) return path;
  const realPath = net.realPath;
  if (!realPath || allowed.length === 0) return undefined;
  const target = await realPath(path).catch(() => undefined);
  if (target === undefined) return undefined;
  for (const entry of allowed) {
    if ((await realPath(entry).catch(() => undefined)) === target) return entry;
  }
  return undefined;
}
