/**
 * Burst-load check (issue 10): many concurrent keep-alive clients, each through the standalone
 * proxy under Node, Bun and Deno, and the same load straight at the origin, side by side.
 *
 * - Origin: a loopback nginx started here (large `worker_connections`, `access_log off`, a 1 KiB
 *   static file at `/small`); a built-in Node origin only when nginx is not installed.
 * - Client: `wrk` (absolute-form requests through the proxy via a Lua script that sets
 *   `wrk.path`); the rows are skipped, with the reason, when wrk is not installed.
 * - Per row: requests/s, wrk's socket errors (connect, read, write, timeout) and non-2xx
 *   responses, p50/p99 latency, the proxy's idle RSS, its peak RSS during the load (VmRSS
 *   sampled every 100 ms) and its RSS a few seconds after the load, and the change of the
 *   kernel's TcpExt ListenOverflows / ListenDrops counters over the run (accept-queue overflow);
 *   also the proxy's idle RSS before the load, its peak count of open file descriptors (about two
 *   per connected client) and the peak accept-queue length of the proxy's and the origin's
 *   listeners (`ss -ltn`), which says whose queue overflowed.
 *
 * It asserts nothing: it prints what it measured, ending with markdown table rows for
 * BENCHMARKS.md.
 *
 * Run alone: `npm run bench -- load` or `npx tsx bench/load.ts`; `npm run bench` runs it after
 * the throughput section. Env (all optional): BENCH_LOAD_CLIENTS ("2000,8000"),
 * BENCH_LOAD_DURATION_S (10), BENCH_LOAD_RUNTIMES ("node,bun,deno"), BENCH_LOAD_ORIGIN
 * ("nginx" or "node"; default nginx when installed), BENCH_LOAD_PROXY_ROOT (run the proxy from
 * another copy of the sources), BENCH_LOAD_NETNS=0 (stay in the host network namespace).
 *
 * Every address is loopback (127.0.0.1). As root, the check runs in a network namespace of its
 * own (`unshare --net`, only `lo` up), so the listen counters count it alone even when other work
 * runs on the machine (BENCH_LOAD_NETNS=0 keeps the host namespace). Every process started here
 * is stopped at the end, also on failure, on SIGINT/SIGTERM and (SIGKILL as a last resort) on exit.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Repository root (bench/ → ..). */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/**
 * Where the proxy's sources are run from: the repository itself, or BENCH_LOAD_PROXY_ROOT (e.g.
 * a `git archive HEAD` export with `node_modules` linked in, to measure the committed tree while
 * the working tree has changes in progress).
 */
export const PROXY_ROOT = process.env.BENCH_LOAD_PROXY_ROOT ?? ROOT;
/** The only host anything here listens on or connects to. */
export const LOOPBACK = "127.0.0.1";

/** Concurrent keep-alive client counts, one row per count and target. */
const DEFAULT_CLIENT_COUNTS = [2000, 8000] as const;
/** Seconds each wrk run lasts (`-d`). */
const DEFAULT_DURATION_S = 10;
/** wrk threads (`-t`); the machine this was written for has 2 cores. */
const WRK_THREADS = 2;
/**
 * wrk's per-request timeout in seconds (`--timeout`): slower responses count as timeout errors
 * (with runs as long as this, hardly any can; clients stuck before their connect completes are
 * no error to wrk at all: the peak-fds column shows how many got in).
 */
const WRK_TIMEOUT_S = 10;
/** Extra time wrk gets beyond its duration before it is killed as hung. */
const WRK_GRACE_MS = 60_000;
/** How often the proxy's VmRSS is sampled during the load. */
const RSS_SAMPLE_INTERVAL_MS = 100;
/** How long after the load ends the proxy's RSS is read again. */
const RSS_SETTLE_MS = 5_000;
/** Pause between runs, so one run's closing sockets do not overlap the next run. */
const COOLDOWN_MS = 1_000;
/** How long a proxy (or the node origin) may take to print its listening line. */
const READY_TIMEOUT_MS = 30_000;
/** How long a stopped child gets to exit after SIGTERM before it is SIGKILLed. */
const STOP_TIMEOUT_MS = 10_000;
/** Size of the static file the origin serves at `/small`. */
const SMALL_BYTES = 1024;
/** File descriptors a proxy needs besides one per client and one per upstream socket. */
export const FD_HEADROOM = 1024;
/** The runtimes the proxy is started under, in table order. */
export const RUNTIMES = ["node", "bun", "deno"] as const;
/** Log filter for the proxies: info keeps the `upstream … failed: …` lines behind each 502. */
const PROXY_RUST_LOG = "info";
/**
 * Keeps Deno from calling home (its update check) and from prompting; set for every process
 * started here, like the test suite does.
 */
