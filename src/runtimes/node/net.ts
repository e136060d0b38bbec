/**
 * The socket contract on `node:net` and `node:dns`. Reads pull from a bounded queue (the
 * socket is paused above a high-water mark, see `conn.ts`); writes resolve at once unless the
 * socket asks for `drain`; tunnels use `stream.pipe`, Node's native relay.
 *
 * Listeners ask for a backlog of {@link LISTEN_BACKLOG} (Node's default is 511) and survive
 * accept errors: see {@link surviveAcceptErrors}.
 *
 * @module
 */
import { createAdaptorServer } from "@hono/node-server";
import type { Server } from "node:http";
import { lookup } from "node:dns/promises";
import { realpath } from "node:fs/promises";
import * as net from "node:net";
import {
  DialError,
  type Conn,
  type DialFailure,
  type DialOptions,
  type FetchHandler,
  type Listener,
  type ListenOptions,
  type Net,
  type NetAddr,
} from "../../core/net/contract.ts";
import { NodeConn, pipeRelay } from "./conn.ts";
import { AcceptBackoff, LISTEN_BACKLOG } from "../shared/accept.ts";
import { bindDgram } from "../shared/dgram-udp.ts";
import { connectNodeTls } from "../shared/node-tls.ts";

function dialFailure(e: NodeJS.ErrnoException): DialFailure {
  switch (e.code) {
    case "ECONNREFUSED":
      return "refused";
    case "EHOSTUNREACH":
      return "host_unreachable";
    case "ENETUNREACH":
      return "network_unreachable";
    case "ETIMEDOUT":
    case "ABORT_ERR":
      return "timeout";
    default:
      return "other";
  }
}

/**
 * Keep a listening `net.Server` (an `http.Server` too) alive through accept errors. libuv
 * handles EMFILE/ENFILE itself with a reserved descriptor: it accepts and closes what is queued
 * (those clients see their connection closed) and goes on listening, so these never reach
 * JavaScript. Any other accept error, and EMFILE when libuv could not reserve its descriptor
 * again, is emitted as `error` on the server: without a listener, an uncaught exception that
 * ends the process. libuv keeps polling the listening socket on its own, so there is no pause to
 * make here; the backoff only reports the burst (first error, then the count on recovery).
 */
export function surviveAcceptErrors(server: net.Server, options?: ListenOptions): void {
  const backoff = new AcceptBackoff(options?.onAcceptError);
  server.on("error", (e) => backoff.failed(e));
  server.on("connection", () => backoff.succeeded());
}

/** The Node implementation of {@link Net}. */
export const nodeNet: Net = {
  listenTcp(addr, onConn, options) {
    return new Promise<Listener>((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        if (socket.remoteAddress === undefined) {
          socket.destroy(); // already gone between accept and callback
          return;
        }
        onConn(new NodeConn(socket));
      });
      server.once("error", reject);
      server.listen({ host: addr.host, port: addr.port, exclusive: true, backlog: LISTEN_BACKLOG }, () => {
        server.off("error", reject);
        surviveAcceptErrors(server, options);
        const a = server.address() as net.AddressInfo;
        resolve({
          addr: { host: a.address, port: a.port },
          close: () => new Promise<void>((r) => server.close(() => r())),
        });
      });
    });
  },

  connectTcp(addr: NetAddr, options?: DialOptions) {
    return new Promise<Conn>((resolve, reject) => {
      const socket = net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true, noDelay: true });
      const signal = options?.signal;
      const onAbort = (): void => {
        socket.destroy();
        reject(new DialError("timeout", addr, "dial aborted or timed out"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      socket.once("error", (e: NodeJS.ErrnoException) => {
        signal?.removeEventListener("abort", onAbort);
        reject(new DialError(dialFailure(e), addr, e.message, { cause: e }));
      });
      socket.once("connect", () => {
        signal?.removeEventListener("abort", onAbort);
        socket.removeAllListeners("error");
        resolve(new NodeConn(socket));
      });
    });
  },

  serveHttp(addr: NetAddr, fetch: FetchHandler, options?: ListenOptions) {
    return new Promise<Listener>((resolve, reject) => {
      const server = createAdaptorServer({ fetch, hostname: addr.host, port: addr.port }) as Server;
      server.once("error", reject);
      server.listen({ host: addr.host, port: addr.port, exclusive: true, backlog: LISTEN_BACKLOG }, () => {
        server.off("error", reject);
        surviveAcceptErrors(server, options);
        const a = server.address() as net.AddressInfo;
        resolve({
          addr: { host: a.address, port: a.port },
          close: () =>
            new Promise<void>((r) => {
              server.close(() => r());
              server.closeAllConnections();
            }),
        });
      });
    });
  },

  bindUdp: bindDgram,

  connectTls: connectNodeTls,

  connectUnix(path: string) {
    return new Promise<Conn>((resolve, reject) => {
      const socket = net.connect({ path, allowHalfOpen: true });
      socket.once("error", (e: NodeJS.ErrnoException) => reject(new DialError(dialFailure(e), { host: path, port: 0 }, e.message, { cause: e })));
      socket.once("connect", () => {
        socket.removeAllListeners("error");
        resolve(new NodeConn(socket));
      });
    });
  },

  realPath: (path: string) => realpath(path),

  async resolve(host: string) {
    const found = await lookup(host, { all: true, verbatim: true });
    return found.map((r) => r.address);
  },

  relay(a: Conn, b: Conn) {
    if (!(a instanceof NodeConn) || !(b instanceof NodeConn)) return undefined;
    return pipeRelay(a, b);
  },
};
