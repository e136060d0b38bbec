/**
 * `npm run bench` runs every section below, the comparison first; `npm run bench -- SECTION`
 * (compare, throughput, load or idle) runs one of them.
 *
 * First the comparison section (bench/compare.ts): direct, this proxy under Node (built
 * JavaScript), Bun and Deno, and squid and tinyproxy when installed, side by side in one run:
 * keep-alive and new-connection req/s (wrk), CONNECT / SOCKS5 download and plain-POST upload MB/s
 * (curl), latency added at 1,000 req/s, start-to-listening time, RSS idle and with 10,000 idle
 * tunnels, policy decisions/s against 10,000 patterns (bench/decide-micro.ts) and the cost of
 * OTLP audit export, as one markdown table with ratios to direct and to squid.
 *
 * Then the throughput section: throughput and memory of the proxy next to a direct connection,
 * measured in the same run on loopback, printed as ratios. Figures vary by machine; the ratios
 * are the point. Runs: many small keep-alive requests (absolute-form), bulk download through a CONNECT
 * tunnel, bulk upload as a plain POST; then the proxy's peak RSS, and the cost of exporting
 * audit events over OTLP (a second proxy exporting to a local receiver, same requests).
 *
 * Then the burst-load section (bench/load.ts): 2,000 and 8,000 concurrent keep-alive clients with
 * wrk against a loopback nginx, directly and through the proxy under Node, Bun and Deno.
 *
 * Then the idle-tunnels section (bench/idle.ts): the proxy's RSS per idle CONNECT tunnel under
 * Node, Bun and Deno (and Node on the built `dist/`), extrapolated to 10,000 tunnels.
 *
 * Env: BENCH_REQUESTS (default 4000), BENCH_CONCURRENCY (16), BENCH_BULK_MB (256; also the
 * comparison's download/upload size); for the other sections see bench/compare.ts and
 * bench/load.ts.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Agent, ProxyAgent, request } from "undici";
import { runCompareBench } from "./compare.ts";
import { runIdleBench } from "./idle.ts";
import { runLoadBench } from "./load.ts";

/** The sections `npm run bench -- SECTION` can pick; no argument runs them all. */
const SECTIONS = ["compare", "throughput", "load", "idle"] as const;

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const BULK_BYTES = Number(process.env.BENCH_BULK_MB ?? 256) * 1024 * 1024;
/** Alternating rounds of the audit-overhead comparison. */
const AUDIT_ROUNDS = 3;
const root = fileURLToPath(new URL("..", import.meta.url));
const SMALL = new Uint8Array(1024).fill(120);
const BLOCK = new Uint8Array(256 * 1024).fill(97);

function origin(): Promise<{ port: number; close(): void }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === "/small") {
      res.writeHead(200, { "content-length": SMALL.length });
      res.end(SMALL);
    } else if (req.url === "/big") {
      res.writeHead(200, { "content-length": BULK_BYTES });
      let left = BULK_BYTES;
      const more = (): void => {
        while (left > 0) {
          const n = Math.min(left, BLOCK.length);
          left -= n;
          if (!res.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n))) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    } else {
      let n = 0;
      req.on("data", (c: Uint8Array) => (n += c.length));
      req.on("end", () => res.end(String(n)));
    }
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as AddressInfo).port, close: () => server.close() })),
  );
}

async function startProxy(extraToml = ""): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "cnp-bench-"));
  const file = join(dir, "config.toml");
  writeFileSync(file, `[network]\nenabled = true\nproxy_url = "http://127.0.0.1:0"\nadmin_url = "127.0.0.1:0"\nallowed_domains = ["127.0.0.1"]\n${extraToml}`);
  const child = spawn(process.execPath, ["--import", "tsx", "src/runtimes/node/main.ts", "--config", file], {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "warn,codex_network_proxy=info" },
  });
  let err = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start:\n${err}`)), 20_000);
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      const m = /HTTP proxy listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return {
    port,
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      await once(child, "exit");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function smallRequests(dispatcher: Agent | ProxyAgent, url: string): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < REQUESTS) {
        const r = await request(url, { dispatcher });
        await r.body.arrayBuffer();
        if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
      }
    }),
  );
  return REQUESTS / ((performance.now() - start) / 1000);
}

/** Download /big over a raw socket (optionally through CONNECT); MiB/s. */
async function bulkDownload(originPort: number, proxyPort?: number): Promise<number> {
  const sock = connect(proxyPort ?? originPort, "127.0.0.1");
  await once(sock, "connect");
  const start = performance.now();
  if (proxyPort !== undefined) {
    sock.write(`CONNECT 127.0.0.1:${originPort} HTTP/1.1\r\nHost: 127.0.0.1:${originPort}\r\n\r\n`);
  }
  sock.write(`GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  let total = 0;
  for await (const c of sock) total += (c as Buffer).length;
  if (total < BULK_BYTES) throw new Error(`short download: ${total}`);
  return BULK_BYTES / 1048576 / ((performance.now() - start) / 1000);
}

