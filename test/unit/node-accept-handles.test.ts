/**
 * More accept handles for the Node adapter's burst-ready listeners
 * (src/runtimes/node/accept-handles.ts): how many copies the open-files limit allows, and on a
 * real listening socket that the copies appear as more descriptors of the same socket, each takes
 * connections like the first, all of them close with the listener (also when it is closed before
 * the copies arrived), and a helper that cannot start is reported once while the listener keeps
 * serving.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import type { AcceptErrorEvent, Conn, Listener } from "../../src/core/net/contract.ts";
import { nodeNet } from "../../src/runtimes/node/net.ts";
import { LISTEN_BACKLOG } from "../../src/runtimes/shared/accept.ts";
import { listenInode, socketDescriptors } from "../helpers/proc-sockets.ts";
import {
  ACCEPT_HANDLES_FD_SHARE,
  DEFAULT_EXTRA_ACCEPT_HANDLES,
  extraAcceptHandles,
  MAX_EXTRA_ACCEPT_HANDLES,
} from "../../src/runtimes/node/accept-handles.ts";

const limits = (soft: string, hard = "524288"): string =>
  [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             94000                94000                processes ",
    `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
    "Max locked memory         8388608              8388608              bytes     ",
  ].join("\n");

/** How many of this process's descriptors are the socket `inode`. */
function descriptorsOf(inode: string): number {
  return socketDescriptors(inode).length;
}

/** Every descriptor some epoll instance of this process watches (`tfd:` lines of its fdinfo). */
function polledFds(): Set<number> {
  const watched = new Set<number>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== "anon_inode:[eventpoll]") continue;
      for (const m of readFileSync(`/proc/self/fdinfo/${fd}`, "latin1").matchAll(/^tfd:\s+(\d+)/gm)) watched.add(Number(m[1]));
    } catch {
      // closed while listing
    }
  }
  return watched;
}

/** The accept-queue limit (`ss`'s Send-Q of a listening socket) of 127.0.0.1:`port`. */
function backlogOf(port: number): number {
  const line = execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "latin1" }).trim();
  const sendQ = line.split(/\s+/)[2];
  if (sendQ === undefined) throw new Error(`ss shows no listener on ${port}: ${JSON.stringify(line)}`);
  return Number(sendQ);
}

