/**
 * What one request's client or origin can do wrong, end to end against the spawned proxy
 * (README "Behaviour choices": graceful close, clients that leave, body limits):
 * - an origin that answers an upload before reading it: curl still gets the whole answer,
 *   because the proxy says `Connection: close`, half-closes and drains the rest (RFC 9112 §9.6);
 * - a client that leaves while the proxy waits on a silent origin: the upstream connection is
 *   closed at once and the proxy's descriptors return to their baseline;
 * - a body that stops arriving: `408` after `request_body_idle_timeout_secs`;
 * - a chunk size too large for any body: `400` at once.
 * Each is followed by a healthy request through the same proxy.
 *
 * Network: loopback only.
 */
import { readdirSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  curlHttp,
  makeTempDir,
  networkConfig,
  type Origin,
  pollUntil,
  type ProxyProcess,
  RawClient,
  requestOnce,
  startOrigin,
  startProxy,
  withDeadline,
} from "./helpers/index.ts";

/** Size of the uploads the early-answering origin does not read. */
const UPLOAD_BYTES = 5 * 1024 * 1024;
/** The body the early-answering origin sends. */
const EARLY_BODY = "answered before the upload was read\n";

/** A loopback TCP server that hands every accepted socket to `onSocket`; `sockets` keeps them. */
interface RawServer {
  readonly port: number;
  readonly sockets: Socket[];
  /** Sockets whose peer (the proxy) closed, half-closed or reset them. */
  closedCount(): number;
  close(): Promise<void>;
}

async function startRawServer(onSocket: (s: Socket) => void): Promise<RawServer> {
  const sockets: Socket[] = [];
  let closed = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    let gone = false;
    const left = (): void => {
      if (gone) return;
      gone = true;
      closed++;
    };
    s.on("error", left);
    s.on("end", left); // the proxy's FIN (half-open allowed here, so no `close` before we end too)
    s.on("close", left);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    sockets,
    closedCount: () => closed,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Calls `then` once the request head (up to the blank line) has arrived; the body is never read. */
function afterHead(s: Socket, then: () => void): void {
  let head = "";
  const onData = (c: Buffer): void => {
    head += c.toString("latin1");
    if (!head.includes("\r\n\r\n")) return;
    s.off("data", onData);
    s.pause(); // read nothing more: the rest of the upload stays unread
    then();
  };
  s.on("data", onData);
}

/** Open descriptors of a process (Linux). */
function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

let origin: Origin;
let proxy: ProxyProcess;
let tmp: { dir: string; remove(): void };
let upload: string;

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-faults-");
  upload = join(tmp.dir, "upload.bin");
  writeFileSync(upload, Buffer.alloc(UPLOAD_BYTES, 0x61));
  origin = await startOrigin();
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], request_body_idle_timeout_secs: 1 }));
});

afterAll(async () => {
  await proxy?.stop();
  await origin?.close();
  tmp?.remove();
});

/** A healthy GET through the proxy still answers 200. */
async function expectHealthy(): Promise<void> {
  const r = await requestOnce(proxy.port, `GET http://127.0.0.1:${origin.port}/healthy HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nConnection: close\r\n\r\n`);
  expect(r.status).toBe(200);
}

