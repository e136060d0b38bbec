/**
 * The OTLP/HTTP transport over the runtime's own connections
 * (src/runtimes/shared/otlp-conn-transport.ts, here on Node's), against a loopback collector
 * started here: what a POST carries, which answers are a success, a retry or a failure, a
 * timeout, and an oversized answer; then the retries' limits (otlp-transport.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ExportResponse, IExporterTransport } from "@opentelemetry/otlp-exporter-base";
import { afterEach, describe, expect, it } from "vitest";
import { nodeNet } from "../../src/runtimes/node/net.ts";
import { connTransport } from "../../src/runtimes/shared/otlp-conn-transport.ts";
import { EXPORT_MAX_RESPONSE_BYTES, EXPORT_MAX_RETRIES, RETRYABLE_STATUSES, RetryingTransport, retryAfterMs } from "../../src/runtimes/shared/otlp-transport.ts";

interface Received {
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
}

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A collector on 127.0.0.1 answering each POST with `answer(n)` (n counts from 0); what it got. */
async function collector(answer: (n: number, res: ServerResponse) => void): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      answer(received.length - 1, res);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/logs`, received };
}

const HEADERS = async (): Promise<Record<string, string>> => ({ "Content-Type": "application/x-protobuf", "x-collector-key": "k-77" });

function transport(url: string, headers: () => Promise<Record<string, string>> = HEADERS): IExporterTransport {
  return connTransport({ url, headers, userAgent: "codex-network-proxy/test", net: nodeNet });
}

describe("a POST on the runtime's own connections", () => {
  it("carries the batch's exact bytes and the headers; a 2xx is a success with the answer's bytes", async () => {
    const c = await collector((_n, res) => res.writeHead(200, { "content-type": "application/x-protobuf" }).end(Buffer.from([0x0a, 0x00])));
    const batch = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 31) & 255);
    const r = await transport(c.url).send(batch, 5_000);
    expect(r.status).toBe("success");
    expect([...(r as { data: Uint8Array }).data]).toEqual([0x0a, 0x00]);
    expect(c.received).toHaveLength(1);
    expect(Buffer.compare(c.received[0]!.body, Buffer.from(batch))).toBe(0);
    expect(c.received[0]!.headers).toMatchObject({ "content-type": "application/x-protobuf", "x-collector-key": "k-77", "user-agent": "codex-network-proxy/test" });
  });

  it("names the exporter as User-Agent, in place of one the configured headers name (as the official transport)", async () => {
    const c = await collector((_n, res) => res.writeHead(200).end());
    const r = await transport(c.url, async () => ({ "Content-Type": "application/json", "user-agent": "mine/1" })).send(new Uint8Array([1]), 5_000);
    expect(r.status).toBe("success");
    expect(c.received[0]!.headers["user-agent"]).toBe("codex-network-proxy/test");
  });

  for (const status of [...RETRYABLE_STATUSES]) {
    it(`retries ${status} after its Retry-After, then succeeds`, async () => {
      const c = await collector((n, res) => (n === 0 ? res.writeHead(status, { "retry-after": "0" }).end("busy") : res.writeHead(200).end()));
      const r = await transport(c.url).send(new Uint8Array([1, 2, 3]), 5_000);
      expect(r.status).toBe("success");
      expect(c.received.map((x) => [...x.body])).toEqual([
        [1, 2, 3],
        [1, 2, 3],
      ]);
    });
  }

  it("does not follow a redirect: a 3xx fails, and nothing goes to where it points", async () => {
    const elsewhere = await collector((_n, res) => res.writeHead(200).end());
    const c = await collector((_n, res) => res.writeHead(307, { location: elsewhere.url }).end());
    const r = await transport(c.url).send(new Uint8Array([1]), 5_000);
    expect(r.status).toBe("failure");
    expect((r as { error: Error & { code?: number } }).error.code).toBe(307);
    expect((r as { error: Error }).error.message).toContain(`the collector at ${c.url} answered 307`);
    expect(c.received).toHaveLength(1);
    expect(elsewhere.received).toHaveLength(0);
  });

  it("a 2xx whose body breaks off is a success: the batch arrived and is not sent again", async () => {
    const c = await collector((_n, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("abc", () => res.destroy());
    });
    const r = await transport(c.url).send(new Uint8Array([5]), 5_000);
    expect(r).toEqual({ status: "success" });
    expect(c.received).toHaveLength(1);
  });

  it("an answer whose body breaks off counts as its status says: 400 fails, 503 is retried, nothing else", async () => {
    const broken = (status: number) => (_n: number, res: ServerResponse) => {
      res.writeHead(status, { "content-length": "100" });
      res.write("abc", () => res.destroy());
    };
    const refused = await collector(broken(400));
    const r = await transport(refused.url).send(new Uint8Array([1]), 5_000);
    expect(r.status).toBe("failure");
    expect(refused.received).toHaveLength(1);
    const busy = await collector((n, res) => (n === 0 ? broken(503)(n, res) : res.writeHead(200).end()));
    const inner = connTransport({ url: busy.url, headers: HEADERS, userAgent: "t", net: nodeNet });
    const w: number[] = [];
    const again = await new RetryingTransport(inner, () => 0.5, async (ms) => void w.push(ms)).send(new Uint8Array([2]), 5_000);
    expect(again.status).toBe("success");
    expect(busy.received).toHaveLength(2);
  });

  it("a 2xx whose body stalls past the deadline counts as delivered", async () => {
    const c = await collector((_n, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("abc");
    });
    const r = await transport(c.url).send(new Uint8Array([5]), 300);
    expect(r).toEqual({ status: "success" });
    expect(c.received).toHaveLength(1);
  });

  it("a user name and password in the URL go as Basic credentials (as node:http sends them), never into messages; a configured Authorization wins", async () => {
    const c = await collector((_n, res) => res.writeHead(400).end());
    const url = c.url.replace("http://", "http://us%C3%A9r:p%40ss@");
    const r = await transport(url).send(new Uint8Array([1]), 5_000);
    expect(c.received[0]!.headers.authorization).toBe(`Basic ${Buffer.from("us\u00e9r:p@ss").toString("base64")}`);
    expect((r as { error: Error }).error.message).toContain(`the collector at ${c.url} answered 400`);
    expect((r as { error: Error }).error.message).not.toContain("p%40ss");
    await transport(url, async () => ({ Authorization: "Bearer t0k" })).send(new Uint8Array([1]), 5_000);
    expect(c.received[1]!.headers.authorization).toBe("Bearer t0k");
  });

  it("an error that is not the network's fails at once, not retried", async () => {
    const c = await collector((_n, res) => res.writeHead(200).end());
    const r = await transport(c.url, async () => ({ "x-bad": "a\nb" })).send(new Uint8Array([1]), 5_000);
    expect(r.status).toBe("failure");
    expect(c.received).toHaveLength(0);
  });

  it("fails on 400 at once, naming the status and keeping the answer", async () => {
    const c = await collector((_n, res) => res.writeHead(400, "Bad Request").end("no such field"));
    const r = await transport(c.url).send(new Uint8Array([9]), 5_000);
    expect(c.received).toHaveLength(1);
    expect(r.status).toBe("failure");
    const error = (r as Extract<ExportResponse, { status: "failure" }>).error as Error & { code?: number; data?: string };
    expect(error.code).toBe(400);
    expect(error.message).toContain("Bad Request");
    expect(error.data).toBe("no such field");
  });

  it("a collector that is not there is retryable", async () => {
    const c = await collector(() => {});
    const url = c.url;
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const r = await transport(url).send(new Uint8Array([1]), 300);
    expect(r.status).toBe("retryable");
  });

  it("a collector that never answers: the attempt is given up at its timeout, retryable", async () => {
    const c = await collector(() => {}); // reads the body, never answers
    const r = await transport(c.url).send(new Uint8Array([1]), 300);
    expect(r.status).toBe("retryable");
    expect((r as { error?: Error }).error?.message).toBe(`the collector at ${c.url} did not answer within 300 ms`);
  });

  it(`an answer over ${EXPORT_MAX_RESPONSE_BYTES} bytes fails, not retried`, async () => {
    const c = await collector((_n, res) => res.writeHead(200).end(Buffer.alloc(EXPORT_MAX_RESPONSE_BYTES + 1)));
    const r = await transport(c.url).send(new Uint8Array([1]), 10_000);
    expect(c.received).toHaveLength(1);
    expect(r.status).toBe("failure");
    expect((r as { error: Error }).error.message).toContain(`larger than ${EXPORT_MAX_RESPONSE_BYTES} bytes`);
  });
});

/** An inner transport answering from `answers` in turn (the last one again when they run out), counting calls. */
function scripted(answers: ExportResponse[]): IExporterTransport & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    async send(_data, timeoutMillis) {
      calls.push(timeoutMillis);
      return answers[Math.min(calls.length - 1, answers.length - 1)]!;
    },
    shutdown() {},
  };
}

/** A wait that returns at once and notes how long it was asked to wait. */
function noted(): { waits: number[]; wait: (ms: number) => Promise<void> } {
  const waits: number[] = [];
  return { waits, wait: async (ms) => void waits.push(ms) };
}

describe("the retries", () => {
  it(`stop after ${EXPORT_MAX_RETRIES} retries, answering the last result`, async () => {
    const inner = scripted([{ status: "retryable", retryInMillis: 1 }]);
    const w = noted();
    const r = await new RetryingTransport(inner, Math.random, w.wait).send(new Uint8Array([1]), 10_000);
    expect(r.status).toBe("retryable");
    expect(inner.calls).toHaveLength(1 + EXPORT_MAX_RETRIES);
    expect(w.waits).toEqual([1, 1, 1, 1, 1]);
  });

  it("back off from 1 s, times 1.5, at most 5 s, without a Retry-After", async () => {
    const inner = scripted([{ status: "retryable" }]);
    const w = noted();
    await new RetryingTransport(inner, () => 0.5, w.wait).send(new Uint8Array([1]), 60_000);
    expect(w.waits).toEqual([1_000, 1_500, 2_250, 3_375, 5_000]);
  });

  it("move each wait by up to a fifth, either way", async () => {
    for (const [random, first] of [
      [0, 800],
      [0.75, 1_100],
    ] as const) {
      const w = noted();
      await new RetryingTransport(scripted([{ status: "retryable" }]), () => random, w.wait).send(new Uint8Array([1]), 60_000);
      expect(w.waits[0]).toBeCloseTo(first, 6);
    }
  });

  it("never start an attempt when the wait took the rest of the deadline", async () => {
    const inner = scripted([{ status: "retryable", retryInMillis: 1_000 }]);
    const slow = async (ms: number): Promise<void> => void (await new Promise((r) => setTimeout(r, ms + 50)));
    const r = await new RetryingTransport(inner, Math.random, slow).send(new Uint8Array([1]), 1_020);
    expect(r.status).toBe("retryable");
    expect(inner.calls).toHaveLength(1);
  });

  it("never wait past the export's deadline", async () => {
    const w = noted();
    const far = scripted([{ status: "retryable", retryInMillis: 60_000 }]);
    expect((await new RetryingTransport(far, Math.random, w.wait).send(new Uint8Array([1]), 1_000)).status).toBe("retryable");
    expect(far.calls).toEqual([1_000]);
    // 1 s and 1.5 s fit in 2 s (the waits here take no time), 2.25 s does not
    const backoff = scripted([{ status: "retryable" }]);
    await new RetryingTransport(backoff, () => 0.5, w.wait).send(new Uint8Array([1]), 2_000);
    expect(backoff.calls).toHaveLength(3);
    for (const t of backoff.calls) expect(t).toBeLessThanOrEqual(2_000);
  });

  it("stop at a success or a failure", async () => {
    const inner = scripted([{ status: "retryable", retryInMillis: 5 }, { status: "failure", error: new Error("no") }, { status: "success" }]);
    const r = await new RetryingTransport(inner, Math.random, noted().wait).send(new Uint8Array([1]), 2_000);
    expect(r.status).toBe("failure");
    expect(inner.calls).toHaveLength(2);
  });
});

describe("Retry-After", () => {
  it("is seconds or an HTTP date; anything else is none", () => {
    const now = Date.parse("2026-11-30T12:00:00Z");
    expect(retryAfterMs("3", now)).toBe(3_000);
    expect(retryAfterMs(" 0 ", now)).toBe(0);
    expect(retryAfterMs("Mon, 30 Nov 2026 12:00:05 GMT", now)).toBe(5_000);
    expect(retryAfterMs("Mon, 30 Nov 2026 11:00:00 GMT", now)).toBe(0);
    expect(retryAfterMs("Monday, 30-Nov-26 12:00:02 GMT", now)).toBe(2_000);
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs("-1", now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });
});