const OFFLINE_RUNTIME_ENV = { DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" } as const;
/** How many lines of a child's stderr are kept for error messages. */
const STDERR_TAIL_LINES = 40;
/** How many distinct upstream-failure reasons are printed per row. */
const TOP_FAILURE_REASONS = 3;

/** A runtime the standalone proxy runs on. */
export type Runtime = (typeof RUNTIMES)[number];

/** Options of {@link runLoadBench}; every field defaults from the environment, then the constants. */
export interface LoadOptions {
  clientCounts?: readonly number[];
  durationS?: number;
  runtimes?: readonly Runtime[];
  origin?: "nginx" | "node";
}

/** What wrk reported for one run. */
export interface WrkResult {
  requests: number;
  rps: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  non2xx: number;
  p50Ms: number;
  p99Ms: number;
}

/** One row of the table. */
export interface LoadRow {
  target: "direct" | Runtime;
  clients: number;
  wrk?: WrkResult;
  /** Why the row has no figures (tool missing, start failure, …). */
  skipped?: string;
  idleRssKiB?: number;
  peakRssKiB?: number;
  afterRssKiB?: number;
  /** The most file descriptors the proxy had open during the load (clients + upstreams + its own). */
  peakFds?: number;
  /** File descriptors the proxy had open before the load. */
  idleFds?: number;
  listenOverflows?: number;
  listenDrops?: number;
  /** Set when the proxy was gone after the load (crash, kill). */
  proxyExit?: string;
  /** `upstream … failed: WHY` lines the proxy logged while wrk ran, by reason. */
  upstreamFailures?: Map<string, number>;
  /** The same lines logged after wrk had exited (dials aborted as the clients went away). */
  upstreamFailuresAfter?: Map<string, number>;
  /** Peak accept-queue length / backlog of the proxy's listener (undefined without ss or for direct). */
  proxyQueue?: QueuePeak;
  /** Peak accept-queue length / backlog of the origin's listener. */
  originQueue?: QueuePeak;
}

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked and stopped, even when the bench fails or is interrupted.

const live = new Set<ChildProcess>();
/** Temporary directories still in use (removed on exit if the normal path did not). */
const tempDirs = new Set<string>();
/** Children that must get SIGTERM, not SIGKILL, on exit: they stop children of their own. */
const stopGently = new WeakSet<ChildProcess>();
process.on("exit", () => {
  for (const c of live) {
    try {
      // nginx's master stops its workers on SIGTERM and the namespaced bench its own children;
      // SIGKILL would orphan them.
      c.kill(stopGently.has(c) ? "SIGTERM" : "SIGKILL");
    } catch {
      // already gone
    }
  }
  // nginx may still be writing into its dir for a moment; a leftover is harmless.
  for (const d of tempDirs) removeTempDir(d);
});

/** A fresh temporary directory, removed with {@link removeTempDir} or on exit. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // best effort
  }
  tempDirs.delete(dir);
}
let signalHandlersInstalled = false;
export function installSignalHandlers(): void {
  if (signalHandlersInstalled) return;
  signalHandlersInstalled = true;
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      console.error(`\nbench: ${sig}, stopping ${live.size} child process(es)`);
      process.exit(130);
    });
  }
}

/** A started child with its stderr tail and an exit promise. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  exited: Promise<string>;
  /** The exit description once it exited ("code 1", "signal SIGSEGV"), else undefined. */
  exitedWith(): string | undefined;
  stderrTail(): string;
  /** Called with each complete stderr line. */
  onLine(fn: (line: string) => void): void;
  /** Everything written to stdout (only with `{ stdout: true }`; else ""). */
  stdoutText(): string;
  /** Resolves (with the exit description) once the process exited and its output streams closed. */
  closed: Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startChild(command: string, args: readonly string[], env: NodeJS.ProcessEnv, opts: { cwd?: string; gentle?: boolean; stdout?: boolean } = {}): Child {
  const proc = spawn(command, args, { cwd: opts.cwd ?? ROOT, env, stdio: ["ignore", opts.stdout ? "pipe" : "ignore", "pipe"] });
  const gentle = opts.gentle ?? false;
  live.add(proc);
  if (gentle) stopGently.add(proc);
  let exitText: string | undefined;
  const exited = new Promise<string>((resolve) => {
    proc.once("exit", (code, signal) => {
      live.delete(proc);
      exitText = signal ? `signal ${signal}` : `code ${code}`;
      resolve(exitText);
    });
    proc.once("error", (e) => {
      live.delete(proc);
      exitText = `spawn error: ${e.message}`;
      resolve(exitText);
    });
  });
  const closed = new Promise<string>((resolve) => {
    proc.once("close", (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
    proc.once("error", (e) => resolve(`spawn error: ${e.message}`));
  });
  let stdout = "";
  proc.stdout?.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  const tail: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  let partial = "";
  proc.stderr!.setEncoding("utf8");
  proc.stderr!.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      tail.push(line);
      if (tail.length > STDERR_TAIL_LINES) tail.shift();
      for (const fn of listeners) fn(line);
    }
  });
  return {
    proc,
    pid: proc.pid ?? -1,
    exited,
    exitedWith: () => exitText,
    stderrTail: () => [...tail, partial].join("\n").trim(),
    onLine: (fn) => void listeners.push(fn),
    stdoutText: () => stdout,
    closed,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (exitText !== undefined) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resolve with the first match of `re` in the child's stderr; reject on exit or timeout. */
export function waitForLine(child: Child, re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no line matching ${re} within ${READY_TIMEOUT_MS} ms; stderr:\n${child.stderrTail()}`)), READY_TIMEOUT_MS);
    child.onLine((line) => {
      const m = re.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    void child.exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${how}) before listening; stderr:\n${child.stderrTail()}`));
    });
  });
}

/** The environment for children: no *_proxy variables (the proxy would chain through them), Deno offline. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/_proxy$/i.test(k)) env[k] = v;
  return { ...env, ...OFFLINE_RUNTIME_ENV, ...extra };
}

/** Full path of an executable on PATH (plus the sbin dirs, where Debian puts nginx), or undefined. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/sbin"];
  for (const d of dirs) {
    const p = join(d, name);
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

/** A free loopback TCP port (bind to 0, read, close; for nginx, which needs a fixed port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, LOOPBACK, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// File-descriptor limits.

/** How children get enough file descriptors for `maxClients` clients plus as many upstreams. */
export interface FdPlan {
  needed: number;
  /** What was done, for the output. */
  note: string;
  /** Wrap a command so it starts with the planned limit. */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] };
}