describe("an origin that answers an upload before reading it", () => {
  const variants: [name: string, answer: (s: Socket) => void][] = [
    [
      "200, then it closes without reading",
      (s) => s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${EARLY_BODY.length}\r\nConnection: close\r\n\r\n${EARLY_BODY}`),
    ],
    ["200, then it keeps the connection open and reads nothing", (s) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${EARLY_BODY.length}\r\n\r\n${EARLY_BODY}`)],
    [
      "413 with Connection: close",
      (s) => s.end(`HTTP/1.1 413 Content Too Large\r\nContent-Length: ${EARLY_BODY.length}\r\nConnection: close\r\n\r\n${EARLY_BODY}`),
    ],
  ];
  let server: RawServer;
  let answer: (s: Socket) => void = () => {};

  beforeAll(async () => {
    server = await startRawServer((s) => afterHead(s, () => answer(s)));
  });
  afterAll(async () => server?.close());

  for (const [name, respond] of variants) {
    for (const expectHeader of ["no Expect", "Expect: 100-continue"]) {
      it(`curl uploading 5 MiB gets the whole answer: ${name} (${expectHeader})`, async () => {
        answer = respond;
        const args = ["-x", proxy.url, "--data-binary", `@${upload}`, `http://127.0.0.1:${server.port}/upload`];
        if (expectHeader === "no Expect") args.push("-H", "Expect:");
        const r = await curlHttp(args, { timeoutMs: 20_000 });
        expect(r.code, r.stderr).toBe(0);
        expect(r.text).toBe(EARLY_BODY);
        expect(r.status).toBe(name.startsWith("413") ? 413 : 200);
        // The upload was cut short, so the client connection cannot carry another request.
        expect(r.headers["connection"]).toBe("close");
      });
    }
  }

  it("a raw client reads the whole answer and then sees the proxy's FIN while still uploading", async () => {
    answer = variants[1]![1];
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://127.0.0.1:${server.port}/upload HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`);
      await c.write(Buffer.alloc(64 * 1024, 0x62));
      const r = await c.readResponse({ timeoutMs: 10_000 });
      expect(r.status).toBe(200);
      expect(r.text).toBe(EARLY_BODY);
      expect(r.headers["connection"]).toBe("close");
      // The proxy half-closed and keeps reading: the rest of the upload is taken, not reset.
      await c.write(Buffer.alloc(256 * 1024, 0x62));
      expect(await c.waitClosed(10_000)).toBe(true);
      expect(c.error).toBeUndefined();
    } finally {
      c.destroy();
    }
  });

  it("a refused request with a body is drained the same way", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://denied.invalid/upload HTTP/1.1\r\nHost: denied.invalid\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`);
      const r = await c.readResponse({ timeoutMs: 10_000 });
      expect(r.status).toBe(403);
      expect(r.headers["connection"]).toBe("close");
      await c.write(Buffer.alloc(UPLOAD_BYTES, 0x62));
      expect(await c.waitClosed(10_000)).toBe(true);
      expect(c.error).toBeUndefined();
    } finally {
      c.destroy();
    }
  });

  it("an origin that answers early and keeps the connection without reading is dropped at once", async () => {
    answer = (s) => s.write(`HTTP/1.1 413 Content Too Large\r\nContent-Length: ${EARLY_BODY.length}\r\n\r\n${EARLY_BODY}`);
    await expectHealthy();
    const pid = proxy.child.pid!;
    const baseline = fdCount(pid);
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://127.0.0.1:${server.port}/upload HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`);
      // Enough to fill the socket buffers towards an origin that reads nothing: the body copy
      // is stuck on a write when the answer is complete.
      void c.write(Buffer.alloc(UPLOAD_BYTES, 0x62)).catch(() => {});
      const r = await c.readResponse({ timeoutMs: 10_000 });
      expect(r.status).toBe(413);
      // The request can never be complete: the upstream is dropped, not kept until a linger
      // ends (the origin, reading nothing, cannot see it: the proxy's descriptors show it).
      await pollUntil(() => fdCount(pid) <= baseline + 1, 2_000, `the proxy to drop the upstream (descriptors ${fdCount(pid)}, baseline ${baseline} + the client)`);
      expect(await c.waitClosed(10_000)).toBe(true);
    } finally {
      c.destroy();
    }
  });

  it("a client that resets while an early answer streams and the origin reads nothing: the upstream is dropped", async () => {
    const streams: NodeJS.Timeout[] = [];
    answer = (s) => {
      s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      streams.push(setInterval(() => s.destroyed || s.write("5\r\nhello\r\n"), 50));
    };
    const closedBefore = server.closedCount();
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://127.0.0.1:${server.port}/upload HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Length: 1000000000\r\n\r\n`);
      void c.write(Buffer.alloc(16 * 1024 * 1024, 0x62)).catch(() => {});
      await c.waitUntil(() => c.buffered.includes("hello"), 10_000, "the streamed answer");
      c.socket.resetAndDestroy();
      await pollUntil(() => server.closedCount() > closedBefore, 2_000, "the proxy to drop the upstream connection");
    } finally {
      for (const t of streams) clearInterval(t);
      c.destroy();
    }
  });

  it("the proxy serves others afterwards", expectHealthy);
});

