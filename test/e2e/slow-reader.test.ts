/**
 * A client that reads slower than the origin sends must not make the proxy buffer the
 * difference: a 1 GiB download, through a CONNECT tunnel and as a plain GET, to a client that
 * stops reading for a while twice, keeps the proxy's resident set (VmRSS of the spawned
 * process, Linux `/proc`) within a generous bound over its level before the download. Flow
 * control has to reach the origin: the proxy reads only as fast as the client takes. Every
 * byte is checked against the origin's pattern, so a read buffer reused while a queued write
 * still referred to it (the Node adapter's own read buffers) would show as corruption.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { networkConfig, patternBytes, type ProxyProcess, residentBytes, startProxy, withDeadline } from "./helpers/index.ts";

/** The download's size. */
const BODY_BYTES = 1024 * 1024 * 1024;
/** Where the client stops reading, and for how long each time. */
const PAUSES_AT = [64 * 1024 * 1024, 512 * 1024 * 1024];
const PAUSE_MS = 1_500;
/**
 * Largest growth of the proxy's resident set over its level before the download. Generous on
 * purpose (garbage not yet collected counts as resident); a proxy that buffered what the client
 * did not read would hold hundreds of MiB after the first pause alone.
 */
const MAX_GROWTH_BYTES = 128 * 1024 * 1024;
/** How often the proxy's resident set is read during the download. */
const SAMPLE_MS = 50;

let origin: Server;
let originPort: number;
const originConns: Socket[] = [];
let proxy: ProxyProcess;

/** The body is the suite's test pattern (`patternByte`), which repeats every 251 bytes. */
const PERIOD = 251;
/** The pattern from offset 0, long enough to compare any chunk up to 1 MiB at any phase. */
const EXPECTED = patternBytes(PERIOD + 1024 * 1024);

/** An origin that answers any request head with a 1 GiB body, written as fast as it is taken. */
function startBulkOrigin(): Promise<void> {
  // Whole periods, so consecutive blocks continue the pattern.
  const block = EXPECTED.subarray(0, PERIOD * 4096);
  origin = createServer((s) => {
    originConns.push(s);
    s.on("error", () => {});
    let head = "";
    const onData = (d: Buffer): void => {
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      s.off("data", onData);
      s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BODY_BYTES}\r\n\r\n`);
      let left = BODY_BYTES;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, block.length);
          left -= n;
          if (!s.write(n === block.length ? block : block.subarray(0, n))) return void s.once("drain", pump);
        }
      };
      pump();
    };
    s.on("data", onData);
  });
  return new Promise((r) =>
    origin.listen(0, "127.0.0.1", () => {
      originPort = (origin.address() as { port: number }).port;
      r();
    }),
  );
}

beforeAll(async () => {
  await startBulkOrigin();
});

// a proxy of its own per download: one that grew in the first would hide growth in the second
beforeEach(async () => {
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }));
});

afterEach(async () => {
  await proxy?.stop();
});

afterAll(async () => {
  for (const s of originConns) s.destroy();
  await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
});

function proxyRss(): number {
  return residentBytes(proxy.child.pid!);
}

/**
 * Send `request` through the proxy and read the response body (after a head of `skipHeads`
 * response heads), pausing at {@link PAUSES_AT}. Resolves with the body bytes received and the
 * largest resident set seen meanwhile.
 */
function slowDownload(request: string, skipHeads: number): Promise<{ body: number; peakRss: number; corruptAt?: number }> {
  return new Promise((resolve, reject) => {
    let peakRss = proxyRss();
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, proxyRss())), SAMPLE_MS);
    const s = connect({ port: proxy.port, host: "127.0.0.1" });
    let heads = 0;
    let pending = "";
    let body = 0;
    let corruptAt: number | undefined;
    const pauses = [...PAUSES_AT];
    const done = (e?: Error): void => {
      clearInterval(sampler);
      s.destroy();
      if (e) reject(e);
      else resolve({ body, peakRss, corruptAt });
    };
    s.on("error", (e) => done(e));
    s.on("connect", () => s.write(request));
    s.on("data", (d: Buffer) => {
      let chunk = d;
      while (heads < skipHeads) {
        pending += chunk.toString("latin1");
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!pending.startsWith("HTTP/1.1 200")) return done(new Error(`answered ${pending.split("\r\n")[0]}`));
        heads++;
        chunk = Buffer.from(pending.slice(end + 4), "latin1");
        pending = "";
      }
      for (let at = 0; at < chunk.length && corruptAt === undefined; at += 1024 * 1024) {
        const part = chunk.subarray(at, at + 1024 * 1024);
        const phase = (body + at) % PERIOD;
        if (!part.equals(EXPECTED.subarray(phase, phase + part.length))) corruptAt = body + at;
      }
      body += chunk.length;
      if (body >= BODY_BYTES) return done();
      if (pauses.length > 0 && body >= pauses[0]!) {
        pauses.shift();
        s.pause();
        setTimeout(() => s.resume(), PAUSE_MS);
      }
    });
    s.on("end", () => done(new Error(`connection ended after ${body} of ${BODY_BYTES} body bytes`)));
  });
}

describe("a slow reader of a 1 GiB download keeps the proxy's memory flat", () => {
  const authority = () => `127.0.0.1:${originPort}`;

  it("through a CONNECT tunnel", async () => {
    const before = proxyRss();
    const request = `CONNECT ${authority()} HTTP/1.1\r\nHost: ${authority()}\r\n\r\nGET /big HTTP/1.1\r\nHost: ${authority()}\r\n\r\n`;
    const { body, peakRss, corruptAt } = await withDeadline(slowDownload(request, 2), 60_000, "the CONNECT download");
    expect(body).toBe(BODY_BYTES);
    expect(corruptAt, "offset of the first byte that differs from the origin's").toBeUndefined();
    expect(peakRss - before, `peak RSS ${peakRss} over ${before} before`).toBeLessThan(MAX_GROWTH_BYTES);
  }, 70_000);

  it("as a plain GET", async () => {
    const before = proxyRss();
    const request = `GET http://${authority()}/big HTTP/1.1\r\nHost: ${authority()}\r\n\r\n`;
    const { body, peakRss, corruptAt } = await withDeadline(slowDownload(request, 1), 60_000, "the plain download");
    expect(body).toBe(BODY_BYTES);
    expect(corruptAt, "offset of the first byte that differs from the origin's").toBeUndefined();
    expect(peakRss - before, `peak RSS ${peakRss} over ${before} before`).toBeLessThan(MAX_GROWTH_BYTES);
  }, 70_000);
});