/**
 * Wrap a command so it starts under `ulimit FLAG N` (`-Sn`: soft limit only; `-n`: soft and hard).
 * `exec` keeps the PID, so RSS sampling and signals reach the wrapped process itself.
 */
export const viaUlimit = (flag: "-Sn" | "-n", n: number) => (command: string, args: readonly string[]) => ({
  command: "/bin/sh",
  args: ["-c", `ulimit ${flag} ${n} && exec "$@"`, "sh", command, ...args],
});

/** This process's open-files limits (RLIMIT_NOFILE), soft and hard; Infinity for unlimited. */
export function openFilesLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const num = (s: string | undefined) => (s === undefined || s === "unlimited" ? Infinity : Number(s));
  return { soft: num(m?.[1]), hard: num(m?.[2]) };
}

export function fdPlan(maxClients: number): FdPlan {
  const needed = 2 * maxClients + FD_HEADROOM;
  const { soft, hard } = openFilesLimit();
  const same = (command: string, args: readonly string[]) => ({ command, args: [...args] });
  const have = `this process's open-files limit is soft ${soft} / hard ${hard} (node raises its soft limit to the hard one at startup)`;
  if (soft >= needed) return { needed, note: `${have}; children need ${needed} (2 x ${maxClients} sockets + ${FD_HEADROOM}): enough, unchanged`, wrap: same };
  if (hard >= needed) {
    return { needed, note: `${have}; raised the soft limit to ${needed} for every child with \`sh -c 'ulimit -Sn ${needed}; exec …'\``, wrap: viaUlimit("-Sn", needed) };
  }
  if (process.getuid?.() === 0) {
    return { needed, note: `${have}; running as root: raised soft and hard limits to ${needed} for every child with \`sh -c 'ulimit -n ${needed}; exec …'\``, wrap: viaUlimit("-n", needed) };
  }
  return {
    needed,
    note: `${have}; children need ${needed} but the hard limit is lower: raised the soft limit to ${hard}; expect EMFILE errors at ${maxClients} clients`,
    wrap: viaUlimit("-Sn", hard),
  };
}

// ---------------------------------------------------------------------------------------------
// Origins.

/** A running origin serving `/small`. */
export interface Origin {
  kind: string;
  port: number;
  stop(): Promise<void>;
}

/** The kernel's cap on listen backlogs (net.core.somaxconn); the origins ask for all of it. */
export function somaxconn(): number {
  return Number(safeRead("/proc/sys/net/core/somaxconn").trim()) || 4096;
}

/** nginx config text: loopback, `backlog` = somaxconn, `worker_connections` for every socket. */
function nginxConfig(dir: string, port: number, connections: number, backlog: number, extraServer = ""): string {
  const v = spawnSync(findTool("nginx")!, ["-V"], { encoding: "utf8" });
  const built = `${v.stdout}${v.stderr}`;
  // Temp paths default to /var/lib/nginx; point them into our dir (only for modules built in).
  const temps = ["client_body", ...["proxy", "fastcgi", "uwsgi", "scgi"].filter((m) => !built.includes(`--without-http_${m}_module`))]
    .map((m) => `  ${m}_temp_path ${join(dir, `tmp-${m}`)};`)
    .join("\n");
  return `daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile ${connections};
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events {
  worker_connections ${connections};
  multi_accept on;
}
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  default_type application/octet-stream;
${temps}
  server {
    listen ${LOOPBACK}:${port} backlog=${backlog};
    root ${join(dir, "www")};
    location / { }
${extraServer}  }
}
`;
}

/** Options of {@link startNginx} for other sections (the load section uses none). */
export interface NginxOptions {
  /** Extra directives inside the `server` block (more locations), given the nginx dir. */
  extraServer?(dir: string): string;
  /** Called with the `www` root dir after `/small` is written (to add files). */
  prepare?(wwwDir: string): void;
  /** Picks the port to try (default: a free port chosen by the kernel). */
  port?(): Promise<number>;
  /** Overrides the description in `kind`. */
  describe?(base: string): string;
}

/** Start nginx on a free loopback port (retried if another process takes the port first). */
export async function startNginx(fd: FdPlan, opts: NginxOptions = {}): Promise<Origin> {
  const dir = makeTempDir("cnp-load-nginx-");
  // Workers may run as another user (nobody) when started as root: everything must be readable.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, "www"), { mode: 0o755 });
  writeFileSync(join(dir, "www", "small"), Buffer.alloc(SMALL_BYTES, "x"), { mode: 0o644 });
  opts.prepare?.(join(dir, "www"));
  const backlog = somaxconn();
  let lastError = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await (opts.port ?? freePort)();
    writeFileSync(join(dir, "nginx.conf"), nginxConfig(dir, port, fd.needed, backlog, opts.extraServer?.(dir) ?? ""));
    const cmd = fd.wrap(findTool("nginx")!, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")]);
    const child = startChild(cmd.command, cmd.args, childEnv(), { gentle: true });
    const kind = `${nginxVersion()} (worker_connections ${fd.needed}, backlog ${backlog}, access_log off, ${SMALL_BYTES}-byte /small)`;
    const origin: Origin = {
      kind: opts.describe ? opts.describe(kind) : kind,
      port,
      async stop() {
        await child.stop("SIGTERM");
        removeTempDir(dir);
      },
    };
    try {
      // A 200 from a still-running nginx (not from some other server that took the port meanwhile).
      if ((await httpGet(port, `/small`, { tries: 50 })) && child.exitedWith() === undefined) return origin;
    } catch (e) {
      lastError = `${(e as Error).message}\n${child.stderrTail()}\n${safeRead(join(dir, "error.log"))}`;
    }
    await child.stop("SIGTERM");
  }
  removeTempDir(dir);
  throw new Error(`nginx did not start: ${lastError}`);
}

