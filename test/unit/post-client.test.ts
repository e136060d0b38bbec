/**
 * The core's HTTP/1.1 POST client (src/core/http/post-client.ts) on Node's sockets, against
 * loopback servers scripted here byte for byte: kept-alive connections and when one is not kept,
 * the answers' framings, interim and malformed answers, the one retry on a new connection, the
 * deadline, the answer's size limit, and the fields it will not send.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Conn, Net } from "../../src/core/net/contract.ts";
import { POST_IDLE_MS, PostClient, PostFailure } from "../../src/core/http/post-client.ts";
import { nodeNet } from "../../src/runtimes/node/net.ts";

/** One request as the scripted server read it. */
interface Got {
  readonly head: string;
  readonly body: Buffer;
  /** Which connection it came on, counting from 0. */
  readonly conn: number;
}

/** What the scripted server does with the `n`th request (counting from 0) on `socket`. */
type Answer = (n: number, socket: Socket, got: Got) => void;

const servers: Server[] = [];
const clients: PostClient[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

/**
 * A server on 127.0.0.1 that reads each request (head, then a Content-Length body) and calls
 * `answer`; it counts connections and keeps what it read.
 */
async function server(answer: Answer, host = "127.0.0.1"): Promise<{ port: number; got: Got[]; conns: Socket[] }> {
  const got: Got[] = [];
  const conns: Socket[] = [];
  const s = createServer((socket) => {
    const conn = conns.push(socket) - 1;
    let buffer = Buffer.alloc(0);
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString("latin1");
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffer.length < end + 4 + length) return;
        const request = { head, body: buffer.subarray(end + 4, end + 4 + length), conn };
        buffer = buffer.subarray(end + 4 + length);
        got.push(request);
        answer(got.length - 1, socket, request);
      }
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, host, () => r()));
  return { port: (s.address() as AddressInfo).port, got, conns };
}

const OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

function client(port: number, options: { net?: Net; maxAnswerBytes?: number; maxIdle?: number; idleMs?: number; host?: string } = {}): PostClient {
  const limits = { maxAnswerBytes: options.maxAnswerBytes ?? 1024, maxIdle: options.maxIdle, idleMs: options.idleMs };
  const c = new PostClient(options.net ?? nodeNet, { host: options.host ?? "127.0.0.1", port, path: "/v1/logs?x=1" }, limits);
  clients.push(c);
  return c;
}

const FIELDS = [{ name: "Content-Type", value: "application/x-protobuf" }];
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

/** The failure `p` rejects with. */
async function failure(p: Promise<unknown>): Promise<PostFailure> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(PostFailure);
  return e as PostFailure;
}