/** Upload BULK_BYTES as a plain POST (absolute-form when proxied); MiB/s. */
async function bulkUpload(dispatcher: Agent | ProxyAgent, url: string): Promise<number> {
  async function* body() {
    for (let left = BULK_BYTES; left > 0; left -= BLOCK.length) yield BLOCK;
  }
  const start = performance.now();
  const r = await request(url, { method: "POST", body: Readable.from(body()), dispatcher, headers: { "content-length": String(BULK_BYTES) } });
  const got = Number(await r.body.text());
  if (got !== BULK_BYTES) throw new Error(`origin received ${got} bytes`);
  return BULK_BYTES / 1048576 / ((performance.now() - start) / 1000);
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** An OTLP/HTTP receiver that accepts and discards log exports. */
function otlpReceiver(): Promise<{ port: number; received(): number; close(): void }> {
  let received = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.on("data", () => {});
    req.on("end", () => {
      received++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ port: (server.address() as AddressInfo).port, received: () => received, close: () => server.close() }),
    ),
  );
}

/** The throughput, memory and audit-overhead section (the original `npm run bench`). */
async function throughput(): Promise<void> {
  const o = await origin();
  const receiver = await otlpReceiver();
  const proxy = await startProxy();
  const audited = await startProxy(`[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:${receiver.port}/v1/logs", protocol = "json" } }\n`);
  const base = `http://127.0.0.1:${o.port}`;
  const direct = new Agent({ connections: CONCURRENCY });
  // proxyTunnel: false makes undici send absolute-form requests, the plain-HTTP proxy path.
  const viaProxy = new ProxyAgent({ uri: `http://127.0.0.1:${proxy.port}`, connections: CONCURRENCY, proxyTunnel: false });
  const viaAudited = new ProxyAgent({ uri: `http://127.0.0.1:${audited.port}`, connections: CONCURRENCY, proxyTunnel: false });
  try {
    await smallRequests(direct, `${base}/small`); // warm-up
    await smallRequests(viaProxy, `${base}/small`);
    await smallRequests(viaAudited, `${base}/small`);
    const rows: [string, number, number, string][] = [];
    rows.push(["small GET, keep-alive (req/s)", await smallRequests(direct, `${base}/small`), await smallRequests(viaProxy, `${base}/small`), "req/s"]);
    rows.push(["CONNECT tunnel download (MiB/s)", await bulkDownload(o.port), await bulkDownload(o.port, proxy.port), "MiB/s"]);
    rows.push(["plain POST upload (MiB/s)", await bulkUpload(direct, `${base}/up`), await bulkUpload(viaProxy, `${base}/up`), "MiB/s"]);
    // Alternate rounds and keep each side's best, so machine noise does not decide the ratio.
    let plain = 0;
    let exported = 0;
    for (let round = 0; round < AUDIT_ROUNDS; round++) {
      plain = Math.max(plain, await smallRequests(viaProxy, `${base}/small`));
      exported = Math.max(exported, await smallRequests(viaAudited, `${base}/small`));
    }
    const rss = peakRssMiB(proxy.pid);
    console.log(`codex-network-proxy bench (node ${process.version}; ${REQUESTS} requests x${CONCURRENCY}, ${BULK_BYTES / 1048576} MiB bulk)`);
    console.log(`${"case".padEnd(34)}${"direct".padStart(12)}${"proxy".padStart(12)}${"proxy/direct".padStart(14)}`);
    for (const [name, d, p] of rows) {
      console.log(`${name.padEnd(34)}${d.toFixed(1).padStart(12)}${p.toFixed(1).padStart(12)}${(p / d).toFixed(2).padStart(14)}`);
    }
    console.log(`${"proxy peak RSS (MiB)".padEnd(34)}${"-".padStart(12)}${rss.toFixed(1).padStart(12)}`);
    console.log(`${"case".padEnd(34)}${"no export".padStart(12)}${"OTLP export".padStart(12)}${"export/none".padStart(14)}`);
    console.log(`${"audit: small GET (req/s)".padEnd(34)}${plain.toFixed(1).padStart(12)}${exported.toFixed(1).padStart(12)}${(exported / plain).toFixed(2).padStart(14)}`);
    console.log(`(the receiver got ${receiver.received()} OTLP export requests)`);
  } finally {
    await direct.close();
    await viaProxy.close();
    await viaAudited.close();
    await proxy.stop();
    await audited.stop();
    receiver.close();
    o.close();
  }
}

const only = process.argv[2];
if (only !== undefined && !(SECTIONS as readonly string[]).includes(only)) {
  console.error(`unknown bench section ${JSON.stringify(only)}; expected one of: ${SECTIONS.join(", ")}`);
  process.exit(2);
}
if (only === undefined || only === "compare") await runCompareBench();
if (only === undefined || only === "throughput") await throughput();
if (only === undefined || only === "load") await runLoadBench();
if (only === undefined || only === "idle") await runIdleBench();