/** The fallback origin: a Node HTTP server in its own process serving the same `/small`. */
async function startNodeOrigin(fd: FdPlan): Promise<Origin> {
  const code = `
    const http = require("node:http");
    const body = Buffer.alloc(${SMALL_BYTES}, "x");
    const server = http.createServer((req, res) => {
      if (req.url === "/small") { res.writeHead(200, { "content-length": body.length }); res.end(body); }
      else { res.writeHead(404, { "content-length": 0 }); res.end(); }
    });
    server.keepAliveTimeout = 120000;
    server.headersTimeout = 125000;
    server.maxRequestsPerSocket = 0;
    server.listen({ host: "${LOOPBACK}", port: 0, backlog: ${somaxconn()} }, () => {
      console.error("origin listening on ${LOOPBACK}:" + server.address().port);
    });
    process.on("SIGTERM", () => process.exit(0));
  `;
  const cmd = fd.wrap(process.execPath, ["-e", code]);
  const child = startChild(cmd.command, cmd.args, childEnv());
  try {
    const m = await waitForLine(child, /origin listening on 127\.0\.0\.1:(\d+)/, "node origin");
    return { kind: `built-in node origin (node ${process.version}, single process)`, port: Number(m[1]), stop: () => child.stop() };
  } catch (e) {
    await child.stop("SIGKILL");
    throw e;
  }
}

/** GET `path` from 127.0.0.1:`port` (absolute-form to `absoluteTo` when given); true on a 200. */
export async function httpGet(port: number, path: string, opts: { tries?: number; hostHeader?: string } = {}): Promise<boolean> {
  let last: unknown;
  for (let i = 0; i < (opts.tries ?? 1); i++) {
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: LOOPBACK, port, path, agent: false, headers: opts.hostHeader ? { host: opts.hostHeader } : {} }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.setTimeout(5_000, () => req.destroy(new Error("timeout")));
        req.end();
      });
      if (status === 200) return true;
      throw new Error(`status ${status}: ${body.slice(0, 200)}`);
    } catch (e) {
      last = e;
      await sleep(100);
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}