describe("kept-alive connections", () => {
  it("carry one request after another, each with its exact bytes", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port);
    for (let i = 0; i < 3; i++) {
      const a = await c.post(FIELDS, new Uint8Array([i, 255, 0]), 5_000);
      expect([a.head.status, text(a.body)]).toEqual([200, "ok"]);
    }
    expect(s.conns).toHaveLength(1);
    expect(s.got.map((g) => [...g.body])).toEqual([
      [0, 255, 0],
      [1, 255, 0],
      [2, 255, 0],
    ]);
    expect(s.got[0]!.head).toBe(`POST /v1/logs?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 3`);
    expect(c.idleCount).toBe(1);
  });

  it("a connection the server closes while idle is dropped; the next request goes on a new one, once", async () => {
    const s = await server((_n, socket) => socket.end(OK.replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n")));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    await vi.waitFor(() => expect(c.idleCount).toBe(0));
    const a = await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(a.head.status).toBe(200);
    expect(s.conns).toHaveLength(2);
    expect(s.got.map((g) => [g.conn, ...g.body])).toEqual([
      [0, 1],
      [1, 2],
    ]);
  });

  it("a connection the server resets while idle is dropped", async () => {
    const s = await server((n, socket) => {
      socket.write(OK);
      if (n === 0) setTimeout(() => socket.resetAndDestroy(), 20);
    });
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    expect(c.idleCount).toBe(1);
    await vi.waitFor(() => expect(c.idleCount).toBe(0));
    await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(s.got.map((g) => g.conn)).toEqual([0, 1]);
  });

  it("an idle connection is closed once its idle time is up", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port, { idleMs: 100 });
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    expect(c.idleCount).toBe(1);
    await vi.waitFor(() => expect(s.conns[0]!.readableEnded).toBe(true));
    expect(c.idleCount).toBe(0);
  });

  it(`a connection found idle longer than ${POST_IDLE_MS} ms (its timer late) is not reused`, async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    const now = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(now + POST_IDLE_MS + 1);
    await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(s.got.map((g) => g.conn)).toEqual([0, 1]);
    await vi.waitFor(() => expect(s.conns[0]!.readableEnded).toBe(true));
  });

  it("are not kept when the answer says close, is HTTP/1.0, or runs until the close", async () => {
    const answers = [
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.1 200 OK\r\n\r\nuntil the close",
    ];
    const s = await server((n, socket) => socket.end(answers[n]!));
    const c = client(s.port);
    const bodies: string[] = [];
    for (let i = 0; i < answers.length; i++) {
      bodies.push(text((await c.post(FIELDS, new Uint8Array([i]), 5_000)).body));
      expect(c.idleCount).toBe(0);
    }
    expect(bodies).toEqual(["ok", "ok", "until the close"]);
    expect(s.conns).toHaveLength(3);
  });

  it("an HTTP/1.0 answer that says keep-alive is kept", async () => {
    const s = await server((_n, socket) => socket.write("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(s.conns).toHaveLength(1);
  });

  it("a connection with bytes past the answer is not kept", async () => {
    const s = await server((_n, socket) => socket.write(OK + "HTTP/1.1 200 OK\r\n"));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(s.got.map((g) => g.conn)).toEqual([0, 1]);
  });

  it("requests at once each take a connection; at most maxIdle are kept", async () => {
    const s = await server((_n, socket) => setTimeout(() => socket.write(OK), 20));
    const c = client(s.port, { maxIdle: 1 });
    await Promise.all([c.post(FIELDS, new Uint8Array([1]), 5_000), c.post(FIELDS, new Uint8Array([2]), 5_000)]);
    expect(s.conns).toHaveLength(2);
    expect(c.idleCount).toBe(1);
    await vi.waitFor(() => expect(s.conns.filter((x) => x.readableEnded)).toHaveLength(1));
  });

  it("close() while a request is out: its connection is closed when it is done, not kept", async () => {
    const s = await server((_n, socket) => setTimeout(() => socket.write(OK), 50));
    const c = client(s.port);
    const out = c.post(FIELDS, new Uint8Array([1]), 5_000);
    await vi.waitFor(() => expect(s.got).toHaveLength(1));
    c.close();
    expect((await out).head.status).toBe(200);
    expect(c.idleCount).toBe(0);
    await vi.waitFor(() => expect(s.conns[0]!.readableEnded).toBe(true));
  });

  it("close() closes the idle connections, and none is kept afterwards", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    c.close();
    expect(c.idleCount).toBe(0);
    await vi.waitFor(() => expect(s.conns[0]!.readableEnded).toBe(true));
    await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(c.idleCount).toBe(0);
  });
});

