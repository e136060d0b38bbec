/**
 * The socket contract on `node:net` and `node:dns`. Reads pull from a bounded queue (the
 * socket is paused above a high-water mark, see `runtimes/shared/node-conn.ts`); writes resolve at once unless the
 * socket asks for `drain`. Dialled TCP sockets read into buffers of our own (`runtimes/shared/own-reads.ts`);
 * tunnels relay natively: `stream.pipe` from the accepted side, direct writes from the dialled one.
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
import type { Conn, DialOptions, FetchHandler, Listener, ListenOptions, Net, NetAddr } from "../../core/net/contract.ts";
import { NodeConn, pipeRelay } from "../shared/node-conn.ts";
import { AcceptBackoff, LISTEN_BACKLOG } from "../shared/accept.ts";
import { bindDgram } from "../shared/dgram-udp.ts";
import { connectNodeTls } from "../shared/node-tls.ts";
import { acceptTlsOver } from "../shared/tls-accept.ts";
import { errnoFailure, settleNodeDial } from "../shared/node-dial.ts";
import { bufferBytes } from "../shared/buffer-bytes.ts";
import { OwnReads } from "../shared/own-reads.ts";
import { AcceptHandles } from "./accept-handles.ts";
import { installFastBytes } from "../../core/net/bytes.ts";

// Node's pooled allocator and native latin1 encoder for the heads and joins made per request.
installFastBytes(bufferBytes);

/**
 * Keep a listening `net.Server` (an `http.Server` too) alive through accept errors. libuv
 * handles EMFILE/ENFILE itself with a reserved descriptor: it accepts and closes what is queued
 * (those clients see their connection closed) and goes on listening, so these never reach
 * JavaScript. Any other accept error, and EMFILE when libuv could not reserve its descriptor
 * again, is emitted as `error` on the server: without a listener, an uncaught exception that
 * ends the process. libuv keeps polling the listening socket on its own, so there is no pause to
 * make here; the backoff only reports the burst (first error, then the count on recovery). Pass
 * one `backoff` to every server of a listening socket (its accept-handle copies) so that a burst
 * is reported once for the socket, not once per copy.
 */
export function surviveAcceptErrors(server: net.Server, options?: ListenOptions, backoff = new AcceptBackoff(options?.onAcceptError)): void {
  server.on("error", (e) => backoff.failed(e));
  server.on("connection", () => backoff.succeeded());
}

/**
 * Bind `server` on `addr` (exclusively, with a backlog of {@link LISTEN_BACKLOG}) and keep it
 * alive through accept errors; the listener's `close` is `close`.
 */
function listenServer(
  server: net.Server,
  addr: NetAddr,
  options: ListenOptions | undefined,
  close: () => Promise<void>,
  backoff?: AcceptBackoff,
): Promise<Listener> {
  return new Promise<Listener>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: addr.host, port: addr.port, exclusive: true, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      surviveAcceptErrors(server, options, backoff);
      const a = server.address() as net.AddressInfo;
      resolve({ addr: { host: a.address, port: a.port }, close });
    });
  });
}

/** The Node implementation of {@link Net}. */
export const nodeNet: Net = {
  async listenTcp(addr, onConn, options) {
    const make = (): net.Server =>
      net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        if (socket.remoteAddress === undefined) {
          socket.destroy(); // already gone between accept and callback
          return;
        }
        onConn(new NodeConn(socket));
      });
    const server = make();
    const backoff = new AcceptBackoff(options?.onAcceptError); // one per socket, copies included
    let extra: AcceptHandles | undefined;
    const close = async (): Promise<void> => {
      await Promise.all([extra?.close(), new Promise<void>((r) => server.close(() => r()))]);
    };
    const listener = await listenServer(server, addr, options, close, backoff);
    if (options?.burst === true) {
      extra = new AcceptHandles(server, {
        make,
        listening: (copy) => surviveAcceptErrors(copy, options, backoff),
        report: options.onAcceptError,
        backlog: LISTEN_BACKLOG,
      });
    }
    return listener;
  },

  connectTcp(addr: NetAddr, options?: DialOptions) {
    const reads = new OwnReads();
    const socket = net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true, noDelay: true, onread: reads.option });
    return settleNodeDial(socket, { ready: "connect", target: addr, signal: options?.signal, describe: errnoFailure, reads });
  },

  serveHttp(addr: NetAddr, fetch: FetchHandler, options?: ListenOptions) {
    const server = createAdaptorServer({ fetch, hostname: addr.host, port: addr.port }) as Server;
    const close = (): Promise<void> =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    return listenServer(server, addr, options, close);
  },

  bindUdp: bindDgram,

  connectTls: connectNodeTls,

  acceptTls: acceptTlsOver,

  connectUnix(path: string) {
    const socket = net.connect({ path, allowHalfOpen: true });
    return settleNodeDial(socket, { ready: "connect", target: { host: path, port: 0 }, describe: errnoFailure });
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
