/**
 * More accept handles for one listening socket, so that Node keeps accepting during bursts.
 *
 * Since libuv 1.45 (libuv pull request 3696, shipped in Node 20) a listening handle accepts one
 * connection each time epoll reports it ready. epoll reports it once per batch of up to 1,024
 * ready sockets, so a proxy whose thousands of clients are all busy accepted a few connections per
 * second and left the rest in the kernel's accept queue (nodejs/node issue 57364; the burst-load
 * check in BENCHMARKS.md). Every further descriptor of the same socket is one more epoll
 * registration, so one more accept per batch (see {@link MAX_EXTRA_ACCEPT_HANDLES}).
 *
 * Node has no `dup()`, and `reusePort` (separate sockets) only from 22.12, so the descriptors are
 * made the way Node's cluster module shares a listening socket: the listening handle is sent to a
 * short-lived helper process over Node's IPC channel (`SCM_RIGHTS`), and the helper sends it back
 * up to {@link MAX_EXTRA_ACCEPT_HANDLES} times. Each copy arrives as a new descriptor of the same socket and
 * listens with the same connection handler. The handle travels raw (not as a `net.Server`), so the
 * helper never listens on it itself and never takes a connection; it closes its copy and exits.
 *
 * The copies are an optimisation only: the listener works from the moment its first descriptor
 * listens, and if the helper cannot be started or fails, it keeps that one and says so once
 * through the listener's `onAcceptError`.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as net from "node:net";
import type { AcceptErrorEvent } from "../../core/net/contract.ts";

/**
 * Most descriptors added to one listening socket. Each is one more accept per epoll batch under
 * load: with 8,000 busy keep-alive clients, 63 let about 7,000 in within 10 s and 127 all of them
 * (BENCHMARKS.md). While the accept queue is empty a copy costs nothing (epoll does not report
 * it); when a connection arrives alone, every copy is reported and all but one accept find the
 * queue empty (`EAGAIN`): with 255 copies that cost a fifth of the new-connection req/s, with 127
 * nothing measurable.
 */
export const MAX_EXTRA_ACCEPT_HANDLES = 127;

/**
 * Share of the open-files limit the copies of one listening socket may take: with a limit of
 * 1,024 a listener gets 15 copies, with 8,192 or more the full {@link MAX_EXTRA_ACCEPT_HANDLES}.
 * Node raises its soft limit to the hard one at start, so this is usually the hard limit. The
 * copies are taken whether or not that many descriptors are free at the time.
 */
export const ACCEPT_HANDLES_FD_SHARE = 1 / 64;

/** Copies made when the open-files limit cannot be read (no `/proc/self/limits`). */
export const DEFAULT_EXTRA_ACCEPT_HANDLES = 15;

/**
 * How many copies to make under the soft open-files limit given in `limits` (the text of Linux's
 * `/proc/self/limits`, `undefined` when it could not be read).
 */
export function extraAcceptHandles(limits: string | undefined): number {
  const soft = limits === undefined ? undefined : /^Max open files\s+(\d+|unlimited)\s/m.exec(limits)?.[1];
  if (soft === undefined) return DEFAULT_EXTRA_ACCEPT_HANDLES;
  if (soft === "unlimited") return MAX_EXTRA_ACCEPT_HANDLES;
  return Math.max(0, Math.min(MAX_EXTRA_ACCEPT_HANDLES, Math.floor(Number(soft) * ACCEPT_HANDLES_FD_SHARE) - 1));
}

/** {@link extraAcceptHandles} for this process. */
function extraAcceptHandlesHere(): number {
  try {
    return extraAcceptHandles(readFileSync("/proc/self/limits", "latin1"));
  } catch {
    return extraAcceptHandles(undefined);
  }
}

/** How long the helper may take to send the copies back before it is stopped. */
export const ACCEPT_HELPER_TIMEOUT_MS = 10_000;

/**
 * The helper process's program: send the received handle back `count` times, then close it and
 * leave. It runs with `-e`, so it needs no file on disk (the built package and a checkout alike).
 */
const HELPER_SOURCE = [
  "process.on('message', (m, h) => {",
  "  let left = m.count;",
  "  const done = () => { if (--left === 0) { h.close(); process.disconnect(); } };",
  "  for (let i = 0; i < m.count; i++) process.send({ copy: i }, h, done);",
  "});",
].join("\n");

/** The raw libuv handle a listening `net.Server` keeps (Node's own, undocumented, stable field). */
interface ServerWithHandle {
  readonly _handle?: unknown;
}

/** A handle received over the IPC channel before anything listens on it. */
interface RawHandle {
  close?(): void;
}

/** What {@link AcceptHandles} needs to listen on each copy like on the server itself. */
export interface AcceptHandlesOptions {
  /** A new server with the same connection handler (not listening yet). */
  readonly make: () => net.Server;
  /** Called once a copy listens (e.g. to keep it alive through accept errors). */
  readonly listening?: (copy: net.Server) => void;
  /** Told once when no copy could be made (the server goes on alone). */
  readonly report?: (event: AcceptErrorEvent) => void;
  /** Listen backlog for the copies (the socket's own; `listen()` again only restates it). */
  readonly backlog?: number;
  /** How many copies (by default from the open-files limit: {@link extraAcceptHandles}). */
  readonly count?: number;
}