export function safeRead(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------
// Proxies.

/** A running standalone proxy. */
interface Proxy {
  runtime: Runtime;
  port: number;
  pid: number;
  child: Child;
  stop(): Promise<void>;
}

/** The built standalone entry point for Node (from `npm run build`), relative to the sources. */
export const NODE_DIST_MAIN = "dist/lib/runtimes/node/main.js";

/**
 * Command line of the standalone proxy under `runtime` (the same as the e2e suite's). With
 * `{ built: true }` Node runs the built JavaScript ({@link NODE_DIST_MAIN}, as `npm start` does)
 * instead of the TypeScript through tsx; Bun and Deno always run the TypeScript.
 */
export function proxyCommand(runtime: Runtime, configPath: string, opts: { built?: boolean } = {}): { command: string; args: string[] } | string {
  switch (runtime) {
    case "node":
      if (opts.built) {
        const main = join(PROXY_ROOT, NODE_DIST_MAIN);
        if (!existsSync(main)) return `${NODE_DIST_MAIN} does not exist (run npm run build)`;
        return { command: process.execPath, args: [main, "--config", configPath] };
      }
      return { command: process.execPath, args: ["--import", "tsx", join(PROXY_ROOT, "src/runtimes/node/main.ts"), "--config", configPath] };
    case "bun": {
      const bun = join(ROOT, "node_modules/.bin/bun");
      if (!existsSync(bun)) return "node_modules/.bin/bun is missing (run npm ci)";
      return { command: bun, args: [join(PROXY_ROOT, "src/runtimes/bun/main.ts"), "--config", configPath] };
    }
    case "deno": {
      const deno = join(ROOT, "node_modules/.bin/deno");
      if (!existsSync(deno)) return "node_modules/.bin/deno is missing (run npm ci)";
      return { command: deno, args: ["run", "-A", "--quiet", join(PROXY_ROOT, "src/runtimes/deno/main.ts"), "--config", configPath] };
    }
  }
}

/** Proxy config: loopback listener on port 0, the loopback origin explicitly allowed. */
export const PROXY_CONFIG = `[network]
enabled = true
proxy_url = "http://${LOOPBACK}:0"
admin_url = "${LOOPBACK}:0"
allowed_domains = ["${LOOPBACK}"]
`;

/** Start the proxy under `runtime`, read its port from stderr, check one request through it. */
async function startProxy(runtime: Runtime, originPort: number, fd: FdPlan): Promise<Proxy> {
  const dir = makeTempDir("cnp-load-proxy-");
  const configPath = join(dir, "config.toml");
  writeFileSync(configPath, PROXY_CONFIG);
  const cmd = existsSync(join(PROXY_ROOT, "src/runtimes", runtime, "main.ts")) ? proxyCommand(runtime, configPath) : `no src/runtimes/${runtime}/main.ts under ${PROXY_ROOT}`;
  if (typeof cmd === "string") {
    removeTempDir(dir);
    throw new Error(cmd);
  }
  const wrapped = fd.wrap(cmd.command, cmd.args);
  const child = startChild(wrapped.command, wrapped.args, childEnv({ RUST_LOG: PROXY_RUST_LOG }), { cwd: PROXY_ROOT });
  const stop = async () => {
    await child.stop();
    removeTempDir(dir);
  };
  try {
    const m = await waitForLine(child, /HTTP proxy listening on 127\.0\.0\.1:(\d+)/, `proxy under ${runtime}`);
    const port = Number(m[1]);
    await httpGet(port, `http://${LOOPBACK}:${originPort}/small`, { hostHeader: `${LOOPBACK}:${originPort}` });
    return { runtime, port, pid: child.pid, child, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements.

/** VmRSS of `pid` in KiB (NaN when the process is gone). */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Open file descriptors of `pid` (NaN when the process is gone). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/**
 * Sample VmRSS and the open-fd count of `pid` every {@link RSS_SAMPLE_INTERVAL_MS}; `stop()`
 * returns the peaks (RSS in KiB).
 */
export function sampleProcess(pid: number): { stop(): { rssKiB: number; fds: number } } {
  let rss = NaN;
  let fds = NaN;
  const sample = () => {
    const r = rssKiB(pid);
    const f = fdCount(pid);
    if (!Number.isNaN(r)) rss = Number.isNaN(rss) ? r : Math.max(rss, r);
    if (!Number.isNaN(f)) fds = Number.isNaN(fds) ? f : Math.max(fds, f);
  };
  sample();
  const timer = setInterval(sample, RSS_SAMPLE_INTERVAL_MS);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { rssKiB: rss, fds };
    },
  };
}

/** Peak accept-queue length seen on one listening socket, and its backlog (from `ss -ltn`). */
export interface QueuePeak {
  peak: number;
  backlog: number;
}

/**
 * Sample the accept queues of the loopback listeners on `ports` every
 * {@link RSS_SAMPLE_INTERVAL_MS} with `ss -ltnH` (Recv-Q of a LISTEN socket is its accept-queue
 * length, Send-Q its backlog); `stop()` returns the peak per port. Undefined when ss is missing.
 */
export function sampleAcceptQueues(ss: string | undefined, ports: readonly number[]): { stop(): Promise<Map<number, QueuePeak>> } | undefined {
  if (!ss) return undefined;
  const peaks = new Map<number, QueuePeak>();
  const filter = `( ${ports.map((p) => `sport = :${p}`).join(" or ")} )`;
  let busy: Promise<void> | undefined;
  const sample = () => {
    if (busy) return;
    busy = new Promise<void>((resolve) => {
      execFile(ss, ["-ltnH", filter], { timeout: 5_000 }, (_err, stdout) => {
        for (const line of (stdout ?? "").split("\n")) {
          const m = /^LISTEN\s+(\d+)\s+(\d+)\s+\S+:(\d+)\s/.exec(line);
          if (!m) continue;
          const port = Number(m[3]);
          const prev = peaks.get(port);
          peaks.set(port, { peak: Math.max(prev?.peak ?? 0, Number(m[1])), backlog: Number(m[2]) });
        }
        busy = undefined;
        resolve();
      });
    });
  };
  sample();
  const timer = setInterval(sample, RSS_SAMPLE_INTERVAL_MS);
  return {
    async stop() {
      clearInterval(timer);
      await busy;
      return peaks;
    },
  };
}

/** The kernel's TcpExt ListenOverflows and ListenDrops (this network namespace, all sockets). */
export function listenCounters(): { overflows: number; drops: number } {
  const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i]!.startsWith("TcpExt:")) continue;
    const names = lines[i]!.trim().split(/\s+/);
    const values = lines[i + 1]!.trim().split(/\s+/);
    const get = (n: string) => Number(values[names.indexOf(n)] ?? NaN);
    return { overflows: get("ListenOverflows"), drops: get("ListenDrops") };
  }
  return { overflows: NaN, drops: NaN };
}

/** A wrk duration ("812.00us", "1.23ms", "2.01s", "1.50m") in milliseconds. */
function wrkTimeMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!m) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "us" | "ms" | "s" | "m" | "h"];
  return Number(m[1]) * scale;
}

/** Parse wrk's output (run with `--latency`). */
export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: num(/(\d+) requests in /),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    connect: Number(sock?.[1] ?? 0),
    read: Number(sock?.[2] ?? 0),
    write: Number(sock?.[3] ?? 0),
    timeout: Number(sock?.[4] ?? 0),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    p50Ms: wrkTimeMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ""),
    p99Ms: wrkTimeMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ""),
  };
}

/**
 * Run wrk with `clients` connections at 127.0.0.1:`port`. With `viaProxyTo` set, `port` is the
 * proxy's and a Lua script makes every request absolute-form (`GET http://127.0.0.1:ORIGIN/small`)
 * with the origin as `Host`.
 */
