/**
 * Which allowlisted unix socket an `x-unix-socket` path stands for (docs/behaviour.md §5).
 *
 * @module
 */
import type { Net } from "../net/contract.ts";

/** Host reported for unix-socket decisions (their refusals and audit events). */
export const UNIX_SOCKET_HOST = "unix-socket";

/**
 * The socket to dial for `path` under the configured lists. `path` is resolved once (symlinks
 * followed), and that one answer is what is checked and what is dialled, so a link re-pointed
 * meanwhile changes nothing. Refused (`undefined`): a relative path; `path`, or its resolution,
 * equal to a denied entry or to its resolution (deny wins over everything); otherwise the
 * allowlisted entry byte-equal to `path` or resolving to the same file is dialled; with
 * `dangerously_allow_all_unix_sockets`, the resolved path is. Files are told apart by resolved
 * path: a hard link to a denied socket is another path (docs/behaviour.md §1.3).
 */
export async function socketToDial(
  path: string,
  lists: { readonly allowed: readonly string[]; readonly denied: readonly string[]; readonly allowAll: boolean },
  net: Pick<Net, "realPath">,
): Promise<string | undefined> {
  if (!path.startsWith("/")) return undefined;
  const realPath = net.realPath;
  const resolved = realPath ? await realPath(path).catch(() => undefined) : path;
  for (const entry of lists.denied) {
    if (entry === path || entry === resolved) return undefined;
    if (realPath && resolved !== undefined && (await realPath(entry).catch(() => undefined)) === resolved) return undefined;
  }
  const allowed = lists.allowed.filter((entry) => !lists.denied.includes(entry));
  if (allowed.includes(path)) return path;
  if (realPath && resolved !== undefined) {
    for (const entry of allowed) if ((await realPath(entry).catch(() => undefined)) === resolved) return entry;
  }
  return lists.allowAll ? resolved : undefined;
}
