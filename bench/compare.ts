/**
 * Side-by-side comparison (`npm run bench -- compare`; `npm run bench` runs it first): the same
 * figures, in one run on loopback, for
 *
 * - `direct`: the client straight at the origin (the baseline of the ratios);
 * - `node`, `bun`, `deno`: this proxy under each runtime (Node on the built JavaScript,
 *   `node dist/lib/runtimes/node/main.js`, built first with `npm run build` when `dist/lib` is
 *   missing or older than a file under src/; Bun and Deno on the TypeScript sources, as their entry points ship);
 * - `squid` and `tinyproxy`, when installed (/usr/sbin/squid, /usr/bin/tinyproxy), each with a
 *   minimal config written here (no cache, no access log, every client and CONNECT port allowed).
 *
 * Figures (see BENCHMARKS.md for how each is measured): 1. keep-alive req/s and 2. req/s with a
 * new connection per request (`wrk -t1 -c32`, absolute-form through the proxies); 3. CONNECT and
 * 4. SOCKS5 tunnel download and 5. plain-POST upload in MB/s (curl, 10^6 bytes); 6. p50 / p99
 * latency added at a constant 1,000 req/s; 7. start-to-listening time; 8. RSS idle and with
 * 10,000 idle CONNECT tunnels (bench/idle.ts's tunnel opener); 9. policy decisions per second
 * against 10,000 patterns (bench/decide-micro.ts under each runtime); 10. keep-alive req/s with
 * OTLP audit export on ÷ off (protobuf, the default; JSON; protobuf from a worker thread).
 *
 * It asserts nothing: it prints progress lines, then the machine, tool versions, what was skipped
 * and why, and a markdown table (one row per figure, one column per system). Every address is
 * loopback (127.0.0.1). Every child process and temp file is removed at the end, on failure and
 * on SIGINT/SIGTERM (through bench/load.ts's process tracking).
 *
 * Env (all optional): BENCH_DURATION_S (5: seconds per wrk run), BENCH_BULK_MB (256: MiB per
 * download / upload), BENCH_IDLE_TUNNELS (10000: most tunnels opened; the 10,000 figure is
 * extrapolated when fewer), BENCH_LATENCY_S (5), BENCH_STARTS (5), BENCH_DECISIONS (1000000),
 * BENCH_AUDIT_ROUNDS (3), BENCH_WRK_ROUNDS (3: interleaved rounds of figures 1 and 2), BENCH_BULK_ROUNDS (3: transfers per cell of figures 3-5), BENCH_COMPARE_SYSTEMS (e.g. "direct,node,squid"; default all),
 * BENCH_COMPARE_ORIGIN ("nginx" or "node"; default nginx when installed).
 *
 * Run alone: `npm run bench -- compare` or `npx tsx bench/compare.ts`.
 */
import { chmodSync, closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { AUDIT_THREAD_ENV } from "../src/runtimes/shared/otel-export.ts";
import {
  childEnv,
  type Child,
  fdPlan,
  findTool,
  httpGet,
  installSignalHandlers,
  LOOPBACK,
  machineInfo,
  makeTempDir,
  NODE_DIST_MAIN,
  openFilesLimit,
  type Origin,
  parseWrk,
  PROXY_ROOT,
  proxyCommand,
  removeTempDir,
  ROOT,
  rssKiB,
  type Runtime,
  safeRead,
  sleep,
  startChild,
  startNginx,
  treeInfo,
  versionOf,
  viaUlimit,
  waitForLine,
  type WrkResult,
} from "./load.ts";
import { distStale, measureTunnels, SETTLE_MS, startSink, TARGET_TUNNELS, tunnelPlan, type TunnelFigures, WARMUP_TUNNELS } from "./idle.ts";

// ---------------------------------------------------------------------------------------------
// Settings.

const SYSTEMS = ["direct", "node", "bun", "deno", "squid", "tinyproxy"] as const;
type System = (typeof SYSTEMS)[number];
type ProxySystem = Exclude<System, "direct">;
const OURS: readonly Runtime[] = ["node", "bun", "deno"];
const isOurs = (s: System): s is Runtime => (OURS as readonly string[]).includes(s);

const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined || v === "" ? dflt : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v}: expected a positive number`);
  return n;
};

/** Seconds per wrk run. */
const DURATION_S = envNum("BENCH_DURATION_S", 5);
/** Size of /big and of the upload body. */
const BULK_BYTES = Math.round(envNum("BENCH_BULK_MB", 256) * 1024 * 1024);
/** Most idle tunnels opened (the descriptor limits may allow fewer). */
const IDLE_TUNNELS = Math.round(envNum("BENCH_IDLE_TUNNELS", TARGET_TUNNELS));
/** Seconds of the constant-rate latency run, after its warm-up. */
const LATENCY_S = envNum("BENCH_LATENCY_S", 5);
/** Starts per system for the start-to-listening median. */
const STARTS = Math.round(envNum("BENCH_STARTS", 5));
/** Policy decisions timed per runtime. */
const DECISIONS = Math.round(envNum("BENCH_DECISIONS", 1_000_000));
/** Alternating off/on rounds of the audit-export comparison (best of each side). */
const AUDIT_ROUNDS = Math.round(envNum("BENCH_AUDIT_ROUNDS", 3));
/**
 * Rounds of figures 1 and 2. Each round runs wrk through every system in turn, all of them
 * started and warmed up beforehand, and each cell is the median of its rounds: a machine whose
 * speed drifts by 10-15 % over minutes (these shared 2-core machines do) then shifts every
 * system alike instead of whichever happened to run during a slow minute.
 */
const WRK_ROUNDS = Math.round(envNum("BENCH_WRK_ROUNDS", 3));
/**
 * Transfers of figures 3, 4 and 5 per system, one after another; a cell is their median. One
 * 256 MiB transfer takes a fraction of a second, and a single one moved by a third between runs.
 */
const BULK_ROUNDS = Math.max(1, Math.round(envNum("BENCH_BULK_ROUNDS", 3)));

/** wrk threads and connections (figures 1, 2 and 10). */
const WRK_THREADS = 1;
const WRK_CONNS = 32;
/** wrk's per-request timeout. */
const WRK_TIMEOUT_S = 10;
/** The warm-up before the idle-RSS reading and the figures: a short keep-alive wrk run. */
const WARMUP_S = 1;
/** Constant-rate latency client: requests per second, connections, warm-up seconds. */
const LATENCY_RATE = 1000;
const LATENCY_CONNS = 8;
const LATENCY_WARMUP_S = 1;
/** Connect polling for the start-to-listening figure. */
const POLL_MS = 5;
const START_TIMEOUT_MS = 30_000;
/** Our proxies' log filter: keeps the listening lines, drops the line per CONNECT / SOCKS5 connection. */
const PROXY_RUST_LOG = "info,codex_network_proxy::http_proxy=warn,codex_network_proxy::socks5=warn";
/** Fixed ports are picked below the kernel's ephemeral range, so no client socket can hold them. */
const PORT_RANGE = [20_000, 32_000] as const;
const SMALL_BYTES = 1024;

const SQUID = "/usr/sbin/squid";
const TINYPROXY = "/usr/bin/tinyproxy";
const BUN = join(ROOT, "node_modules/.bin/bun");
const DENO = join(ROOT, "node_modules/.bin/deno");

// ---------------------------------------------------------------------------------------------
// Small helpers.

const log = (line: string) => console.log(`[compare] ${line}`);
const errText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 300);

const usedPorts = new Set<number>();
/** A free loopback port below the ephemeral range, not handed out before in this run. */
async function pickPort(): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const port = PORT_RANGE[0] + Math.floor(Math.random() * (PORT_RANGE[1] - PORT_RANGE[0]));
    if (usedPorts.has(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port, LOOPBACK, () => s.close(() => resolve(true)));
    });
    if (ok) {
      usedPorts.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${PORT_RANGE.join("–")}`);
}