describe("the answer", () => {
  it("is read whole when chunked, and the connection is kept", async () => {
    const s = await server((_n, socket) => {
      socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
      setTimeout(() => socket.write("2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n"), 10);
    });
    const c = client(s.port);
    expect(text((await c.post(FIELDS, new Uint8Array([1]), 5_000)).body)).toBe("abcde");
    expect(c.idleCount).toBe(1);
  });

  it("skips interim 1xx answers", async () => {
    const s = await server((_n, socket) => socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK));
    const a = await client(s.port).post(FIELDS, new Uint8Array([1]), 5_000);
    expect([a.head.status, text(a.body)]).toEqual([200, "ok"]);
  });

  it("gives the status, reason and fields of a failure status", async () => {
    const s = await server((_n, socket) => socket.write("HTTP/1.1 503 Busy Now\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"));
    const a = await client(s.port).post(FIELDS, new Uint8Array([1]), 5_000);
    expect([a.head.status, a.head.reason, a.head.fields.values("retry-after"), text(a.body)]).toEqual([503, "Busy Now", ["7"], "busy"]);
  });

  it("a 101 fails (kind answer)", async () => {
    const s = await server((_n, socket) => socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"));
    const f = await failure(client(s.port).post(FIELDS, new Uint8Array([1]), 5_000));
    expect([f.kind, f.status]).toEqual(["answer", 101]);
  });

  it("a malformed status line fails (kind answer), naming it", async () => {
    const s = await server((_n, socket) => socket.write("HTTP/1.1 2xx Fine\r\n\r\n"));
    const c = client(s.port);
    const f = await failure(c.post(FIELDS, new Uint8Array([1]), 5_000));
    expect(f.kind).toBe("answer");
    expect(f.message).toContain('"HTTP/1.1 2xx Fine"');
    expect(c.idleCount).toBe(0);
  });

  it("conflicting lengths fail (kind answer), with the status", async () => {
    const s = await server((_n, socket) => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"));
    const f = await failure(client(s.port).post(FIELDS, new Uint8Array([1]), 5_000));
    expect([f.kind, f.status]).toEqual(["answer", 200]);
    expect(f.message).toContain("conflicting Content-Length");
  });

  it("larger than the limit fails (kind answer), for a length and a chunked body alike", async () => {
    const bodies = ["HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n"];
    const s = await server((n, socket) => socket.write(bodies[n]!));
    const c = client(s.port, { maxAnswerBytes: 10 });
    for (let i = 0; i < bodies.length; i++) {
      const f = await failure(c.post(FIELDS, new Uint8Array([i]), 5_000));
      expect([f.kind, f.status, f.message]).toEqual(["answer", 200, "the server's answer is larger than 10 bytes"]);
    }
    expect(c.idleCount).toBe(0);
  });

  it("a body that breaks off fails (kind connection) with the status, so a caller knows a 2xx arrived", async () => {
    const s = await server((_n, socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"));
    const f = await failure(client(s.port).post(FIELDS, new Uint8Array([1]), 5_000));
    expect([f.kind, f.status]).toEqual(["connection", 200]);
    expect(f.message).toContain("3 of 100 bytes");
  });

  it("a close before any answer fails (kind connection), without a status", async () => {
    const s = await server((_n, socket) => socket.end());
    const f = await failure(client(s.port).post(FIELDS, new Uint8Array([1]), 5_000));
    expect([f.kind, f.status, f.message]).toEqual(["connection", undefined, "the server closed the connection without answering"]);
  });
});

/**
 * Node's sockets, except that a write fails ("write EPIPE") when `fails(connection, write)` says
 * so (both counted from 0 and 1: the first connection dialled, its first write); how many were dialled.
 */
function writesFailing(fails: (conn: number, write: number) => boolean): { net: Net; dialled: () => number } {
  let dialled = 0;
  const net: Net = {
    ...nodeNet,
    async connectTcp(addr, options) {
      const conn = await nodeNet.connectTcp(addr, options);
      const index = dialled++;
      let writes = 0;
      return new Proxy(conn, {
        get(target, key) {
          if (key === "write") return (b: Uint8Array) => (fails(index, ++writes) ? Promise.reject(new Error("write EPIPE")) : target.write(b));
          const v = Reflect.get(target, key) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }) as Conn;
    },
  };
  return { net, dialled: () => dialled };
}

describe("retries and the deadline", () => {
  it("a kept connection that cannot take the request is replaced once: the request arrives once", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    // the first connection refuses its second request's write, as a connection the server reset would
    const { net, dialled } = writesFailing((conn, write) => conn === 0 && write > 2);
    const c = client(s.port, { net });
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    const a = await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(a.head.status).toBe(200);
    expect(dialled()).toBe(2);
    expect(s.got.map((g) => [g.conn, ...g.body])).toEqual([
      [0, 1],
      [1, 2],
    ]);
  });

  it("a new connection that cannot take the request is not retried", async () => {
    const { net } = writesFailing(() => true);
    const s = await server((_n, socket) => socket.write(OK));
    const f = await failure(client(s.port, { net }).post(FIELDS, new Uint8Array([1]), 5_000));
    expect([f.kind, f.message]).toEqual(["connection", "write EPIPE"]);
    expect(s.conns).toHaveLength(1);
  });

  it("a kept connection the server drops after reading the request is not retried at once (it may have acted on it)", async () => {
    const s = await server((n, socket) => (n === 0 ? socket.write(OK) : socket.destroy()));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 5_000);
    const f = await failure(c.post(FIELDS, new Uint8Array([2]), 5_000));
    expect(f.kind).toBe("connection");
    expect(s.got).toHaveLength(2);
  });

  it("a request done before its deadline leaves no timer behind: its kept connection outlives the deadline", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port);
    await c.post(FIELDS, new Uint8Array([1]), 500);
    await new Promise((r) => setTimeout(r, 700));
    expect(c.idleCount).toBe(1);
    await c.post(FIELDS, new Uint8Array([2]), 5_000);
    expect(s.conns).toHaveLength(1);
  });

  it("a server that never answers: kind timeout at the deadline, and the connection is closed", async () => {
    const s = await server(() => {});
    const c = client(s.port);
    const f = await failure(c.post(FIELDS, new Uint8Array([1]), 200));
    expect([f.kind, f.status, f.message]).toEqual(["timeout", undefined, "no answer within 200 ms"]);
    expect(c.idleCount).toBe(0);
    await vi.waitFor(() => expect(s.conns[0]!.destroyed || s.conns[0]!.readableEnded).toBe(true));
  });

  it("the deadline covers the body too: a server that trickles it times out", async () => {
    const s = await server((_n, socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
      const t = setInterval(() => (socket.destroyed ? clearInterval(t) : socket.write("x")), 40);
    });
    const f = await failure(client(s.port).post(FIELDS, new Uint8Array([1]), 300));
    expect([f.kind, f.status]).toEqual(["timeout", 200]);
  });

  it("a port nobody listens on fails (kind connection)", async () => {
    const s = await server(() => {});
    const port = s.port;
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const f = await failure(client(port).post(FIELDS, new Uint8Array([1]), 2_000));
    expect(f.kind).toBe("connection");
    expect(f.message).toContain("refused");
  });
});