describe("a client that leaves while the proxy waits on a silent origin", () => {
  let silent: RawServer;

  beforeAll(async () => {
    silent = await startRawServer((s) => s.resume()); // reads everything, never answers
  });
  afterAll(async () => silent?.close());

  const requests: [name: string, request: (port: number) => string][] = [
    ["a GET waiting for the response head", (port) => `GET http://127.0.0.1:${port}/slow HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`],
    [
      "a POST whose body was sent, waiting for the response head",
      (port) => `POST http://127.0.0.1:${port}/slow HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 5\r\n\r\nhello`,
    ],
    [
      "a chunked POST whose body was sent, waiting for the response head",
      (port) => `POST http://127.0.0.1:${port}/slow HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ],
  ];

  for (const [name, request] of requests) {
    for (const how of ["closes", "resets"] as const) {
      it(`${name}: the client ${how}, the upstream is closed at once and descriptors return to their baseline`, async () => {
        const pid = proxy.child.pid!;
        await expectHealthy(); // settle anything lazily opened
        const baseline = fdCount(pid);
        const closedBefore = silent.closedCount();
        const accepted = silent.sockets.length;
        const c = await RawClient.connect(proxy.port);
        await c.write(request(silent.port));
        await pollUntil(() => silent.sockets.length > accepted, 5_000, "the proxy to connect to the silent origin");
        if (how === "closes") c.endWrite();
        else c.destroy();
        // The proxy closes its upstream connection when the client leaves, not after its
        // response timeout (minutes): the origin sees it closed.
        await pollUntil(() => silent.closedCount() > closedBefore, 2_000, "the proxy to close the upstream connection");
        c.destroy();
        await pollUntil(() => fdCount(pid) <= baseline, 1_000, `the proxy's descriptors (${fdCount(pid)}) to return to ${baseline}`);
      });
    }
  }

  it("the proxy serves others afterwards", expectHealthy);
});

describe("request bodies that stall or declare impossible sizes", () => {
  let counting: RawServer;

  beforeAll(async () => {
    counting = await startRawServer((s) => s.resume());
  });
  afterAll(async () => counting?.close());

  it("an origin that stops reading an upload is given up after the idle limit, also when the client left", async () => {
    const stalled = await startRawServer((s) => afterHead(s, () => {})); // reads the head, then nothing
    try {
      await expectHealthy();
      const pid = proxy.child.pid!;
      const baseline = fdCount(pid);
      const c = await RawClient.connect(proxy.port);
      await c.write(`POST http://127.0.0.1:${stalled.port}/upload HTTP/1.1\r\nHost: 127.0.0.1:${stalled.port}\r\nContent-Length: 1000000000\r\n\r\n`);
      void c.write(Buffer.alloc(16 * 1024 * 1024, 0x62)).catch(() => {});
      await pollUntil(() => stalled.sockets.length > 0, 5_000, "the proxy to connect to the origin");
      // Flow control holds the client now; it gives up. The 1 s limit of this proxy ends the copy
      // and drops both connections (the origin, reading nothing, cannot see it: descriptors do).
      c.socket.resetAndDestroy();
      await pollUntil(() => fdCount(pid) <= baseline, 10_000, `the proxy's descriptors (${fdCount(pid)}) to return to ${baseline}`);
    } finally {
      await stalled.close();
    }
  });

  it("a body that stops arriving is answered 408 after the idle limit, and the upstream is closed", async () => {
    const closedBefore = counting.closedCount();
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://127.0.0.1:${counting.port}/upload HTTP/1.1\r\nHost: 127.0.0.1:${counting.port}\r\nContent-Length: 100\r\n\r\n0123456789`);
      const r = await c.readResponse({ timeoutMs: 10_000 });
      expect(r.status).toBe(408);
      expect(r.text).toContain("no body byte within 1000 ms");
      expect(r.headers["connection"]).toBe("close");
      expect(await c.waitClosed(10_000)).toBe(true);
      await pollUntil(() => counting.closedCount() > closedBefore, 5_000, "the upstream connection to be closed");
    } finally {
      c.destroy();
    }
  });

  it.each([
    ["15 hex digits (beyond 2^53 - 1 bytes)", "fffffffffffffff"],
    ["17 hex digits (more than a 64-bit length needs)", "00000000000000001"],
    ["a 64-bit maximum", "ffffffffffffffff"],
  ])("a chunk size of %s is refused with 400 at once", async (_name, size) => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://127.0.0.1:${counting.port}/upload HTTP/1.1\r\nHost: 127.0.0.1:${counting.port}\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\nabc`);
      // Well within the body idle limit: the refusal does not wait for more bytes.
      const r = await withDeadline(c.readResponse({ timeoutMs: 10_000 }), 10_000, "the 400");
      expect(r.status).toBe(400);
      expect(r.text).toContain(`chunk size "${size}" is larger than 9007199254740991 bytes`);
    } finally {
      c.destroy();
    }
  });

  it("a slow body that keeps moving is not cut off", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(`POST http://127.0.0.1:${origin.port}/echo HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nContent-Length: 6\r\nConnection: close\r\n\r\n`);
      for (const piece of ["ab", "cd", "ef"]) {
        await new Promise((r) => setTimeout(r, 400)); // each pause shorter than the 1 s limit
        await c.write(piece);
      }
      const r = await c.readResponse({ timeoutMs: 10_000 });
      expect(r.status).toBe(200);
      expect(JSON.parse(r.text)).toMatchObject({ method: "POST", bodyLength: 6 });
    } finally {
      c.destroy();
    }
  });

  it("the proxy serves others afterwards", expectHealthy);
});