/**
 * Whether this process's executable can run the helper as plain Node: not in Electron (its
 * executable is the app; `ELECTRON_RUN_AS_NODE` would be needed) and not in a single-executable
 * application (its executable runs the embedded app, not `-e`).
 */
function helperRunnable(): string | undefined {
  if ((process.versions as Record<string, string | undefined>).electron !== undefined) return "the executable is Electron's";
  try {
    const sea = createRequire(import.meta.url)("node:sea") as { isSea?: () => boolean };
    if (sea.isSea?.() === true) return "the executable is a single-executable application";
  } catch {
    // no node:sea (Node before 20.12): not one
  }
  return undefined;
}

/** After the helper was asked to stop, how long it gets before it is killed outright. */
export const ACCEPT_HELPER_KILL_MS = 500;

/** Extra accept handles being made or made for one listening server. */
export class AcceptHandles {
  private readonly servers: net.Server[] = [];
  private helper: ChildProcess | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private reported = false;
  /** Copies the helper sent. */
  private received = 0;
  /** Resolves once no helper holds a descriptor of the socket any more. */
  private helperGone: Promise<void> = Promise.resolve();

  /**
   * Start making copies of `server`'s listening descriptor (`server` must already listen); each
   * copy is a server from `options.make`, so it handles its connections like `server`. Never
   * throws: whatever goes wrong leaves `server` accepting alone, reported once.
   */
  constructor(
    server: net.Server,
    private readonly options: AcceptHandlesOptions,
  ) {
    try {
      this.start(server);
    } catch (e) {
      this.fail(e);
    }
  }

  private start(server: net.Server): void {
    const count = this.options.count ?? extraAcceptHandlesHere();
    const handle = (server as unknown as ServerWithHandle)._handle;
    if (count <= 0 || handle === undefined || handle === null) return;
    const cannot = helperRunnable();
    if (cannot !== undefined) return this.fail(new Error(`no helper process can run: ${cannot}`));
    const child = spawn(process.execPath, ["-e", HELPER_SOURCE], {
      stdio: ["ignore", "ignore", "ignore", "ipc"],
      env: {}, // no NODE_OPTIONS: the helper loads nothing
      windowsHide: true,
    });
    this.helper = child;
    this.helperGone = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      if (child.pid === undefined) child.once("error", () => resolve()); // never started: no exit follows
    });
    child.on("error", (e) => this.fail(e));
    // A helper exits only after the parent acknowledged its last copy, that is after every
    // copy's message was handled here: exiting with none handled is a failure.
    child.on("exit", (code, signal) => this.fail(new Error(`the accept helper exited (${signal ?? `code ${code}`}) without sending copies`)));
    child.on("message", (_m: unknown, copy: unknown) => this.adopt(copy));
    if (child.pid === undefined) return; // spawning failed (EMFILE, EAGAIN…): its "error" follows
    this.timer = setTimeout(() => this.fail(new Error(`the accept helper sent no copies within ${ACCEPT_HELPER_TIMEOUT_MS} ms`)), ACCEPT_HELPER_TIMEOUT_MS);
    this.timer.unref?.();
    child.unref();
    child.channel?.unref?.();
    child.send({ count }, handle as net.Server);
  }

  /**
   * Close every copy and stop a helper still at work. Resolves once no descriptor of the socket
   * is left open, the helper's included, so the port is free again.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.settle();
    await Promise.all([...this.servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))), this.helperGone]);
  }

  private adopt(copy: unknown): void {
    if (copy === undefined || copy === null) return;
    this.received++;
    if (this.closed) {
      // the listener was closed meanwhile: the copy (a raw handle, not listening) is closed unused
      (copy as RawHandle).close?.();
      return;
    }
    const server = this.options.make();
    this.servers.push(server);
    const dropped = (): void => {
      // a copy that fails to listen is dropped; the others and the server go on
      const i = this.servers.indexOf(server);
      if (i >= 0) this.servers.splice(i, 1);
      server.close();
    };
    server.once("error", dropped);
    server.listen(copy as net.Server, this.options.backlog, () => {
      server.off("error", dropped);
      this.options.listening?.(server);
    });
  }

  /**
   * The helper failed or is done. With no copy received (and the listener still open), that is
   * reported, once.
   */
  private fail(error: unknown): void {
    if (!this.closed && !this.reported && this.received === 0) {
      this.reported = true;
      try {
        const why = error instanceof Error ? error.message : String(error);
        this.options.report?.({ kind: "limited", error: new Error(`accepting through one descriptor: adding more failed (${why})`, { cause: error }) });
      } catch {
        // a failing reporter changes nothing here
      }
    }
    this.settle();
  }

  /** Stop the timer and a helper still running (killed outright if it does not go at once). */
  private settle(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const child = this.helper;
    this.helper = undefined;
    if (child === undefined || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.ref(); // whoever awaits close() waits for the exit: the process must not end before it
    child.kill();
    const kill = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }, ACCEPT_HELPER_KILL_MS);
    child.once("exit", () => clearTimeout(kill));
  }
}