/** Run a tool to completion; its stdout, stderr tail and exit. */
async function runTool(command: string, args: readonly string[], timeoutMs: number, env = childEnv()): Promise<{ how: string; out: string; err: string }> {
  const c = startChild(command, args, env, { stdout: true });
  const timer = setTimeout(() => void c.stop("SIGKILL"), timeoutMs);
  const how = await c.closed;
  clearTimeout(timer);
  return { how, out: c.stdoutText(), err: c.stderrTail() };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
/** Nearest-rank percentile of sorted values. */
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

/** Raise a child's soft descriptor limit to the hard one (for the tunnel figure). */
function withFdLimit(cmd: { command: string; args: string[] }): { command: string; args: string[] } {
  const { soft, hard } = openFilesLimit();
  if (!Number.isFinite(hard) || soft >= hard) return cmd;
  return viaUlimit("-Sn", hard)(cmd.command, cmd.args);
}

// ---------------------------------------------------------------------------------------------
// The origin.

const UPLOAD_PATH = "/upload";

/** nginx locations beyond `/small`: sendfile for /big, and /upload that reads the whole body, then answers 200. */
function nginxExtra(): string {
  // `return 200` alone answers before the body is read and the proxies then stop relaying it;
  // mirror_request_body makes nginx read all of it (to a temp file) first, then the static
  // handler refuses POST (405) and error_page turns that into the 200.
  return `    client_max_body_size 0;
    location = /big { sendfile on; }
    location = ${UPLOAD_PATH} {
      mirror /_upload_sink;
      mirror_request_body on;
      error_page 405 =200 @uploaded;
    }
    location = /_upload_sink { internal; return 204; }
    location @uploaded { return 200 "ok\\n"; }
`;
}

/** Write `bytes` zero bytes to `file` (a real file, not a sparse one), 1 MiB at a time. */
function writeZeros(file: string, bytes: number): void {
  const block = Buffer.alloc(1024 * 1024);
  const fd = openSync(file, "w", 0o644);
  try {
    for (let left = bytes; left > 0; left -= block.length) writeSync(fd, block, 0, Math.min(left, block.length));
  } finally {
    closeSync(fd);
  }
}

async function startOrigin(wantNginx: boolean): Promise<Origin> {
  const nginx = findTool("nginx");
  if (wantNginx && nginx) {
    return startNginx(fdPlan(1024), {
      port: pickPort,
      extraServer: nginxExtra,
      prepare(www) {
        // Written out, not sparse: nginx's sendfile from a sparse file ran at a fifth of the
        // speed on this machine, which made "direct" the slowest column.
        writeZeros(join(www, "big"), BULK_BYTES);
        writeFileSync(join(www, UPLOAD_PATH.slice(1)), "ok\n", { mode: 0o644 });
      },
      describe: (kind) => `${kind}, ${BULK_BYTES / 1048576} MiB /big of zeros (sendfile), ${UPLOAD_PATH} reads the whole body then answers 200`,
    });
  }
  if (wantNginx) log("nginx is NOT installed: using the built-in node origin (figures are not comparable with an nginx origin)");
  const code = `
    const http = require("node:http");
    const small = Buffer.alloc(${SMALL_BYTES}, "x");
    const block = Buffer.alloc(256 * 1024);
    const server = http.createServer((req, res) => {
      if (req.url === "/small") { res.writeHead(200, { "content-length": small.length }); res.end(small); }
      else if (req.url === "/big") {
        res.writeHead(200, { "content-length": ${BULK_BYTES} });
        let left = ${BULK_BYTES};
        const more = () => {
          while (left > 0) {
            const n = Math.min(left, block.length); left -= n;
            if (!res.write(n === block.length ? block : block.subarray(0, n))) return void res.once("drain", more);
          }
          res.end();
        };
        more();
      } else if (req.url === "${UPLOAD_PATH}") {
        req.on("data", () => {});
        req.on("end", () => { res.writeHead(200, { "content-length": 3 }); res.end("ok\\n"); });
      } else { res.writeHead(404, { "content-length": 0 }); res.end(); }
    });
    server.keepAliveTimeout = 120000;
    server.headersTimeout = 125000;
    server.requestTimeout = 0;
    server.listen({ host: "${LOOPBACK}", port: 0, backlog: 4096 }, () => console.error("origin listening on ${LOOPBACK}:" + server.address().port));
    process.on("SIGTERM", () => process.exit(0));
  `;
  const child = startChild(process.execPath, ["-e", code], childEnv());
  try {
    const m = await waitForLine(child, /origin listening on 127\.0\.0\.1:(\d+)/, "node origin");
    return { kind: `built-in node origin (node ${process.version}, one process; /small, /big streamed, ${UPLOAD_PATH} reads the body)`, port: Number(m[1]), stop: () => child.stop() };
  } catch (e) {
    await child.stop("SIGKILL");
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The proxies.

interface Started {
  system: ProxySystem;
  port: number;
  socksPort?: number;
  pid: number;
  child: Child;
  /** Spawn → the "HTTP proxy listening" stderr line (ours only), ms. */
  logMs?: number;
  /** Spawn → the first TCP connect to its port that succeeded, ms. */
  connectMs: number;
  stop(): Promise<void>;
}

/** Where and how the audit export under test sends (figure 10). */
interface OtlpTarget {
  readonly port: number;
  readonly protocol: "binary" | "json";
}

function ourConfig(port: number, socksPort: number, otlp?: OtlpTarget): string {
  return `[network]
enabled = true
proxy_url = "http://${LOOPBACK}:${port}"
admin_url = "${LOOPBACK}:0"
enable_socks5 = true
socks_url = "${LOOPBACK}:${socksPort}"
allowed_domains = ["${LOOPBACK}"]
${otlp === undefined ? "" : `\n[otel]\nexporter = { otlp-http = { endpoint = "http://${LOOPBACK}:${otlp.port}/v1/logs", protocol = "${otlp.protocol}" } }\n`}`;
}

function squidConfig(dir: string, port: number): string {
  return `http_port ${LOOPBACK}:${port}
http_access allow all
cache deny all
access_log none
cache_store_log none
cache_log ${join(dir, "cache.log")}
pid_filename ${join(dir, "squid.pid")}
coredump_dir ${dir}
cache_mem 8 MB
workers 1
shutdown_lifetime 1 seconds
pinger_enable off
icp_port 0
htcp_port 0
dns_nameservers ${LOOPBACK}
visible_hostname localhost
`;
}

function tinyproxyConfig(port: number): string {
  // No ConnectPort line: CONNECT to every port is allowed (tinyproxy.conf(5)).
  return `Port ${port}
Listen ${LOOPBACK}
Timeout 600
MaxClients 20000
LogLevel Error
`;
}

/** Resolve with the ms from `t0` until a TCP connect to `port` succeeds (polled every {@link POLL_MS}). */
async function pollConnect(port: number, child: Child, t0: number): Promise<number> {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s: Socket = connect({ port, host: LOOPBACK });
      const done = (v: boolean) => {
        s.destroy();
        resolve(v);
      };
      s.once("connect", () => done(true));
      s.once("error", () => done(false));
      s.setTimeout(1_000, () => done(false));
    });
    if (ok) return performance.now() - t0;
    const how = child.exitedWith();
    if (how !== undefined) throw new Error(`exited (${how}) before listening; stderr:\n${child.stderrTail()}`);
    if (performance.now() - t0 > START_TIMEOUT_MS) throw new Error(`not listening on ${port} within ${START_TIMEOUT_MS} ms; stderr:\n${child.stderrTail()}`);
    await sleep(POLL_MS);
  }
}

