/**
 * Settling the dial of a `net.Socket` (`net.connect`, `tls.connect`) of the Node-compatible
 * adapters: resolve with the connection once it is ready, reject with a {@link DialError} on
 * its first error, and give up on an aborted signal, destroying the socket.
 *
 * @module
 */
import type * as net from "node:net";
import { DialError, type Conn, type DialFailure, type NetAddr } from "../../core/net/contract.ts";
import { dialFailure } from "./dial-failure.ts";
import { NodeConn } from "./node-conn.ts";
import type { OwnReads } from "./own-reads.ts";

/** A socket error as a dial failure: its kind, and its message as the detail. */
export function errnoFailure(e: NodeJS.ErrnoException): { kind: DialFailure; detail: string } {
  return { kind: dialFailure(e), detail: e.message };
}

/** How {@link settleNodeDial} reads one dial. */
export interface NodeDial {
  /** The event that means the socket is usable: `connect`, or `secureConnect` for TLS. */
  readonly ready: "connect" | "secureConnect";
  /** What a failure reports as its target (the vetted address, or the unix path with port 0). */
  readonly target: NetAddr;
  /** Ends the dial early; reported as a `timeout`. */
  readonly signal?: AbortSignal;
  /** Detail of an abort, e.g. `dial aborted or timed out`. */
  readonly abortDetail?: string;
  /** The socket was created with this `onread` option (see own-reads.ts). */
  readonly reads?: OwnReads;
  /** The failure kind and detail of a socket error. */
  describe(e: NodeJS.ErrnoException): { readonly kind: DialFailure; readonly detail: string };
}

/** Wait for `socket` to be ready (see {@link NodeDial}); the error listener is removed once it is. */
export function settleNodeDial(socket: net.Socket, dial: NodeDial): Promise<Conn> {
  return new Promise<Conn>((resolve, reject) => {
    const { signal, target } = dial;
    const onAbort = (): void => {
      socket.destroy();
      reject(new DialError("timeout", target, dial.abortDetail ?? "dial aborted or timed out", { cause: signal?.reason }));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      signal?.removeEventListener("abort", onAbort);
      const { kind, detail } = dial.describe(e);
      reject(new DialError(kind, target, detail, { cause: e }));
    });
    socket.once(dial.ready, () => {
      signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      resolve(new NodeConn(socket, dial.reads));
    });
  });
}