async function runWrk(wrk: string, port: number, clients: number, durationS: number, fd: FdPlan, viaProxyTo?: number): Promise<{ out: string; result: WrkResult }> {
  const dir = makeTempDir("cnp-load-wrk-");
  const args = ["-t", String(WRK_THREADS), "-c", String(clients), "-d", `${durationS}s`, "--latency", "--timeout", `${WRK_TIMEOUT_S}s`];
  if (viaProxyTo !== undefined) {
    const script = join(dir, "absolute-form.lua");
    writeFileSync(script, `wrk.path = "http://${LOOPBACK}:${viaProxyTo}/small"\nwrk.headers["Host"] = "${LOOPBACK}:${viaProxyTo}"\n`);
    args.push("-s", script, `http://${LOOPBACK}:${port}/`);
  } else {
    args.push(`http://${LOOPBACK}:${port}/small`);
  }
  const cmd = fd.wrap(wrk, args);
  try {
    const proc = spawn(cmd.command, cmd.args, { env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
    live.add(proc);
    let out = "";
    proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    proc.stderr!.setEncoding("utf8").on("data", (c: string) => (out += c));
    const timer = setTimeout(() => proc.kill("SIGKILL"), durationS * 1000 + WRK_GRACE_MS);
    const how = await new Promise<string>((resolve) => {
      proc.once("exit", (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
      proc.once("error", (e) => resolve(`spawn error: ${e.message}`));
    });
    clearTimeout(timer);
    live.delete(proc);
    if (!/Requests\/sec/.test(out)) throw new Error(`wrk failed (${how}):\n${out.trim()}`);
    return { out, result: parseWrk(out) };
  } finally {
    removeTempDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

export const mib = (kib: number | undefined) => (kib === undefined || Number.isNaN(kib) ? "–" : `${(kib / 1024).toFixed(0)} MiB`);
const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "–" : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);
const queue = (q: QueuePeak | undefined) => (q ? `${q.peak}/${q.backlog}` : "–");
/** Peak fds, with the clients that implies (one client and one upstream socket each). */
const fds = (r: LoadRow) => (r.peakFds === undefined || Number.isNaN(r.peakFds) ? "–" : `${r.peakFds} (≈${Math.round((r.peakFds - (r.idleFds ?? 0)) / 2)} clients)`);
const int = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "–" : String(v));

/** Columns of the markdown table, in order. */
const TABLE_COLUMNS = ["target", "clients", "req/s", "connect err", "read err", "write err", "timeout", "non-2xx", "p50", "p99", "idle RSS", "peak RSS", `RSS +${RSS_SETTLE_MS / 1000} s`, "peak fds", "proxy accept queue", "origin accept queue", "listen overflows", "listen drops"];
/** The markdown table header (two lines). */
export const TABLE_HEADER = [`| ${TABLE_COLUMNS.join(" | ")} |`, `|---|${"---:|".repeat(TABLE_COLUMNS.length - 1)}`];

/** One markdown table row. */
export function tableRow(r: LoadRow): string {
  if (!r.wrk) return `| ${r.target} | ${r.clients} | skipped: ${(r.skipped ?? "").split("\n")[0]!.replaceAll("|", "\\|")} |${"|".repeat(TABLE_COLUMNS.length - 3)}`;
  const w = r.wrk;
  const after = r.proxyExit ? `exited (${r.proxyExit})` : mib(r.afterRssKiB);
  return `| ${r.target} | ${r.clients} | ${w.rps.toFixed(0)} | ${w.connect} | ${w.read} | ${w.write} | ${w.timeout} | ${w.non2xx} | ${ms(w.p50Ms)} | ${ms(w.p99Ms)} | ${mib(r.idleRssKiB)} | ${mib(r.peakRssKiB)} | ${after} | ${fds(r)} | ${queue(r.proxyQueue)} | ${queue(r.originQueue)} | ${int(r.listenOverflows)} | ${int(r.listenDrops)} |`;
}

export function versionOf(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: "utf8", env: childEnv(), timeout: 30_000 });
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n")[0]!.trim() || "unknown";
}

export function nginxVersion(): string {
  const nginx = findTool("nginx");
  return nginx ? versionOf(nginx, ["-v"]).replace(/^nginx version: /, "") : "nginx not installed";
}

/** Which proxy sources are measured: the commit and how many files under src/ differ from it. */
export function treeInfo(): string {
  if (PROXY_ROOT !== ROOT) return `proxy sources from BENCH_LOAD_PROXY_ROOT=${PROXY_ROOT}${existsSync(join(PROXY_ROOT, ".git")) ? "" : " (not a git checkout)"}`;
  const git = (...args: string[]) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
  const head = git("log", "-1", "--format=%h %cs");
  if (!head) return "proxy sources: this repository (git not available)";
  const changed = git("status", "--porcelain", "--", "src").split("\n").filter(Boolean).length;
  return `proxy sources: this repository at commit ${head}${changed ? ` with ${changed} uncommitted change(s) under src/` : " (src/ clean)"}`;
}

/** Machine and tool versions, as markdown bullet lines. */
export function machineInfo(): string[] {
  const cpu = cpus()[0]?.model ?? "unknown";
  const wrk = findTool("wrk");
  return [
    `- nproc: ${cpus().length} (${cpu})`,
    `- memory: ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- kernel: Linux ${release()}; net.core.somaxconn ${safeRead("/proc/sys/net/core/somaxconn").trim()}, tcp_max_syn_backlog ${safeRead("/proc/sys/net/ipv4/tcp_max_syn_backlog").trim()}, tcp_syncookies ${safeRead("/proc/sys/net/ipv4/tcp_syncookies").trim()}`,
    `- node ${process.version}; bun ${existsSync(join(ROOT, "node_modules/.bin/bun")) ? versionOf(join(ROOT, "node_modules/.bin/bun"), ["--version"]) : "missing"}; ${existsSync(join(ROOT, "node_modules/.bin/deno")) ? versionOf(join(ROOT, "node_modules/.bin/deno"), ["--version"]) : "deno missing"}`,
    `- ${nginxVersion()}; ${wrk ? versionOf(wrk, ["-v"]).replace(/\s+Copyright.*$/, "") : "wrk not installed"}`,
  ];
}

function envList(name: string): string[] | undefined {
  const v = process.env[name];
  return v ? v.split(",").map((s) => s.trim()).filter(Boolean) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The load check.

/** Run one row: wrk at the origin or through `proxy`, with RSS, fd, accept-queue and listen-counter sampling. */
async function measure(row: LoadRow, tools: { wrk: string; ss: string | undefined }, originPort: number, durationS: number, fd: FdPlan, proxy?: Proxy): Promise<void> {
  const during = new Map<string, number>();
  const after = new Map<string, number>();
  let wrkDone = false;
  proxy?.child.onLine((line) => {
    const m = /upstream \S+ failed: (.*)$/.exec(line);
    if (!m) return;
    const why = m[1]!.slice(0, 120);
    const into = wrkDone ? after : during;
    into.set(why, (into.get(why) ?? 0) + 1);
  });
  if (proxy) {
    row.idleRssKiB = rssKiB(proxy.pid);
    row.idleFds = fdCount(proxy.pid);
  }
  const before = listenCounters();
  const sampler = proxy ? sampleProcess(proxy.pid) : undefined;
  const queues = sampleAcceptQueues(tools.ss, proxy ? [proxy.port, originPort] : [originPort]);
  try {
    const { result } = proxy ? await runWrk(tools.wrk, proxy.port, row.clients, durationS, fd, originPort) : await runWrk(tools.wrk, originPort, row.clients, durationS, fd);
    row.wrk = result;
  } finally {
    wrkDone = true;
    const peaks = sampler?.stop();
    row.peakRssKiB = peaks?.rssKiB;
    row.peakFds = peaks?.fds;
    const counters = listenCounters();
    row.listenOverflows = counters.overflows - before.overflows;
    row.listenDrops = counters.drops - before.drops;
    const q = await queues?.stop();
    row.originQueue = q?.get(originPort);
    if (proxy) row.proxyQueue = q?.get(proxy.port);
  }
  if (proxy) {
    await sleep(RSS_SETTLE_MS);
    row.afterRssKiB = rssKiB(proxy.pid);
    row.proxyExit = proxy.child.exitedWith();
    row.upstreamFailures = during;
    row.upstreamFailuresAfter = after;
  }
}

function printRowDetail(r: LoadRow): void {
  if (!r.wrk) {
    console.log(`  ${r.target} x${r.clients}: skipped: ${r.skipped}`);
    return;
  }
  const w = r.wrk;
  console.log(
    `  ${r.target} x${r.clients}: ${w.requests} requests, ${w.rps.toFixed(0)} req/s; errors connect ${w.connect} read ${w.read} write ${w.write} timeout ${w.timeout} non-2xx ${w.non2xx}; ` +
      `p50 ${ms(w.p50Ms)} p99 ${ms(w.p99Ms)}; listen overflows +${r.listenOverflows} drops +${r.listenDrops}; ` +
      `peak accept queue: origin ${queue(r.originQueue)}${r.target === "direct" ? "" : `, proxy ${queue(r.proxyQueue)}`}` +
      (r.target === "direct" ? "" : `; RSS idle ${mib(r.idleRssKiB)} peak ${mib(r.peakRssKiB)} +${RSS_SETTLE_MS / 1000}s ${mib(r.afterRssKiB)}; peak fds ${fds(r)}`),
  );
  if (r.proxyExit) console.log(`    the proxy EXITED during or after the load: ${r.proxyExit}`);
  const failures = (what: string, m: Map<string, number> | undefined) => {
    if (!m || m.size === 0) return;
    const total = [...m.values()].reduce((a, b) => a + b, 0);
    const top = [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP_FAILURE_REASONS);
    console.log(`    proxy logged ${total} upstream failures ${what}: ${top.map(([why, n]) => `${n}x "${why}"`).join(", ")}`);
  };
  failures("before wrk exited (each answered 502; wrk counts it as non-2xx only if it read it before stopping)", r.upstreamFailures);
  failures("after wrk had stopped (dials aborted as the clients left; no client saw them)", r.upstreamFailuresAfter);
}

/** Set in the environment of the bench re-run inside its own network namespace. */
const IN_NETNS_ENV = "CNP_LOAD_IN_NETNS";

/**
 * Whether the load check can run in a network namespace of its own (`unshare --net`, root only,
 * loopback only): then the kernel's listen counters count this bench alone, not other work on the
 * machine, and no port can clash with it. BENCH_LOAD_NETNS=0 turns it off.
 */
function netnsPlan(): { use: boolean; why: string } {
  if (process.env[IN_NETNS_ENV] === "1") return { use: false, why: "own network namespace (unshare --net; loopback only): the listen counters count this bench alone" };
  if (process.env.BENCH_LOAD_NETNS === "0") return { use: false, why: "host network namespace (BENCH_LOAD_NETNS=0): the listen counters are host-wide and include other processes" };
  if (process.getuid?.() !== 0) return { use: false, why: "host network namespace (not root, so no unshare --net): the listen counters are host-wide and include other processes" };
  if (!findTool("unshare") || !findTool("ip")) return { use: false, why: "host network namespace (unshare or ip missing): the listen counters are host-wide and include other processes" };
  return { use: true, why: "" };
}

/** Re-run this file in a new network namespace with only loopback up; resolves when it ends. */
async function runInOwnNetns(opts: LoadOptions): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, [IN_NETNS_ENV]: "1" };
  if (opts.clientCounts) env.BENCH_LOAD_CLIENTS = opts.clientCounts.join(",");
  if (opts.durationS !== undefined) env.BENCH_LOAD_DURATION_S = String(opts.durationS);
  if (opts.runtimes) env.BENCH_LOAD_RUNTIMES = opts.runtimes.join(",");
  if (opts.origin) env.BENCH_LOAD_ORIGIN = opts.origin;
  const args = ["--net", "--", "/bin/sh", "-c", 'ip link set lo up && exec "$@"', "sh", process.execPath, "--import", "tsx", fileURLToPath(import.meta.url)];
  const proc = spawn(findTool("unshare")!, args, { cwd: ROOT, env, stdio: "inherit" });
  live.add(proc);
  stopGently.add(proc);
  const how = await new Promise<string>((resolve) => {
    proc.once("exit", (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
    proc.once("error", (e) => resolve(`spawn error: ${e.message}`));
  });
  live.delete(proc);
  if (how !== "code 0") console.log(`load check in its own network namespace ended with ${how}`);
}

/**
 * The burst-load section of `npm run bench`: prints its results (ending with markdown table rows).
 * As root it re-runs itself in a network namespace of its own (see {@link netnsPlan}).
 */
export async function runLoadBench(opts: LoadOptions = {}): Promise<void> {
  installSignalHandlers();
  const ns = netnsPlan();
  if (ns.use) return runInOwnNetns(opts);
  await measureAll(opts, ns.why);
}

/** Every row of the load check, in this process's network namespace; returns the rows. */
async function measureAll(opts: LoadOptions, netnsNote: string): Promise<LoadRow[]> {
  const started = performance.now();
  const clientCounts = opts.clientCounts ?? envList("BENCH_LOAD_CLIENTS")?.map(Number) ?? [...DEFAULT_CLIENT_COUNTS];
  const durationS = opts.durationS ?? Number(process.env.BENCH_LOAD_DURATION_S ?? DEFAULT_DURATION_S);
  const asked = opts.runtimes ?? envList("BENCH_LOAD_RUNTIMES") ?? [...RUNTIMES];
  const runtimes = asked.filter((r): r is Runtime => (RUNTIMES as readonly string[]).includes(r));
  if (runtimes.length < asked.length) console.log(`ignoring unknown runtime(s) ${asked.filter((r) => !runtimes.includes(r as Runtime)).join(", ")}; known: ${RUNTIMES.join(", ")}`);
  const fd = fdPlan(Math.max(...clientCounts));
  const wrk = findTool("wrk");
  const nginx = findTool("nginx");
  const ss = findTool("ss");
  const wantOrigin = opts.origin ?? (process.env.BENCH_LOAD_ORIGIN as "nginx" | "node" | undefined) ?? "nginx";

  console.log(`\n## burst load: ${clientCounts.join(" and ")} concurrent keep-alive clients, ${durationS} s each, direct and through the proxy on ${runtimes.join(", ")}`);
  for (const line of machineInfo()) console.log(line);
  console.log(`- load average at start: ${safeRead("/proc/loadavg").split(" ").slice(0, 3).join(" ")} (other work on the machine skews the figures)`);
  console.log(`- file descriptors: ${fd.note}`);
  console.log(`- network: ${netnsNote}`);
  console.log(`- ${treeInfo()}`);
  if (!ss) console.log("- ss (iproute2) is not installed: the accept-queue columns are skipped");
  const rows: LoadRow[] = [];
  const targets: ("direct" | Runtime)[] = ["direct", ...runtimes];
  const skipAll = (why: string): LoadRow[] => {
    console.log(`- SKIPPED the whole load check: ${why}`);
    for (const target of targets) for (const clients of clientCounts) rows.push({ target, clients, skipped: why });
    printTable(rows, started);
    return rows;
  };
  if (!wrk) return skipAll("wrk is not installed (apt-get install wrk)");

  let origin: Origin | undefined;
  const proxies = new Set<Proxy>();
  try {
    try {
      if (wantOrigin === "nginx" && nginx) origin = await startNginx(fd);
      else {
        if (wantOrigin === "nginx") console.log("- nginx is NOT installed: falling back to the built-in node origin (figures are not comparable with an nginx origin)");
        origin = await startNodeOrigin(fd);
      }
    } catch (e) {
      return skipAll(`the origin did not start: ${(e as Error).message}`);
    }
    console.log(`- origin: ${origin.kind} on ${LOOPBACK}:${origin.port}`);
    console.log(`- client: wrk -t ${WRK_THREADS} -c N -d ${durationS}s --latency --timeout ${WRK_TIMEOUT_S}s; through the proxy with a Lua script setting wrk.path = "http://${LOOPBACK}:${origin.port}/small" (absolute-form)`);
    console.log(`- per row: a fresh proxy; RSS sampled every ${RSS_SAMPLE_INTERVAL_MS} ms during the load, read again ${RSS_SETTLE_MS / 1000} s after; accept queues (peak length/backlog) sampled as often with ss -ltn; TcpExt listen counters from /proc/net/netstat (they include the origin's listen queue)\n`);

    for (const target of targets) {
      for (const clients of clientCounts) {
        const row: LoadRow = { target, clients };
        rows.push(row);
        let proxy: Proxy | undefined;
        try {
          if (target !== "direct") {
            proxy = await startProxy(target, origin.port, fd);
            proxies.add(proxy);
          }
          await measure(row, { wrk, ss }, origin.port, durationS, fd, proxy);
        } catch (e) {
          row.skipped = (e as Error).message;
          row.wrk = undefined;
        } finally {
          if (proxy) {
            await proxy.stop();
            proxies.delete(proxy);
          }
        }
        printRowDetail(row);
        await sleep(COOLDOWN_MS);
      }
    }
  } finally {
    for (const p of proxies) await p.stop();
    await origin?.stop();
  }

  printTable(rows, started);
  return rows;
}

/** The closing markdown table (for BENCHMARKS.md), the load average and the elapsed time. */
function printTable(rows: readonly LoadRow[], started: number): void {
  console.log(`\nmarkdown table rows (for BENCHMARKS.md):\n`);
  for (const line of TABLE_HEADER) console.log(line);
  for (const r of rows) console.log(tableRow(r));
  console.log(`\nload average at the end: ${safeRead("/proc/loadavg").split(" ").slice(0, 3).join(" ")}`);
  console.log(`load check took ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

// Run alone: `npx tsx bench/load.ts`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runLoadBench();
}