/**
 * CPU time (user + system) the main thread of process `pid` has used, in µs: the thread the
 * proxy's JavaScript runs in on every runtime (Linux `/proc/PID/task/PID/stat`, in clock ticks
 * of 10 ms, the kernel's USER_HZ of 100).
 */
function mainThreadCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from the 3rd (state) on
  return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime, stime: the 14th and 15th
}

async function startSystem(system: ProxySystem, opts: { otlp?: OtlpTarget; env?: Record<string, string> } = {}): Promise<Started> {
  const dir = makeTempDir(`cnp-compare-${system}-`);
  const port = await pickPort();
  let socksPort: number | undefined;
  let cmd: { command: string; args: string[] } | string;
  const file = join(dir, "config");
  if (isOurs(system)) {
    socksPort = await pickPort();
    writeFileSync(file, ourConfig(port, socksPort, opts.otlp));
    cmd = proxyCommand(system, file, { built: system === "node" });
  } else if (system === "squid") {
    // Started as root, squid drops to its own user (proxy): it must reach its dir.
    chmodSync(dir, 0o777);
    writeFileSync(file, squidConfig(dir, port), { mode: 0o644 });
    cmd = { command: SQUID, args: ["-f", file, "-N"] };
  } else {
    writeFileSync(file, tinyproxyConfig(port));
    cmd = { command: TINYPROXY, args: ["-d", "-c", file] };
  }
  if (typeof cmd === "string") {
    removeTempDir(dir);
    throw new Error(cmd);
  }
  const wrapped = withFdLimit(cmd);
  const t0 = performance.now();
  const child = startChild(wrapped.command, wrapped.args, childEnv({ RUST_LOG: PROXY_RUST_LOG, ...opts.env }), { cwd: PROXY_ROOT });
  const stop = async () => {
    await child.stop();
    removeTempDir(dir);
  };
  try {
    const logged = isOurs(system)
      ? waitForLine(child, /HTTP proxy listening on 127\.0\.0\.1:(\d+)/, `proxy under ${system}`).then(() => performance.now() - t0)
      : Promise.resolve(undefined);
    const socks = isOurs(system) ? waitForLine(child, /SOCKS5 proxy listening on 127\.0\.0\.1:(\d+)/, `SOCKS5 listener under ${system}`) : undefined;
    socks?.catch(() => {}); // awaited below; a failure is reported there
    const [logMs, connectMs] = await Promise.all([logged, pollConnect(port, child, t0)]);
    await socks;
    return { system, port, socksPort, pid: child.pid, child, logMs, connectMs, stop };
  } catch (e) {
    await stop();
    throw new Error(`${system}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/** wrk against `port` (a proxy: absolute-form to the origin), optionally `Connection: close`. */
async function runWrk(wrk: string, port: number, originPort: number, proxied: boolean, close: boolean, durationS: number): Promise<WrkResult> {
  const dir = makeTempDir("cnp-compare-wrk-");
  try {
    const script = join(dir, "request.lua");
    writeFileSync(
      script,
      `wrk.path = "${proxied ? `http://${LOOPBACK}:${originPort}/small` : "/small"}"\n` +
        `wrk.headers["Host"] = "${LOOPBACK}:${originPort}"\n` +
        (close ? `wrk.headers["Connection"] = "close"\n` : ""),
    );
    const args = ["-t", String(WRK_THREADS), "-c", String(WRK_CONNS), "-d", `${durationS}s`, "--latency", "--timeout", `${WRK_TIMEOUT_S}s`, "-s", script, `http://${LOOPBACK}:${port}/`];
    const r = await runTool(wrk, args, (durationS + 60) * 1000);
    if (!/Requests\/sec/.test(r.out)) throw new Error(`wrk failed (${r.how}): ${(r.out + r.err).trim().slice(0, 300)}`);
    return parseWrk(r.out);
  } finally {
    removeTempDir(dir);
  }
}

/**
 * One unmeasured transfer (a JIT-compiled proxy runs its tunnel code for the first time here:
 * Deno's first CONNECT download moved about a third of the later ones), then
 * {@link BULK_ROUNDS} transfers one after another: the median of those that completed, and all
 * of them in the note, a failed one with its error. Only when every one fails does the cell.
 */
async function bulkRounds(transfer: () => Promise<number>): Promise<{ v: number; note: string }> {
  const failures: string[] = [];
  await transfer().catch((e: unknown) => failures.push(`unmeasured one failed: ${errText(e)}`));
  const rates: number[] = [];
  const rounds: string[] = [];
  let first: unknown;
  for (let round = 0; round < BULK_ROUNDS; round++) {
    try {
      const rate = await transfer();
      rates.push(rate);
      rounds.push(rate.toFixed(0));
    } catch (e) {
      first ??= e;
      rounds.push("failed");
      failures.push(`round ${round + 1} failed: ${errText(e)}`);
    }
  }
  if (rates.length === 0) throw first;
  const notes = [...(BULK_ROUNDS > 1 ? [`[rounds: ${rounds.join(", ")}]`] : []), ...failures.map((f) => `[${f}]`)];
  return { v: median(rates), note: notes.join(" ") };
}

/** curl download of /big; MB/s (10^6 bytes). */
async function curlDownload(curl: string, originPort: number, via: { http?: number; socks?: number } = {}): Promise<number> {
  const args = ["-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}", "--max-time", "900"];
  if (via.http !== undefined) args.push("-p", "-x", `http://${LOOPBACK}:${via.http}`);
  if (via.socks !== undefined) args.push("--socks5", `${LOOPBACK}:${via.socks}`);
  args.push(`http://${LOOPBACK}:${originPort}/big`);
  const r = await runTool(curl, args, 960_000);
  const [code, size, speed] = r.out.trim().split(" ").map(Number);
  if (code !== 200 || size !== BULK_BYTES) throw new Error(`curl: status ${code}, ${size} of ${BULK_BYTES} bytes (${r.how}) ${r.err}`);
  return speed! / 1e6;
}

/** curl upload of `file` as a plain POST (streamed with -T, no Expect); MB/s (10^6 bytes). */
async function curlUpload(curl: string, originPort: number, file: string, httpProxy?: number): Promise<number> {
  const args = ["-s", "-o", "/dev/null", "-w", "%{http_code} %{size_upload} %{speed_upload}", "--max-time", "900", "-H", "Expect:", "-H", "Content-Type: application/octet-stream", "-X", "POST", "-T", file];
  if (httpProxy !== undefined) args.push("-x", `http://${LOOPBACK}:${httpProxy}`);
  args.push(`http://${LOOPBACK}:${originPort}${UPLOAD_PATH}`);
  const r = await runTool(curl, args, 960_000);
  const [code, size, speed] = r.out.trim().split(" ").map(Number);
  if (code !== 200 || size !== BULK_BYTES) throw new Error(`curl: status ${code}, sent ${size} of ${BULK_BYTES} bytes (${r.how}) ${r.err}`);
  return speed! / 1e6;
}

interface LatencyResult {
  p50: number;
  p99: number;
  samples: number;
  /** Requests sent late because every connection was still waiting for a response (or reconnecting). */
  late: number;
  errors: number;
  /** Connections the server closed and the client opened again (tinyproxy closes after each response). */
  reconnects: number;
}

/**
 * Constant-rate client: {@link LATENCY_RATE} GET /small per second in total over
 * {@link LATENCY_CONNS} keep-alive connections (one request at a time on each, no pipelining),
 * for {@link LATENCY_WARMUP_S} + {@link LATENCY_S} seconds; latency = request written → last byte
 * of the response (by Content-Length). The warm-up's samples are discarded.
 */
async function latencyRun(port: number, originPort: number, proxied: boolean): Promise<LatencyResult> {
  const request = Buffer.from(`GET ${proxied ? `http://${LOOPBACK}:${originPort}/small` : "/small"} HTTP/1.1\r\nHost: ${LOOPBACK}:${originPort}\r\n\r\n`, "latin1");
  const samples: number[] = [];
  let errors = 0;
  let late = 0;
  let reconnects = 0;
  let serverCloses = false;
  let wake = () => {};
  interface Conn {
    sock: Socket;
    ready: boolean;
    busy: boolean;
    sentAt: number;
    record: boolean;
    buf: Buffer;
    /** Set when this client closes it (the server said or showed that it closes). */
    closingOurselves: boolean;
  }
  const conns: Conn[] = [];
  let stopped = false;
  /** Open connection `idx` (again: a proxy that closes after each response, like tinyproxy, gets a new one). */
  const open = (idx: number): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const sock = connect({ port, host: LOOPBACK, noDelay: true });
      const c: Conn = { sock, ready: false, busy: false, sentAt: 0, record: false, buf: Buffer.alloc(0), closingOurselves: false };
      conns[idx] = c;
      sock.once("connect", () => {
        c.ready = true;
        resolve(c);
        wake();
      });
      sock.on("error", (e) => {
        if (!c.ready) reject(e);
      });
      sock.on("close", () => {
        if (c.busy) errors++;
        // The server closes connections (tinyproxy: after every response, without saying so):
        // from now on each connection is replaced as soon as its response is complete, so no
        // request is written into a connection the server is about to close.
        if (!stopped && !c.closingOurselves) serverCloses = true;
        c.ready = false;
        c.busy = false;
        if (!stopped && conns[idx] === c) {
          reconnects++;
          open(idx).catch(() => errors++);
        }
      });
      sock.on("data", (d: Buffer) => {
        c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
        for (;;) {
          const end = c.buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = c.buf.subarray(0, end).toString("latin1");
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
          if (c.buf.length < end + 4 + length) return;
          const took = performance.now() - c.sentAt;
          c.buf = c.buf.subarray(end + 4 + length);
          if (!/^HTTP\/1\.[01] 200/.test(head)) errors++;
          else if (c.record) samples.push(took);
          c.busy = false;
          if (serverCloses || /\r\nconnection:\s*close/i.test(head)) {
            c.ready = false;
            c.closingOurselves = true;
            sock.destroy(); // the close handler opens the next one
          }
          wake();
        }
      });
    });
  await Promise.all(Array.from({ length: LATENCY_CONNS }, (_, i) => open(i)));
  const interval = 1000 / LATENCY_RATE;
  const total = Math.round((LATENCY_WARMUP_S + LATENCY_S) * LATENCY_RATE);
  const warm = Math.round(LATENCY_WARMUP_S * LATENCY_RATE);
  let next = 0;
  let lateAt = -1;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && start + next * interval <= now) {
        const c = conns.find((x) => x.ready && !x.busy);
        if (!c) {
          if (lateAt !== next) late++;
          lateAt = next;
          break;
        }
        c.busy = true;
        c.record = next >= warm;
        c.sentAt = performance.now();
        c.sock.write(request);
        next++;
      }
      if (next >= total && conns.every((x) => !x.busy)) finish();
    };
    const timer = setInterval(tick, 1);
    const deadline = setTimeout(() => finish(), (LATENCY_WARMUP_S + LATENCY_S) * 1000 + 10_000);
    const finish = () => {
      clearInterval(timer);
      clearTimeout(deadline);
      wake = () => {};
      resolve();
    };
    wake = tick;
  });
  stopped = true;
  for (const c of conns) c.sock.destroy();
  if (samples.length === 0) throw new Error(`no latency samples (${errors} errors)`);
  samples.sort((a, b) => a - b);
  return { p50: pct(samples, 50), p99: pct(samples, 99), samples: samples.length, late, errors, reconnects };
}

