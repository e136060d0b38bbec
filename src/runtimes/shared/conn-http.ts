/**
 * HTTP/1.1 served on connections the adapter accepted itself: each {@link Conn} becomes a
 * `stream.Duplex` handed to a `node:http` server that never listens (`emit("connection")`,
 * which `node:http` documents for any Duplex), and requests reach a web-standard fetch handler
 * through `@hono/node-server`. Lets a runtime whose own HTTP server stops accepting for good
 * when descriptors run out (Deno's `Deno.serve`, and its `node:http`/`node:net` listeners) serve
 * the admin API behind an accept loop that survives it. Needs `node:http` and `node:stream`.
 *
 * @module
 */
import { getRequestListener } from "@hono/node-server";
import { createServer } from "node:http";
import { Duplex } from "node:stream";
import type { Conn, FetchHandler } from "../../core/net/contract.ts";

/** How long a served connection may stay silent (no byte either way) before it is closed. */
export const HTTP_IDLE_TIMEOUT_MS = 30_000;

/** HTTP served on accepted connections. */
export interface ConnHttpServer {
  /** Serve HTTP on an accepted connection until the client or {@link closeAll} closes it. */
  serve(conn: Conn): void;
  /** Close every connection being served. */
  closeAll(): void;
}

/** An HTTP server for `fetch` that serves the connections given to it. */
export function connHttpServer(fetch: FetchHandler, idleTimeoutMs = HTTP_IDLE_TIMEOUT_MS): ConnHttpServer {
  const server = createServer(getRequestListener(fetch));
  const live = new Set<Duplex>();
  return {
    serve(conn) {
      const socket = connDuplex(conn, idleTimeoutMs);
      live.add(socket);
      socket.once("close", () => live.delete(socket));
      server.emit("connection", socket);
    },
    closeAll() {
      for (const s of live) s.destroy();
      live.clear();
    },
  };
}

/**
 * A Duplex over a {@link Conn}: reads pull chunks while the consumer wants more, writes resolve
 * when the connection took the bytes, `end()` half-closes, destroying closes. A connection
 * silent for `idleTimeoutMs` is destroyed.
 */
export function connDuplex(conn: Conn, idleTimeoutMs = HTTP_IDLE_TIMEOUT_MS): Duplex {
  let pumping = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const touch = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => socket.destroy(), idleTimeoutMs);
  };
  const socket: Duplex = new Duplex({
    read() {
      if (pumping) return;
      pumping = true;
      void (async () => {
        try {
          for (;;) {
            const chunk = await conn.read();
            touch();
            if (chunk === null) return void socket.push(null);
            if (!socket.push(chunk)) return;
          }
        } catch (e) {
          socket.destroy(e as Error);
        } finally {
          pumping = false;
        }
      })();
    },
    write(chunk: Uint8Array, _encoding, done) {
      touch();
      if (chunk.length === 0) return done(); // node:http flushes with empty writes
      conn.write(chunk).then(() => done(), done);
    },
    final(done) {
      conn.closeWrite().then(() => done(), done);
    },
    destroy(error, done) {
      clearTimeout(timer);
      conn.close();
      done(error);
    },
  });
  // What `node:http` and its users may read off a socket.
  Object.assign(socket, {
    remoteAddress: conn.remote.host,
    remotePort: conn.remote.port,
    localAddress: conn.local.host,
    localPort: conn.local.port,
  });
  touch();
  return socket;
}
