/**
 * Malformed and ambiguous input (docs/behaviour.md §5): 400 with `connection: close` (431 for a
 * header section over 32 KiB), nothing forwarded, and the proxy keeps serving afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  absoluteGet,
  type EchoReply,
  networkConfig,
  type Origin,
  type ProxyProcess,
  RawClient,
  rawRequest,
  requestOnce,
  startOrigin,
  startProxy,
} from "./helpers/index.ts";

let origin: Origin;
let proxy: ProxyProcess;
let A: string; // authority of the origin

beforeAll(async () => {
  origin = await startOrigin();
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
  A = `127.0.0.1:${origin.port}`;
});

afterAll(async () => {
  await proxy?.stop();
  await origin?.close();
});

/** A fresh, normal request through the same proxy still works. */
async function expectProxyStillServes(): Promise<void> {
  const r = await requestOnce(proxy.port, absoluteGet(A, "/still-alive"));
  expect(r.status).toBe(200);
  expect((JSON.parse(r.text) as EchoReply).url).toBe("/still-alive");
}

type Case = {
  name: string;
  bytes: () => string;
  status: number;
  body?: string;
};

const cases: Case[] = [
  {
    name: "header section larger than 32 KiB",
    bytes: () => `GET http://${A}/big HTTP/1.1\r\nHost: ${A}\r\nX-Big: ${"a".repeat(33 * 1024)}\r\n\r\n`,
    status: 431,
  },
  {
    name: "header section over 32 KiB spread over many fields",
    bytes: () => `GET http://${A}/big HTTP/1.1\r\nHost: ${A}\r\n${Array.from({ length: 40 }, (_, i) => `X-F${i}: ${"b".repeat(1000)}\r\n`).join("")}\r\n`,
    status: 431,
  },
  {
    name: "Content-Length together with Transfer-Encoding",
    bytes: () => `POST http://${A}/smuggle HTTP/1.1\r\nHost: ${A}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: "Transfer-Encoding before Content-Length",
    bytes: () => `POST http://${A}/smuggle HTTP/1.1\r\nHost: ${A}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: "two different Content-Length headers",
    bytes: () => `POST http://${A}/cl HTTP/1.1\r\nHost: ${A}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    status: 400,
  },
  {
    name: "a Content-Length list with different values",
    bytes: () => `POST http://${A}/cl HTTP/1.1\r\nHost: ${A}\r\nContent-Length: 5, 6\r\n\r\nhello!`,
    status: 400,
  },
  {
    name: "a non-numeric Content-Length",
    bytes: () => `POST http://${A}/cl HTTP/1.1\r\nHost: ${A}\r\nContent-Length: +5\r\n\r\nhello`,
    status: 400,
  },
  {
    name: "obs-fold (continuation line)",
    bytes: () => `GET http://${A}/fold HTTP/1.1\r\nHost: ${A}\r\nX-Folded: first\r\n  second\r\n\r\n`,
    status: 400,
  },
  {
    name: "NUL in a header value",
    bytes: () => `GET http://${A}/nul HTTP/1.1\r\nHost: ${A}\r\nX-Nul: a\u0000b\r\n\r\n`,
    status: 400,
  },
  {
    name: "bare CR in a header value",
    bytes: () => `GET http://${A}/cr HTTP/1.1\r\nHost: ${A}\r\nX-Cr: a\rb\r\n\r\n`,
    status: 400,
  },
  {
    name: "bare LF line ending",
    bytes: () => `GET http://${A}/lf HTTP/1.1\nHost: ${A}\n\n`,
    status: 400,
  },
  {
    name: "whitespace before the colon of a header",
    bytes: () => `GET http://${A}/ws HTTP/1.1\r\nHost : ${A}\r\n\r\n`,
    status: 400,
  },
  {
    name: "garbage request line",
    bytes: () => "HELLO THERE\r\n\r\n",
    status: 400,
  },
  {
    name: "request line with too many parts",
    bytes: () => `GET http://${A}/ HTTP/1.1 extra\r\nHost: ${A}\r\n\r\n`,
    status: 400,
  },
  {
    name: "absolute-form whose Host names another authority",
    bytes: () => `GET http://${A}/ HTTP/1.1\r\nHost: other.invalid\r\n\r\n`,
    status: 400,
    body: "Host header does not match request target",
  },
  {
    name: "absolute-form whose Host names another port",
    bytes: () => `GET http://${A}/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n`,
    status: 400,
    body: "Host header does not match request target",
  },
  {
    name: "origin-form without Host",
    bytes: () => "GET /no-host HTTP/1.1\r\n\r\n",
    status: 400,
    body: "missing host",
  },
  {
    name: "origin-form with an empty Host",
    bytes: () => "GET /no-host HTTP/1.1\r\nHost:\r\n\r\n",
    status: 400,
    body: "missing host",
  },
  {
    name: "two Host headers",
    bytes: () => `GET /two-hosts HTTP/1.1\r\nHost: ${A}\r\nHost: other.invalid\r\n\r\n`,
    status: 400,
  },
];

describe("malformed requests", () => {
  it.each(cases)("$name → $status with connection: close; nothing forwarded; proxy still serves", async (c) => {
    const before = origin.requests.length;
    const ex = await rawRequest(proxy.port, c.bytes(), { waitMs: 5_000 });
    const r = ex.response;
    expect(r.status, `response: ${ex.data.toString("latin1").slice(0, 300)}`).toBe(c.status);
    expect(r.headers.connection).toMatch(/^close$/i);
    expect(ex.closed, "the proxy closes the connection").toBe(true);
    if (c.body !== undefined) {
      expect(r.headers["content-type"]).toMatch(/^text\/plain\b/);
      expect(r.text).toBe(c.body);
    }
    expect(origin.requests.length, "nothing may reach the origin").toBe(before);
    await expectProxyStillServes();
  });

  it("a header section just under 32 KiB is accepted", async () => {
    const r = await requestOnce(proxy.port, `GET http://${A}/almost-big HTTP/1.1\r\nHost: ${A}\r\nX-Big: ${"a".repeat(30 * 1024)}\r\n\r\n`);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).headers["x-big"]).toHaveLength(30 * 1024);
  });

  it("a malformed request after a good one on the same connection: good one answered, then 400 and close", async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.write(absoluteGet(A, "/good-first"));
      expect((await c.readResponse()).status).toBe(200);
      await c.write(`POST http://${A}/bad HTTP/1.1\r\nHost: ${A}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
      const r = await c.readResponse();
      expect(r.status).toBe(400);
      expect(r.headers.connection).toMatch(/^close$/i);
      expect(await c.waitClosed(5_000)).toBe(true);
    } finally {
      c.destroy();
    }
  });
});
