/**
 * Listening sockets and their descriptors as Linux's /proc shows them, for a process (`self`, or
 * a pid): which socket listens on a loopback port, and which descriptors refer to it.
 *
 * @module
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** The inode of the TCP socket listening on `port` in `pid`'s network namespace (/proc/PID/net/tcp). */
export function listenInode(port: number, pid: number | "self" = "self"): string {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync(`/proc/${pid}/net/tcp`, "latin1").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[1]?.endsWith(`:${hexPort}`) && f[3] === "0A") return f[9]!;
  }
  throw new Error(`no listening socket on port ${port} in /proc/${pid}/net/tcp`);
}

/** `pid`'s descriptors that are the socket `inode`. */
export function socketDescriptors(inode: string, pid: number | "self" = "self"): number[] {
  const fds: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) fds.push(Number(fd));
    } catch {
      // closed while listing
    }
  }
  return fds;
}