// ---------------------------------------------------------------------------------------------
// The OTLP receiver (a child process, so it does not take the bench's CPU).

async function startReceiver(): Promise<{ port: number; count(): Promise<number>; stop(): Promise<void> }> {
  const code = `
    const http = require("node:http");
    let received = 0;
    const server = http.createServer((req, res) => {
      if (req.url === "/count") { res.writeHead(200, { "content-type": "text/plain" }); return res.end(String(received)); }
      req.on("data", () => {});
      req.on("end", () => { received++; res.writeHead(200, { "content-type": "application/json" }); res.end("{}"); });
    });
    server.listen(0, "${LOOPBACK}", () => console.error("otlp receiver listening on ${LOOPBACK}:" + server.address().port));
    process.on("SIGTERM", () => process.exit(0));
  `;
  const child = startChild(process.execPath, ["-e", code], childEnv());
  const m = await waitForLine(child, /otlp receiver listening on 127\.0\.0\.1:(\d+)/, "OTLP receiver").catch(async (e) => {
    await child.stop("SIGKILL");
    throw e;
  });
  const port = Number(m[1]);
  return {
    port,
    async count() {
      const r = await fetch(`http://${LOOPBACK}:${port}/count`);
      return Number(await r.text());
    },
    stop: () => child.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// Results.

type Cell = { v: number; note?: string } | { na: string };
type Figure =
  | "keepalive"
  | "close"
  | "connect"
  | "socks"
  | "upload"
  | "p50"
  | "p99"
  | "startLog"
  | "startConnect"
  | "rssIdle"
  | "rssTunnels"
  | "decide"
  | "audit"
  | "auditJson"
  | "auditWorker";

interface FigureSpec {
  label: string;
  fmt(v: number): string;
  /** Print ×direct / ×squid ratios in the other cells. */
  vsDirect: boolean;
  vsSquid: boolean;
}

const FIGURES: Record<Figure, FigureSpec> = {
  keepalive: { label: `1. keep-alive GET 1 KiB, req/s (wrk -t${WRK_THREADS} -c${WRK_CONNS}, median of ${WRK_ROUNDS} interleaved rounds; higher is better)`, fmt: (v) => v.toFixed(0), vsDirect: true, vsSquid: true },
  close: { label: `2. new connection per request (Connection: close), req/s (median of ${WRK_ROUNDS} interleaved rounds; higher is better)`, fmt: (v) => v.toFixed(0), vsDirect: true, vsSquid: true },
  connect: { label: `3. CONNECT tunnel download, MB/s (10^6 B; direct: plain GET; median of ${BULK_ROUNDS}; higher is better)`, fmt: (v) => v.toFixed(0), vsDirect: true, vsSquid: true },
  socks: { label: `4. SOCKS5 tunnel download, MB/s (direct: plain GET; median of ${BULK_ROUNDS}; higher is better)`, fmt: (v) => v.toFixed(0), vsDirect: true, vsSquid: false },
  upload: { label: `5. plain POST upload, MB/s (median of ${BULK_ROUNDS}; higher is better)`, fmt: (v) => v.toFixed(0), vsDirect: true, vsSquid: true },
  p50: { label: "6a. added p50 latency at 1,000 req/s, ms (direct: its own p50; lower is better, ratio = ÷ squid's)", fmt: (v) => v.toFixed(3), vsDirect: false, vsSquid: true },
  p99: { label: "6b. added p99 latency at 1,000 req/s, ms (direct: its own p99; lower is better, ratio = ÷ squid's)", fmt: (v) => v.toFixed(3), vsDirect: false, vsSquid: true },
  startLog: { label: `7a. start → "HTTP proxy listening" log line, ms (median of ${STARTS}; lower is better)`, fmt: (v) => v.toFixed(0), vsDirect: false, vsSquid: false },
  startConnect: { label: `7b. start → first successful TCP connect, ms (median of ${STARTS}, polled every ${POLL_MS} ms; lower is better, ratio = ÷ squid's)`, fmt: (v) => v.toFixed(0), vsDirect: false, vsSquid: true },
  rssIdle: { label: "8a. RSS idle after the warm-up, MiB (lower is better, ratio = ÷ squid's)", fmt: (v) => v.toFixed(1), vsDirect: false, vsSquid: true },
  rssTunnels: { label: `8b. RSS with ${TARGET_TUNNELS.toLocaleString("en-US")} idle CONNECT tunnels, MiB (lower is better, ratio = ÷ squid's)`, fmt: (v) => v.toFixed(0), vsDirect: false, vsSquid: true },
  decide: { label: "9. policy decisions/s, 10,000-pattern allowlist, DNS excluded (higher is better)", fmt: (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : `${(v / 1e3).toFixed(0)} k`), vsDirect: false, vsSquid: false },
  audit: {
    label: `10. keep-alive req/s with OTLP/HTTP audit export (protobuf, the default) ÷ without (1.00 = no cost; export thread as chosen on ${availableParallelism()} CPUs)`,
    fmt: (v) => v.toFixed(2),
    vsDirect: false,
    vsSquid: false,
  },
  auditJson: { label: `10b. the same with protocol = "json"`, fmt: (v) => v.toFixed(2), vsDirect: false, vsSquid: false },
  auditWorker: { label: `10c. protobuf with the export in a worker thread (${AUDIT_THREAD_ENV}=worker)`, fmt: (v) => v.toFixed(2), vsDirect: false, vsSquid: false },
};

class Results {
  private readonly cells = new Map<string, Cell>();
  set(f: Figure, s: System, c: Cell): void {
    this.cells.set(`${f}/${s}`, c);
  }
  get(f: Figure, s: System): Cell | undefined {
    return this.cells.get(`${f}/${s}`);
  }
  text(f: Figure, s: System): string {
    const c = this.get(f, s);
    if (!c) return "–";
    if ("na" in c) return `n/a (${c.na})`;
    const spec = FIGURES[f];
    const ratios: string[] = [];
    const base = (b: System) => {
      const x = this.get(f, b);
      return x && "v" in x && x.v > 0 ? x.v : undefined; // no ratio to a zero or negative base
    };
    // No ratio for a negative value (an added latency below direct's: noise).
    if (spec.vsDirect && s !== "direct" && c.v >= 0 && base("direct") !== undefined) ratios.push(`×${(c.v / base("direct")!).toFixed(2)} direct`);
    if (spec.vsSquid && s !== "direct" && s !== "squid" && c.v >= 0 && base("squid") !== undefined) ratios.push(`×${(c.v / base("squid")!).toFixed(2)} squid`);
    return `${spec.fmt(c.v)}${ratios.length ? ` (${ratios.join(", ")})` : ""}${c.note ? ` ${c.note}` : ""}`;
  }
}

/** Record the outcome of one measurement, printing progress; failures become "failed: …" cells. */
async function measure(results: Results, f: Figure, s: System, what: string, fn: () => Promise<Cell>): Promise<void> {
  try {
    const c = await fn();
    results.set(f, s, c);
    log(`${s}: ${what}: ${"na" in c ? `n/a (${c.na})` : `${FIGURES[f].fmt(c.v)}${c.note ? ` ${c.note}` : ""}`}`);
  } catch (e) {
    results.set(f, s, { na: `failed: ${errText(e)}` });
    log(`${s}: ${what}: FAILED: ${(e as Error).message}`);
  }
}

const wrkNote = (w: WrkResult) => {
  const sock = w.connect + w.read + w.write + w.timeout;
  const parts = [];
  if (w.non2xx) parts.push(`non-2xx ${w.non2xx}`);
  if (sock) parts.push(`socket errors connect ${w.connect} read ${w.read} write ${w.write} timeout ${w.timeout}`);
  return parts.length ? `[${parts.join("; ")}]` : undefined;
};

/**
 * Figures 1 (keep-alive) and 2 (`Connection: close`): start every system, warm each up, then
 * {@link WRK_ROUNDS} rounds, each running wrk through every system in turn; a cell is the median
 * of its rounds, and its note lists them all (and any wrk errors).
 */
async function interleavedWrk(wrk: string, systems: readonly System[], originPort: number, results: Results, running: Set<Started>): Promise<void> {
  log(`--- figures 1 and 2: ${WRK_ROUNDS} rounds through ${systems.join(", ")} in turn`);
  const targets: { s: System; port: number; proxied: boolean; proxy?: Started }[] = [];
  try {
    for (const s of systems) {
      if (s === "direct") {
        targets.push({ s, port: originPort, proxied: false });
        continue;
      }
      try {
        const proxy = await startSystem(s);
        running.add(proxy);
        targets.push({ s, port: proxy.port, proxied: true, proxy });
      } catch (e) {
        log(`${s}: did not start: ${(e as Error).message}`);
        for (const f of ["keepalive", "close"] as const) results.set(f, s, { na: `failed to start: ${errText(e)}` });
      }
    }
    for (const t of targets) await runWrk(wrk, t.port, originPort, t.proxied, false, WARMUP_S).catch((e) => log(`${t.s}: warm-up failed: ${errText(e)}`));
    for (const [figure, close, what] of [
      ["keepalive", false, "keep-alive req/s"],
      ["close", true, "Connection: close req/s"],
    ] as const) {
      const runs = new Map<System, WrkResult[]>();
      const failed = new Map<System, unknown>();
      for (let round = 0; round < WRK_ROUNDS; round++) {
        for (const t of targets) {
          if (failed.has(t.s)) continue;
          try {
            const w = await runWrk(wrk, t.port, originPort, t.proxied, close, DURATION_S);
            runs.set(t.s, [...(runs.get(t.s) ?? []), w]);
          } catch (e) {
            failed.set(t.s, e);
          }
        }
        log(`${what}, round ${round + 1}: ${targets.map((t) => `${t.s} ${runs.get(t.s)?.[round]?.rps.toFixed(0) ?? "failed"}`).join(", ")}`);
      }
      for (const t of targets) {
        await measure(results, figure, t.s, `${what} (median of ${WRK_ROUNDS} rounds)`, async () => {
          if (failed.has(t.s)) throw failed.get(t.s);
          const ws = runs.get(t.s)!;
          // wrk's errors summed over the rounds
          const sum = (k: "requests" | "connect" | "read" | "write" | "timeout" | "non2xx") => ws.reduce((a, w) => a + w[k], 0);
          const errors = wrkNote({ ...ws[0]!, requests: sum("requests"), connect: sum("connect"), read: sum("read"), write: sum("write"), timeout: sum("timeout"), non2xx: sum("non2xx") });
          return { v: median(ws.map((w) => w.rps)), note: `[rounds: ${ws.map((w) => w.rps.toFixed(0)).join(", ")}]${errors ? ` ${errors}` : ""}` };
        });
      }
    }
  } finally {
    for (const t of targets) {
      if (!t.proxy) continue;
      const gone = t.proxy.child.exitedWith();
      if (gone) log(`${t.s}: the proxy EXITED during the run (${gone})`);
      await t.proxy.stop();
      running.delete(t.proxy);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The section.

export async function runCompareBench(): Promise<void> {
  installSignalHandlers();
  const started = performance.now();
  const asked = (process.env.BENCH_COMPARE_SYSTEMS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = asked.filter((s) => !(SYSTEMS as readonly string[]).includes(s));
  const skipped: string[] = [];
  if (unknown.length) skipped.push(`unknown system(s) in BENCH_COMPARE_SYSTEMS: ${unknown.join(", ")} (known: ${SYSTEMS.join(", ")})`);
  let systems: System[] = asked.length ? SYSTEMS.filter((s) => asked.includes(s)) : [...SYSTEMS];
  if (asked.length) for (const s of SYSTEMS) if (!asked.includes(s)) skipped.push(`${s}: not in BENCH_COMPARE_SYSTEMS`);
  const drop = (s: System, why: string) => {
    if (!systems.includes(s)) return;
    systems = systems.filter((x) => x !== s);
    skipped.push(`${s}: ${why}`);
  };
  if (!existsSync(SQUID)) drop("squid", `${SQUID} is not installed (apt-get install squid)`);
  if (!existsSync(TINYPROXY)) drop("tinyproxy", `${TINYPROXY} is not installed (apt-get install tinyproxy)`);
  if (!existsSync(BUN)) drop("bun", "node_modules/.bin/bun is missing (run npm ci)");
  if (!existsSync(DENO)) drop("deno", "node_modules/.bin/deno is missing (run npm ci)");
  const wrk = findTool("wrk");
  const curl = findTool("curl");
  if (!wrk) skipped.push("figures 1, 2, 10 (wrk) and the warm-up: wrk is not installed (apt-get install wrk)");
  if (!curl) skipped.push("figures 3, 4, 5: curl is not installed (apt-get install curl)");
  const wantNginx = (process.env.BENCH_COMPARE_ORIGIN ?? "nginx") !== "node";
  if (wantNginx && !findTool("nginx")) skipped.push("nginx origin: nginx is not installed; the built-in node origin is used instead");

  console.log(`\n## compare: ${systems.join(", ")} side by side`);
  // The built JavaScript for the node column.
  if (systems.includes("node") && (!existsSync(join(PROXY_ROOT, NODE_DIST_MAIN)) || distStale())) {
    log(`${NODE_DIST_MAIN} is missing or older than src/: running npm run build`);
    const npm = findTool("npm");
    const r = npm ? await runTool(npm, ["run", "build"], 300_000) : undefined;
    if (!existsSync(join(PROXY_ROOT, NODE_DIST_MAIN))) drop("node", `npm run build did not produce ${NODE_DIST_MAIN}${r ? ` (${r.how}): ${r.err.slice(-300)}` : " (npm not found)"}`);
  }

  const results = new Results();
  const origin = await startOrigin(wantNginx);
  const dataDir = makeTempDir("cnp-compare-data-");
  const uploadFile = join(dataDir, "upload.bin");
  writeZeros(uploadFile, BULK_BYTES);
  const receiver = wrk && systems.some(isOurs) ? await startReceiver() : undefined;
  const sink = await startSink();
  const running = new Set<Started>();
  let directLatency: LatencyResult | undefined;
  try {
    log(`origin: ${origin.kind} on ${LOOPBACK}:${origin.port}`);
    if (!(await httpGet(origin.port, "/small", { tries: 20 }))) throw new Error("origin does not answer /small");

    // Figures 3-6, 8a and 10: one system at a time, alone on the machine (besides the origin).
    for (const s of systems) {
      log(`--- ${s}`);
      let proxy: Started | undefined;
      try {
        if (s !== "direct") {
          proxy = await startSystem(s);
          running.add(proxy);
          await httpGet(proxy.port, `http://${LOOPBACK}:${origin.port}/small`, { hostHeader: `${LOOPBACK}:${origin.port}`, tries: 3 });
        }
      } catch (e) {
        log(`${s}: did not start: ${(e as Error).message}`);
        for (const f of Object.keys(FIGURES) as Figure[]) if (!["startLog", "startConnect", "rssTunnels", "decide"].includes(f)) results.set(f, s, { na: `failed to start: ${errText(e)}` });
        continue;
      }
      const port = proxy?.port ?? origin.port;
      const proxied = proxy !== undefined;
      if (wrk) {
        await runWrk(wrk, port, origin.port, proxied, false, WARMUP_S).catch((e) => log(`${s}: warm-up failed: ${errText(e)}`));
      }
      if (proxy) {
        await sleep(1_000);
        const kib = rssKiB(proxy.pid);
        results.set("rssIdle", s, Number.isNaN(kib) ? { na: "process gone" } : { v: kib / 1024 });
        log(`${s}: RSS idle after the warm-up: ${(kib / 1024).toFixed(1)} MiB`);
      } else results.set("rssIdle", s, { na: "no proxy" });

      if (!wrk) for (const f of ["keepalive", "close", "audit", "auditJson", "auditWorker"] as const) results.set(f, s, { na: "wrk missing" });

      if (curl) {
        await measure(results, "connect", s, "CONNECT download MB/s", () => bulkRounds(() => curlDownload(curl, origin.port, proxied ? { http: port } : {})));
        if (s === "direct") {
          const d = results.get("connect", "direct");
          results.set("socks", s, d && "v" in d ? { v: d.v, note: "(= row 3)" } : { na: "see row 3" });
        } else if (proxy?.socksPort !== undefined) {
          const socks = proxy.socksPort;
          await measure(results, "socks", s, "SOCKS5 download MB/s", () => bulkRounds(() => curlDownload(curl, origin.port, { socks })));
        } else results.set("socks", s, { na: "no SOCKS5" });
        await measure(results, "upload", s, "POST upload MB/s", () => bulkRounds(() => curlUpload(curl, origin.port, uploadFile, proxied ? port : undefined)));
      } else for (const f of ["connect", "socks", "upload"] as const) results.set(f, s, { na: "curl missing" });

      await measure(results, "p50", s, `latency at ${LATENCY_RATE} req/s`, async () => {
        const r = await latencyRun(port, origin.port, proxied);
        const extra = `[${r.samples} samples${r.late ? `, ${r.late} sent late` : ""}${r.errors ? `, ${r.errors} errors` : ""}${r.reconnects ? `, ${r.reconnects} reconnects` : ""}]`;
        log(`${s}: latency p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms ${extra}`);
        if (!proxied) {
          directLatency = r;
          results.set("p99", s, { v: r.p99, note: "(own)" });
          return { v: r.p50, note: "(own)" };
        }
        if (!directLatency) throw new Error("no direct latency to subtract (run with direct)");
        const note = r.errors || r.late || r.reconnects ? extra : undefined;
        results.set("p99", s, { v: r.p99 - directLatency.p99, note });
        return { v: r.p50 - directLatency.p50, note };
      });
      if (!results.get("p99", s)) results.set("p99", s, results.get("p50", s)!);

      for (const [figure, thread, protocol] of [
        ["audit", undefined, "binary"],
        ["auditJson", undefined, "json"],
        ["auditWorker", "worker", "binary"],
      ] as const) {
        if (!(isOurs(s) && wrk && receiver && proxy)) {
          results.set(figure, s, { na: isOurs(s) ? "wrk missing" : "no OTLP export" });
          continue;
        }
        await measure(results, figure, s, `audit export (${protocol}${thread ? `, ${thread} thread` : ""}) on ÷ off`, async () => {
          const audited = await startSystem(s, { otlp: { port: receiver.port, protocol }, env: thread ? { [AUDIT_THREAD_ENV]: thread } : {} });
          running.add(audited);
          try {
            await runWrk(wrk, audited.port, origin.port, true, false, WARMUP_S);
            const before = await receiver.count();
            let off = 0;
            let on = 0;
            const cpu = { off: { us: 0, requests: 0 }, on: { us: 0, requests: 0 } };
            /** One wrk run through `p`, adding its main thread's CPU time to `into`. */
            const timed = async (p: Started, into: { us: number; requests: number }): Promise<number> => {
              const t0 = mainThreadCpuUs(p.pid);
              const r = await runWrk(wrk, p.port, origin.port, true, false, DURATION_S);
              into.us += mainThreadCpuUs(p.pid) - t0;
              into.requests += r.requests;
              return r.rps;
            };
            for (let round = 0; round < AUDIT_ROUNDS; round++) {
              off = Math.max(off, await timed(proxy, cpu.off));
              on = Math.max(on, await timed(audited, cpu.on));
            }
            await sleep(1_500); // the batch processor's last export
            const exports = (await receiver.count()) - before;
            if (exports === 0) throw new Error("the receiver got no OTLP export while export was on");
            const perRequest = (c: { us: number; requests: number }) => (c.requests > 0 ? (c.us / c.requests).toFixed(1) : "?");
            return {
              v: on / off,
              note: `(${on.toFixed(0)} vs ${off.toFixed(0)} req/s; proxy thread ${perRequest(cpu.on)} vs ${perRequest(cpu.off)} µs CPU/req; ${exports} exports)`,
            };
          } finally {
            await audited.stop();
            running.delete(audited);
          }
        });
      }

      if (proxy) {
        const gone = proxy.child.exitedWith();
        if (gone) log(`${s}: the proxy EXITED during the run (${gone})`);
        await proxy.stop();
        running.delete(proxy);
      }
    }

    // Figures 1 and 2: every system started at once, then rounds that visit each in turn.
    if (wrk) await interleavedWrk(wrk, systems, origin.port, results, running);

    // Figure 7: start-to-listening, fresh processes.
    results.set("startLog", "direct", { na: "no proxy" });
    results.set("startConnect", "direct", { na: "no proxy" });
    for (const s of systems) {
      if (s === "direct") continue;
      const logs: number[] = [];
      const conns: number[] = [];
      await measure(results, "startConnect", s, `start → connect (${STARTS} starts)`, async () => {
        for (let i = 0; i < STARTS; i++) {
          const p = await startSystem(s);
          running.add(p);
          if (p.logMs !== undefined) logs.push(p.logMs);
          conns.push(p.connectMs);
          await p.stop();
          running.delete(p);
        }
        return { v: median(conns) };
      });
      results.set("startLog", s, logs.length ? { v: median(logs) } : { na: isOurs(s) ? "failed" : "no such log line" });
      if (logs.length) log(`${s}: start → log line: median ${median(logs).toFixed(0)} ms (${logs.map((x) => x.toFixed(0)).join(", ")}); connect: ${conns.map((x) => x.toFixed(0)).join(", ")}`);
    }

    // Figure 8b: idle CONNECT tunnels, a fresh process each (bench/idle.ts's opener).
    const plan = tunnelPlan(IDLE_TUNNELS);
    log(`tunnels: ${plan.note}`);
    results.set("rssTunnels", "direct", { na: "no proxy" });
    for (const s of systems) {
      if (s === "direct") continue;
      await measure(results, "rssTunnels", s, `RSS with ${plan.tunnels} idle tunnels`, async () => {
        if (plan.tunnels === 0) throw new Error("the descriptor limits allow no tunnels");
        const p = await startSystem(s);
        running.add(p);
        const fig: TunnelFigures = {};
        try {
          await measureTunnels(fig, { pid: p.pid, port: p.port, exitedWith: () => p.child.exitedWith() }, plan, sink, []);
        } catch (e) {
          throw new Error(`${(e as Error).message}\n${p.child.stderrTail()}`);
        } finally {
          await p.stop();
          running.delete(p);
        }
        log(`${s}: RSS idle ${((fig.idleRssKiB ?? NaN) / 1024).toFixed(1)} MiB, with ${plan.tunnels} tunnels ${((fig.openRssKiB ?? NaN) / 1024).toFixed(1)} MiB (${fig.openFds} fds), ${(fig.perTunnelKiB ?? NaN).toFixed(1)} KiB per tunnel`);
        if (fig.tunnels === TARGET_TUNNELS) return { v: fig.openRssKiB! / 1024 };
        if (fig.extrapolatedKiB === undefined) throw new Error("too few tunnels to extrapolate");
        return { v: fig.extrapolatedKiB / 1024, note: `(extrapolated; ${(fig.openRssKiB! / 1024).toFixed(0)} MiB measured with ${fig.tunnels})` };
      });
    }

    // Figure 9: the policy micro-benchmark under each runtime.
    for (const s of systems) {
      if (!isOurs(s)) {
        results.set("decide", s, { na: s === "direct" ? "no policy" : "not comparable" });
        continue;
      }
      await measure(results, "decide", s, `policy decisions/s (${DECISIONS} decisions)`, async () => {
        const script = join(ROOT, "bench/decide-micro.ts");
        const cmd = s === "node" ? { c: process.execPath, a: ["--import", "tsx", script] } : s === "bun" ? { c: BUN, a: [script] } : { c: DENO, a: ["run", "-A", "--quiet", script] };
        const r = await runTool(cmd.c, cmd.a, 600_000, childEnv({ BENCH_DECISIONS: String(DECISIONS) }));
        const line = r.out.trim().split("\n").pop() ?? "";
        let j: { nsPerDecision: number; decisionsPerSecond: number; nsPerMatch: number };
        try {
          j = JSON.parse(line) as typeof j;
        } catch {
          throw new Error(`decide-micro (${r.how}) printed no result: ${(r.out + r.err).trim().slice(-300)}`);
        }
        return { v: j.decisionsPerSecond, note: `(${j.nsPerDecision.toFixed(0)} ns each; matches() alone ${j.nsPerMatch.toFixed(0)} ns)` };
      });
    }
  } finally {
    for (const p of running) await p.stop();
    await sink.close();
    await receiver?.stop();
    await origin.stop();
    removeTempDir(dataDir);
  }

  // Output.
  const tool = (path: string | undefined, args: string[], name: string, clean: (s: string) => string = (s) => s) => (path && existsSync(path) ? clean(versionOf(path, args)) : `${name} not installed`);
  console.log(`\n### compare: machine and tools\n`);
  for (const line of machineInfo()) console.log(line);
  console.log(`- load average at the end: ${safeRead("/proc/loadavg").split(" ").slice(0, 3).join(" ")} (other work on the machine skews the figures)`);
  console.log(
    `- ${tool(curl, ["--version"], "curl", (s) => s.split(" (")[0]!)}; ${tool(SQUID, ["-v"], "squid")}; ${tool(TINYPROXY, ["-v"], "tinyproxy")}`,
  );
  console.log(`- ${treeInfo()}${systems.includes("node") && distStale() ? `; ${NODE_DIST_MAIN} is older than some file under src/ (the node column measures the last build)` : ""}`);
  console.log(`- origin: ${origin.kind}`);
  console.log(
    `- settings: wrk -t${WRK_THREADS} -c${WRK_CONNS} -d${DURATION_S}s (figures 1 and 2: median of ${WRK_ROUNDS} interleaved rounds); ${BULK_BYTES / 1048576} MiB per download/upload (figures 3-5: median of ${BULK_ROUNDS} in a row after one unmeasured); latency ${LATENCY_RATE} req/s over ${LATENCY_CONNS} connections for ${LATENCY_S} s after ${LATENCY_WARMUP_S} s warm-up; ` +
      `${STARTS} starts; up to ${IDLE_TUNNELS} tunnels (${WARMUP_TUNNELS} warm-up, ${SETTLE_MS / 1000} s settle); ${DECISIONS} decisions; ${AUDIT_ROUNDS} audit rounds`,
  );
  console.log(`- node runs ${NODE_DIST_MAIN} (built JavaScript); bun and deno run src/runtimes/*/main.ts; RUST_LOG=${PROXY_RUST_LOG}`);
  console.log(`- MB = 10^6 bytes; MiB = 2^20 bytes`);
  if (skipped.length) {
    console.log(`- skipped:`);
    for (const s of skipped) console.log(`  - ${s}`);
  } else console.log(`- skipped: nothing`);

  console.log(`\nmarkdown table (for BENCHMARKS.md):\n`);
  console.log(`| figure | ${systems.join(" | ")} |`);
  console.log(`|---|${"---:|".repeat(systems.length)}`);
  for (const f of Object.keys(FIGURES) as Figure[]) {
    console.log(`| ${FIGURES[f].label} | ${systems.map((s) => results.text(f, s).replaceAll("|", "\\|")).join(" | ")} |`);
  }
  console.log(`\ncompare section took ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

// Run alone: `npx tsx bench/compare.ts`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runCompareBench();
}