describe("the request's fields", () => {
  it("Host and Content-Length are the client's; framing and connection fields of the caller's are left out", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port, { host: "localhost" });
    const fields = [
      { name: "host", value: "elsewhere.example" },
      { name: "Content-Length", value: "999" },
      { name: "Transfer-Encoding", value: "chunked" },
      { name: "Connection", value: "close" },
      { name: "Expect", value: "100-continue" },
      { name: "x-key", value: "caf\u00e9\tok" },
    ];
    await c.post(fields, new Uint8Array([7, 7]), 5_000);
    expect(s.got[0]!.head).toBe(`POST /v1/logs?x=1 HTTP/1.1\r\nHost: localhost:${s.port}\r\nx-key: caf\u00e9\tok\r\nContent-Length: 2`);
    expect(c.idleCount).toBe(1);
  });

  it("an IPv6 literal target is dialled as such and named in brackets in Host", async () => {
    const s = await server((_n, socket) => socket.write(OK), "::1");
    const a = await client(s.port, { host: "::1" }).post(FIELDS, new Uint8Array([1]), 5_000);
    expect(a.head.status).toBe(200);
    expect(s.got[0]!.head).toContain(`\r\nHost: [::1]:${s.port}\r\n`);
  });

  it("a name that is not a token, or a value with a control character or a character above U+00FF, fails before connecting, naming it", async () => {
    const s = await server((_n, socket) => socket.write(OK));
    const c = client(s.port);
    const cases: [string, string, string][] = [
      ["x key", "v", 'header name "x key" is not a token'],
      ["x-key", "a\r\nInjected: yes", "header x-key has a value with the control character U+000D"],
      ["x-key", "a\u0000", "header x-key has a value with the control character U+0000"],
      ["x-key", "\u20ac5", 'header x-key has a value with the character "\u20ac" (above U+00FF)'],
    ];
    for (const [name, value, message] of cases) {
      const f = await failure(c.post([{ name, value }], new Uint8Array([1]), 5_000));
      expect(f.kind).toBe("request");
      expect(f.message).toContain(message);
    }
    expect(s.conns).toHaveLength(0);
  });
});
