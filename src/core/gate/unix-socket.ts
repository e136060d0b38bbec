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

/**
 * The socket to dial for `path` under the configured lists: an allowlisted entry (as
 * {@link matchAllowedSocket}); else, with `dangerously_allow_all_unix_sockets`, the path itself
 * with symlinks resolved (so a link swapped after the check cannot redirect the dial), unless it
 * is, or resolves to the same file as, an entry of `denied`. A denied entry always wins.
 * `undefined`: refused.
 */
export async function socketToDial(
  path: string,
  lists: { readonly allowed: readonly string[]; readonly denied: readonly string[]; readonly allowAll: boolean },
  net: Pick<Net, "realPath">,
): Promise<string | undefined> {
  if (!path.startsWith("/")) return undefined;
  if (lists.denied.length > 0 && (await matchAllowedSocket(path, lists.denied, net)) !== undefined) return undefined;
  const listed = await matchAllowedSocket(path, lists.allowed, net);
  if (listed !== undefined || !lists.allowAll) return listed;
  if (!net.realPath) return path;
  return net.realPath(path).catch(() => undefined);
}