async function until(what: string, check: () => boolean, ms = 10_000, every = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Open `n` connections at once to `port`; resolves when every one got a byte back. */
function burst(port: number, n: number): Promise<void> {
  const sockets: Socket[] = [];
  return Promise.all(
    Array.from({ length: n }, () =>
      new Promise<void>((resolve, reject) => {
        const s = connect({ host: "127.0.0.1", port });
        sockets.push(s);
        s.once("data", () => resolve());
        s.once("error", reject);
      })),
  ).then(() => undefined).finally(() => sockets.forEach((s) => s.destroy()));
}

/** Answer each accepted connection with one byte, then close it. */
function greet(conn: Conn): void {
  void conn.write(new Uint8Array([0x2a])).then(() => conn.close(), () => conn.close());
}

/**
 * A burst listener whose accept helper runs `execPath` (the process's executable is swapped
 * only while the listener starts it), and the accept events it reported.
 */
async function listenWithHelperAt(execPath: string): Promise<{ l: Listener; events: AcceptErrorEvent[] }> {
  const events: AcceptErrorEvent[] = [];
  const real = process.execPath;
  process.execPath = execPath;
  try {
    const l = await nodeNet.listenTcp({ host: "127.0.0.1", port: 0 }, greet, { burst: true, onAcceptError: (e) => events.push(e) });
    return { l, events };
  } finally {
    process.execPath = real;
  }
}

const here = extraAcceptHandles(readFileSync("/proc/self/limits", "latin1"));

describe("extraAcceptHandles (copies per listener from the open-files limit)", () => {
  it("takes a 64th of the soft limit, one less, up to the maximum", () => {
    expect(ACCEPT_HANDLES_FD_SHARE).toBe(1 / 64);
    expect(extraAcceptHandles(limits("1024"))).toBe(15);
    expect(extraAcceptHandles(limits("4096"))).toBe(63);
    expect(extraAcceptHandles(limits("8192"))).toBe(MAX_EXTRA_ACCEPT_HANDLES);
    expect(extraAcceptHandles(limits("1048576"))).toBe(MAX_EXTRA_ACCEPT_HANDLES);
    expect(extraAcceptHandles(limits("unlimited", "unlimited"))).toBe(MAX_EXTRA_ACCEPT_HANDLES);
    expect(MAX_EXTRA_ACCEPT_HANDLES).toBe(127);
  });

  it("makes none under a tiny limit, and a few when the limit cannot be read", () => {
    expect(extraAcceptHandles(limits("64"))).toBe(0);
    expect(extraAcceptHandles(limits("100"))).toBe(0);
    expect(extraAcceptHandles(limits("192"))).toBe(2);
    expect(extraAcceptHandles(undefined)).toBe(DEFAULT_EXTRA_ACCEPT_HANDLES);
    expect(extraAcceptHandles("no such line")).toBe(DEFAULT_EXTRA_ACCEPT_HANDLES);
  });
});

describe("Node listener with burst: true", () => {
  it("listens through more descriptors of one socket, each taking connections, all closed with it", async () => {
    expect(here).toBeGreaterThan(0);
    let accepted = 0;
    const l = await nodeNet.listenTcp({ host: "127.0.0.1", port: 0 }, (c) => { accepted++; greet(c); }, { burst: true });
    const inode = listenInode(l.addr.port);
    try {
      await until(`${here} copies`, () => descriptorsOf(inode) === 1 + here);
      // every copy is polled (so it accepts), and the copies keep the socket's backlog
      const polled = polledFds();
      expect(socketDescriptors(inode).filter((fd) => !polled.has(fd))).toEqual([]);
      const somaxconn = Number(readFileSync("/proc/sys/net/core/somaxconn", "latin1"));
      expect(backlogOf(l.addr.port)).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
      await burst(l.addr.port, 400);
      expect(accepted).toBe(400);
    } finally {
      await l.close();
    }
    expect(descriptorsOf(inode)).toBe(0);
    await expect(burst(l.addr.port, 1)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("closed while the copies arrive: every descriptor is gone, the helper's too, when close() resolves", async () => {
    for (let round = 0; round < 5; round++) {
      const l = await nodeNet.listenTcp({ host: "127.0.0.1", port: 0 }, greet, { burst: true });
      const inode = listenInode(l.addr.port);
      await until("the first copies", () => descriptorsOf(inode) > 1, 10_000, 1);
      await l.close();
      expect(descriptorsOf(inode)).toBe(0);
      // the port is free at once: no process (the helper included) still holds the socket
      const again = await nodeNet.listenTcp({ host: "127.0.0.1", port: l.addr.port }, greet);
      await again.close();
    }
  });

  it("without burst, the listener has its one descriptor", async () => {
    const l = await nodeNet.listenTcp({ host: "127.0.0.1", port: 0 }, greet);
    const inode = listenInode(l.addr.port);
    try {
      await new Promise((r) => setTimeout(r, 500)); // time enough for copies, were any made
      expect(descriptorsOf(inode)).toBe(1);
      await burst(l.addr.port, 20);
    } finally {
      await l.close();
    }
  });

  it("closed before the copies arrive: none stays open, and the port is free", async () => {
    const l = await nodeNet.listenTcp({ host: "127.0.0.1", port: 0 }, greet, { burst: true });
    const inode = listenInode(l.addr.port);
    await l.close();
    expect(descriptorsOf(inode)).toBe(0);
    await new Promise((r) => setTimeout(r, 500)); // and none arrives later
    expect(descriptorsOf(inode)).toBe(0);
    const again: Listener = await nodeNet.listenTcp({ host: "127.0.0.1", port: l.addr.port }, greet);
    await again.close();
  });

  it("a process that closes its listener while the helper still runs waits for the helper, then ends normally", () => {
    // Node ends a process whose event loop is empty while a top-level await is pending (exit
    // code 13): close() must keep the loop alive until the helper it stopped has exited.
    const net = pathToFileURL(join(process.cwd(), "src/runtimes/node/net.ts")).href;
    const code = `const { nodeNet } = await import(${JSON.stringify(net)});
const l = await nodeNet.listenTcp({ host: "127.0.0.1", port: 0 }, (c) => c.close(), { burst: true });
await l.close();
console.log("closed");`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 20_000 });
    expect({ status: r.status, stdout: r.stdout.trim() }, r.stderr).toEqual({ status: 0, stdout: "closed" });
  });

  it("a helper that exits without sending copies is reported once, with its exit code", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cnp-accept-helper-"));
    const fake = join(dir, "node");
    writeFileSync(fake, "#!/bin/sh\nexit 3\n", { mode: 0o755 });
    const { l, events } = await listenWithHelperAt(fake);
    try {
      await until("the report", () => events.length > 0);
      expect(events).toHaveLength(1);
      expect((events[0] as { error: Error }).error.message).toBe(
        "accepting through one descriptor: adding more failed (the accept helper exited (code 3) without sending copies)",
      );
      await burst(l.addr.port, 20);
    } finally {
      await l.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a helper that cannot start is reported once; the listener serves through its one descriptor", async () => {
    const { l, events } = await listenWithHelperAt("/nonexistent/node-for-the-accept-helper");
    try {
      await until("the report", () => events.length > 0);
      expect(events).toHaveLength(1);
      expect(events[0]!.kind).toBe("limited");
      expect((events[0] as { error: Error }).error.message).toMatch(/accepting through one descriptor: adding more failed \(.*ENOENT/);
      expect(descriptorsOf(listenInode(l.addr.port))).toBe(1);
      await burst(l.addr.port, 20);
    } finally {
      await l.close();
    }
  });
});
