/**
 * Loopback servers the proxy talks to: an HTTP origin that echoes what it received, a TCP
 * echo server (CONNECT tunnels, half-close) and a "server closes first" TCP server.
 */
import { createHash } from "node:crypto";
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server as HttpServer } from "node:http";
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { join } from "node:path";
import { patternByte, withDeadline } from "./util.ts";

/** What the origin's echo route answers (JSON). */
export interface EchoReply {
  method: string;
  url: string;
  httpVersion: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  bodyLength: number;
  bodySha256: string;
}

/** A running HTTP origin on 127.0.0.1 (or on a unix socket: then `port` is 0). */
export interface Origin {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Every request the origin received (method and url), in order. */
  readonly requests: { method: string; url: string }[];
  /** How many TCP connections it accepted. */
  connections(): number;
  close(): Promise<void>;
}

const CHUNK = 64 * 1024;

/**
 * Start the origin. Routes:
 * - `/bytes?n=N` streams the pattern bytes in 64 KiB chunks with a Content-Length; add
 *   `&chunked=1` for chunked transfer coding instead.
 * - `/close?n=N` answers without Content-Length or chunking: the body (pattern bytes, default
 *   `close-delimited body`) ends when the origin closes the connection.
 * - anything else: JSON {@link EchoReply} of the request.
 */
export async function startOrigin(opts: { socketPath?: string } = {}): Promise<Origin> {
  const requests: { method: string; url: string }[] = [];
  let connections = 0;
  const server: HttpServer = createHttpServer({ maxHeaderSize: 64 * 1024, keepAliveTimeout: 10_000 }, (req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "" });
    const url = new URL(req.url ?? "/", "http://origin.invalid");
    if (url.pathname === "/bytes") {
      req.resume();
      const n = Number(url.searchParams.get("n") ?? "0");
      const chunked = url.searchParams.get("chunked") === "1";
      res.statusCode = 200;
      res.setHeader("content-type", "application/octet-stream");
      if (!chunked) res.setHeader("content-length", String(n));
      let sent = 0;
      const pump = () => {
        while (sent < n) {
          const len = Math.min(CHUNK, n - sent);
          const buf = Buffer.allocUnsafe(len);
          for (let i = 0; i < len; i++) buf[i] = patternByte(sent + i);
          sent += len;
          if (!res.write(buf)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      if (req.method === "HEAD") res.end();
      else pump();
      return;
    }
    if (url.pathname === "/close") {
      req.resume();
      req.once("end", () => {
        const n = url.searchParams.get("n");
        const body = n === null ? Buffer.from("close-delimited body") : Buffer.from(Array.from({ length: Number(n) }, (_, i) => patternByte(i)));
        const socket = req.socket;
        socket.write("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n");
        socket.end(body);
      });
      return;
    }
    const hash = createHash("sha256");
    let length = 0;
    req.on("data", (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    req.on("end", () => {
      const reply: EchoReply = {
        method: req.method ?? "",
        url: req.url ?? "",
        httpVersion: req.httpVersion,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyLength: length,
        bodySha256: hash.digest("hex"),
      };
      const body = JSON.stringify(reply);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(req.method === "HEAD" ? undefined : body);
    });
  });
  server.on("connection", () => connections++);
  server.on("clientError", (_err, socket) => socket.destroy());
  const port = opts.socketPath === undefined ? await listen(server) : await listenUnix(server, opts.socketPath);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => connections,
    async close() {
      server.closeAllConnections();
      await withDeadline(new Promise<void>((r) => server.close(() => r())), 5_000, "origin close");
    },
  };
}

/** A running TCP server on 127.0.0.1. */
export interface TcpServer {
  readonly port: number;
  /** Per accepted connection, what it received and whether the peer half-closed. */
  readonly sessions: { received: Buffer; gotEnd: boolean }[];
  close(): Promise<void>;
}

/**
 * TCP echo server: echoes every byte; when the peer half-closes (FIN), it finishes echoing
 * and then closes its side. `allowHalfOpen` keeps it from closing on its own before that.
 */
export async function startEchoServer(): Promise<TcpServer> {
  const sessions: { received: Buffer; gotEnd: boolean }[] = [];
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const s = { received: Buffer.alloc(0), gotEnd: false };
    sessions.push(s);
    socket.on("data", (c: Buffer) => {
      s.received = Buffer.concat([s.received, c]);
      socket.write(c);
    });
    socket.on("end", () => {
      s.gotEnd = true;
      socket.end();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await listen(server);
  return { port, sessions, close: () => closeNet(server, sockets) };
}

/**
 * "Server speaks and half-closes first": on connect it writes `banner` and shuts down its
 * write side, then keeps reading until the peer's FIN, recording what arrived.
 */
export async function startBannerServer(banner: string): Promise<TcpServer> {
  const sessions: { received: Buffer; gotEnd: boolean }[] = [];
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    const s = { received: Buffer.alloc(0), gotEnd: false };
    sessions.push(s);
    socket.end(banner);
    socket.on("data", (c: Buffer) => {
      s.received = Buffer.concat([s.received, c]);
    });
    socket.on("end", () => {
      s.gotEnd = true;
      socket.destroy();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await listen(server);
  return { port, sessions, close: () => closeNet(server, sockets) };
}

/** A loopback port with nothing listening on it (bound, then closed). */
export async function deadPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await withDeadline(new Promise<void>((r) => server.close(() => r())), 5_000, "close probe server");
  return port;
}

function listen(server: NetServer | HttpServer): Promise<number> {
  return withDeadline(
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const a = server.address();
        if (a === null || typeof a === "string") reject(new Error("no address"));
        else resolve(a.port);
      });
    }),
    5_000,
    "server listen",
  );
}

function listenUnix(server: HttpServer, path: string): Promise<number> {
  return withDeadline(
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve(0));
    }),
    5_000,
    "unix server listen",
  );
}

async function closeNet(server: NetServer, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  await withDeadline(new Promise<void>((r) => server.close(() => r())), 5_000, "tcp server close");
}

/** An HTTPS origin on 127.0.0.1 for `localhost`, with a CA of its own the proxy is told to trust. */
export interface TlsOrigin {
  readonly port: number;
  /** The origin's CA certificate, PEM, written to a file (for `CODEX_CA_CERTIFICATE`). */
  readonly caPath: string;
  /** Every request it got, in order (`authorization` and `cookie` only when sent). */
  readonly seen: { method: string; url: string; host: string; authorization?: string; cookie?: string }[];
  close(): Promise<void>;
}

/**
 * Start an HTTPS origin answering `origin: METHOD URL` (text/plain), its certificate for `name`
 * (default `localhost`; an IP literal gets an IP address entry) issued by a test CA made with the
 * proxy's own CA code (which OpenSSL checks in test/unit/mitm-ca.test.ts); the CA certificate
 * is written into `dir`.
 */
export async function startTlsOrigin(dir: string, name = "localhost"): Promise<TlsOrigin> {
  const { LocalCa } = await import("../../../src/core/mitm/ca.ts");
  const ca = await LocalCa.generate();
  const leaf = await ca.leafFor(name);
  const caPath = join(dir, `origin-ca-${name}.pem`);
  writeFileSync(caPath, ca.certPem);
  const seen: TlsOrigin["seen"] = [];
  const server = createHttpsServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const { authorization, cookie } = req.headers;
    seen.push({ method: req.method ?? "", url: req.url ?? "", host: req.headers.host ?? "", ...(authorization === undefined ? {} : { authorization }), ...(cookie === undefined ? {} : { cookie }) });
    res.setHeader("content-type", "text/plain");
    res.end(`origin: ${req.method} ${req.url}`);
  });
  await withDeadline(new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r())), 5_000, "TLS origin listen");
  return {
    port: (server.address() as { port: number }).port,
    caPath,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
