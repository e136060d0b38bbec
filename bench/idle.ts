/**
 * Idle-tunnel memory (issue 10: "10,000 idle tunnels under 300 MB RSS on every runtime"): how
 * much resident memory the standalone proxy holds per idle CONNECT tunnel under Node, Bun and
 * Deno (and Node running the built JavaScript in `dist/`, when it has been built), and whether
 * 10,000 of them fit in 300 MB.
 *
 * Per runtime: a fresh proxy; a silent loopback TCP sink in this process (accepts, never writes)
 * is the tunnels' far end. The proxy's VmRSS is read idle, after a warm-up of
 * {@link WARMUP_TUNNELS} tunnels and with all the tunnels open (each after {@link SETTLE_MS});
 * the cost per tunnel is the growth over the tunnels opened after the warm-up, and the RSS at
 * exactly {@link TARGET_TUNNELS} tunnels is extrapolated from it (idle + per tunnel × 10,000),
 * since the descriptor limits may not allow that many. Then every tunnel is closed and the RSS
 * read again {@link AFTER_CLOSE_MS} later (does the runtime give the memory back?).
 *
 * Each tunnel costs the proxy two descriptors (client and upstream socket) and this process two
 * (client socket and the sink's accepted socket): the tunnel count is the largest both soft
 * limits allow with {@link FD_HEADROOM} to spare, up to {@link TARGET_TUNNELS}; the proxies get
 * their soft limit raised to the hard one.
 *
 * It asserts nothing: it prints what it measured, ending with a markdown table for BENCHMARKS.md.
 * Run alone: `npm run bench -- idle` or `npx tsx bench/idle.ts`; `npm run bench` runs it after
 * the load section. Every address is loopback; every process and socket opened here is closed at
 * the end, also on failure (and on SIGINT/SIGTERM, through bench/load.ts's handlers).
 */
import { existsSync, statSync, readdirSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  childEnv,
  type Child,
  fdCount,
  FD_HEADROOM,
  installSignalHandlers,
  LOOPBACK,
  machineInfo,
  makeTempDir,
  mib,
  NODE_DIST_MAIN,
  openFilesLimit,
  PROXY_CONFIG,
  PROXY_ROOT,
  proxyCommand,
  removeTempDir,
  rssKiB,
  RUNTIMES,
  type Runtime,
  safeRead,
  sleep,
  startChild,
  treeInfo,
  viaUlimit,
  waitForLine,
} from "./load.ts";

/** The tunnel count of the issue's goal, and the most this bench opens. */
export const TARGET_TUNNELS = 10_000;
/** Tunnels opened before the per-tunnel measurement starts (warms code paths and allocators). */
export const WARMUP_TUNNELS = 200;
/** Tunnels being opened at once. */
const OPEN_CONCURRENCY = 200;
/** How long one tunnel may take to be answered `HTTP/1.1 200` before the run fails. */
const TUNNEL_TIMEOUT_MS = 30_000;
/** Pause before each RSS reading while tunnels are idle (lets allocations and GC settle). */
export const SETTLE_MS = 2_000;
/** When the RSS is read again after all tunnels are closed, in ms after closing them. */
const AFTER_CLOSE_MS = [5_000, 30_000] as const;
/** The issue's budget, "300 MB", read as 300,000,000 bytes (≈286 MiB), the stricter reading. */
const RSS_BUDGET_KIB = 300e6 / 1024;
/**
 * Log filter for the proxies: info keeps the `HTTP proxy listening on …` line this bench waits
 * for; http_proxy at warn drops the line per CONNECT, which would only slow the run down.
 */
const IDLE_RUST_LOG = "info,codex_network_proxy::http_proxy=warn";
/** The built standalone entry point for Node (from `npm run build`), relative to the sources. */
const DIST_MAIN = NODE_DIST_MAIN;

/** What a proxy runs on: a runtime on the TypeScript sources, or Node on the built JavaScript. */
export type IdleTarget = Runtime | "node (dist)";

/** What {@link measureTunnels} fills in for one proxy. */
export interface TunnelFigures {
  tunnels?: number;
  idleRssKiB?: number;
  /** RSS with the warm-up tunnels open. */
  warmRssKiB?: number;
  /** RSS with all the tunnels open. */
  openRssKiB?: number;
  /** The proxy's open descriptors with all the tunnels open. */
  openFds?: number;
  perTunnelKiB?: number;
  /** idle + per tunnel × {@link TARGET_TUNNELS}. */
  extrapolatedKiB?: number;
  /** RSS read at each of {@link AFTER_CLOSE_MS} after closing the tunnels. */
  afterCloseKiB?: number[];
  /** Tunnels that closed before this bench closed them (the proxy or the kernel ended them). */
  closedEarly?: number;
  /** Set when the proxy was gone by the end of its run. */
  proxyExit?: string;
}

/** One row of the table. */
export interface IdleRow extends TunnelFigures {
  target: IdleTarget;
  /** Why the row has no figures: "skipped: …" (dist not built) or "failed: …" (start failure, a tunnel refused, …). */
  notRun?: string;
}

// ---------------------------------------------------------------------------------------------
// The sink and the tunnels.

/** The tunnels' far end: accepts and never writes; keeps its connections until `closeAll`. */
export interface Sink {
  port: number;
  closeAll(): void;
  close(): Promise<void>;
}

export function startSink(): Promise<Sink> {
  const conns = new Set<Socket>();
  const server: Server = createServer((s) => {
    conns.add(s);
    s.on("error", () => {});
    s.on("close", () => conns.delete(s));
  });
  const closeAll = () => {
    for (const s of conns) s.destroy();
    conns.clear();
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: LOOPBACK, port: 0, backlog: 1024 }, () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        closeAll,
        close: () => {
          closeAll();
          return new Promise<void>((r) => server.close(() => r()));
        },
      }),
    );
  });
}

/** The client ends of the open tunnels, and how many closed before `closeAll`. */
export class Tunnels {
  readonly sockets = new Set<Socket>();
  closedEarly = 0;
  private closing = false;

  /** Open one CONNECT tunnel through the proxy to the sink and leave it idle. */
  open(proxyPort: number, sinkPort: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closing) return reject(new Error("tunnels already closed"));
      const s = connect({ port: proxyPort, host: LOOPBACK });
      this.sockets.add(s);
      let head = "";
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        reject(e);
      };
      const timer = setTimeout(() => fail(new Error(`no answer to CONNECT within ${TUNNEL_TIMEOUT_MS} ms`)), TUNNEL_TIMEOUT_MS);
      s.on("error", (e) => fail(e));
      s.on("close", () => {
        this.sockets.delete(s);
        if (settled && !this.closing) this.closedEarly++;
        fail(new Error("tunnel closed before the 200"));
      });
      s.on("connect", () => s.write(`CONNECT ${LOOPBACK}:${sinkPort} HTTP/1.1\r\nHost: ${LOOPBACK}:${sinkPort}\r\n\r\n`));
      const onData = (d: Buffer): void => {
        head += d.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        s.off("data", onData);
        // HTTP/1.0 too: tinyproxy (bench/compare.ts) answers CONNECT that way.
        if (!/^HTTP\/1\.[01] 200/.test(head)) return fail(new Error(`CONNECT answered ${JSON.stringify(head.split("\r\n")[0])}`));
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      s.on("data", onData);
    });
  }

  /** Open `n` more tunnels, {@link OPEN_CONCURRENCY} at a time; rejects on the first failure. */
  async openMany(n: number, proxyPort: number, sinkPort: number): Promise<void> {
    let left = n;
    const worker = async (): Promise<void> => {
      while (left > 0 && !this.closing) {
        left--;
        await this.open(proxyPort, sinkPort);
      }
    };
    await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, n) }, worker));
  }

  closeAll(): void {
    this.closing = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Proxies and descriptor limits.

/** How many tunnels the descriptor limits allow, and the soft limit the proxies start with. */
export interface TunnelPlan {
  tunnels: number;
  proxySoftLimit: number;
  note: string;
}

/** The tunnel plan; `cap` lowers the count below {@link TARGET_TUNNELS} (short smoke runs). */
export function tunnelPlan(cap: number = TARGET_TUNNELS): TunnelPlan {
  const { soft, hard } = openFilesLimit();
  // Children inherit the hard limit; their soft one is raised to it (capped when unlimited).
  const proxySoftLimit = Number.isFinite(hard) ? hard : 2 * TARGET_TUNNELS + FD_HEADROOM;
  const byProxy = Math.floor((proxySoftLimit - FD_HEADROOM) / 2);
  const byBench = Math.floor((soft - FD_HEADROOM) / 2);
  const tunnels = Math.max(0, Math.min(TARGET_TUNNELS, cap, byProxy, byBench));
  const note =
    `this process's open-files limit is soft ${soft} / hard ${hard}; proxies start with their soft limit raised to ${proxySoftLimit}; ` +
    `2 fds per tunnel on each side + ${FD_HEADROOM} spare: the proxy allows ${byProxy}, this process ${byBench} → ${tunnels} tunnels` +
    (tunnels < TARGET_TUNNELS ? ` (fewer than ${TARGET_TUNNELS}: the ${TARGET_TUNNELS} figure is extrapolated)` : "");
  return { tunnels, proxySoftLimit, note };
}

/** Command line of the proxy for `target`, or why it cannot run. */
function idleProxyCommand(target: IdleTarget, configPath: string): { command: string; args: string[] } | string {
  if (target !== "node (dist)") {
    if (!existsSync(join(PROXY_ROOT, "src/runtimes", target, "main.ts"))) return `no src/runtimes/${target}/main.ts under ${PROXY_ROOT}`;
    return proxyCommand(target, configPath);
  }
  return proxyCommand("node", configPath, { built: true });
}

/** A running proxy for one row. */
interface IdleProxy {
  port: number;
  pid: number;
  child: Child;
  stop(): Promise<void>;
}

async function startIdleProxy(target: IdleTarget, plan: TunnelPlan): Promise<IdleProxy> {
  const dir = makeTempDir("cnp-idle-proxy-");
  const configPath = join(dir, "config.toml");
  writeFileSync(configPath, PROXY_CONFIG);
  const cmd = idleProxyCommand(target, configPath);
  if (typeof cmd === "string") {
    removeTempDir(dir);
    throw new Error(cmd);
  }
  const wrapped = viaUlimit("-Sn", plan.proxySoftLimit)(cmd.command, cmd.args);
  const child = startChild(wrapped.command, wrapped.args, childEnv({ RUST_LOG: IDLE_RUST_LOG }), { cwd: PROXY_ROOT });
  const stop = async () => {
    await child.stop();
    removeTempDir(dir);
  };
  try {
    const m = await waitForLine(child, /HTTP proxy listening on 127\.0\.0\.1:(\d+)/, `proxy on ${target}`);
    return { port: Number(m[1]), pid: child.pid, child, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Whether `dist/` is older than some file under `src/` (then the dist row measures older code). */
export function distStale(): boolean {
  const main = join(PROXY_ROOT, DIST_MAIN);
  if (!existsSync(main)) return false;
  const built = statSync(main).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? newer(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs > built));
  return newer(join(PROXY_ROOT, "src"));
}

// ---------------------------------------------------------------------------------------------
// The measurement.

/** One row: a fresh proxy, the tunnels opened, measured, closed; the proxy stopped in any case. */
async function measure(row: IdleRow, plan: TunnelPlan, sink: Sink): Promise<void> {
  const proxy = await startIdleProxy(row.target, plan);
  try {
    await measureTunnels(row, { pid: proxy.pid, port: proxy.port, exitedWith: () => proxy.child.exitedWith() }, plan, sink);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${proxy.child.stderrTail()}`.trim());
  } finally {
    await proxy.stop();
  }
}

/**
 * The tunnel measurement on a running proxy (any HTTP proxy that answers CONNECT with 200):
 * idle RSS after {@link SETTLE_MS}, the warm-up tunnels, all the tunnels, per tunnel and the
 * extrapolation to {@link TARGET_TUNNELS}; then every tunnel is closed and the RSS read at each
 * of `afterCloseMs` (default {@link AFTER_CLOSE_MS}). The tunnels are closed in any case; the
 * proxy is left running.
 */
export async function measureTunnels(
  row: TunnelFigures,
  proxy: { pid: number; port: number; exitedWith(): string | undefined },
  plan: TunnelPlan,
  sink: Sink,
  afterCloseMs: readonly number[] = AFTER_CLOSE_MS,
): Promise<void> {
  const tunnels = new Tunnels();
  try {
    await sleep(SETTLE_MS);
    row.idleRssKiB = rssKiB(proxy.pid);
    const warmup = Math.min(WARMUP_TUNNELS, plan.tunnels);
    await tunnels.openMany(warmup, proxy.port, sink.port);
    await sleep(SETTLE_MS);
    row.warmRssKiB = rssKiB(proxy.pid);
    await tunnels.openMany(plan.tunnels - warmup, proxy.port, sink.port);
    row.tunnels = plan.tunnels;
    await sleep(SETTLE_MS);
    row.openRssKiB = rssKiB(proxy.pid);
    row.openFds = fdCount(proxy.pid);
    row.closedEarly = tunnels.closedEarly;
    if (plan.tunnels > warmup) {
      row.perTunnelKiB = (row.openRssKiB - row.warmRssKiB) / (plan.tunnels - warmup);
      row.extrapolatedKiB = row.idleRssKiB + row.perTunnelKiB * TARGET_TUNNELS;
    }
    tunnels.closeAll();
    sink.closeAll();
    const closedAt = performance.now();
    row.afterCloseKiB = [];
    for (const at of afterCloseMs) {
      await sleep(Math.max(0, at - (performance.now() - closedAt)));
      row.afterCloseKiB.push(rssKiB(proxy.pid));
    }
    row.proxyExit = proxy.exitedWith();
  } catch (e) {
    row.proxyExit = proxy.exitedWith();
    throw new Error(`${(e as Error).message} (after ${tunnels.sockets.size} tunnels opened${row.proxyExit ? `; proxy exited: ${row.proxyExit}` : ""})`);
  } finally {
    tunnels.closeAll();
    sink.closeAll();
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

/** Whether `kib` is under the issue's budget. */
const underBudget = (kib: number | undefined) => (kib === undefined || Number.isNaN(kib) ? "–" : kib < RSS_BUDGET_KIB ? "yes" : "**no**");
/** KiB as MiB and as decimal MB (the budget's unit), e.g. "290 MiB (303.9 MB)". */
const mibAndMb = (kib: number | undefined) => (kib === undefined || Number.isNaN(kib) ? "–" : `${mib(kib)} (${((kib * 1024) / 1e6).toFixed(1)} MB)`);
const kibText = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "–" : `${v.toFixed(1)} KiB`);

/** Columns of the markdown table, in order. */
const TABLE_COLUMNS = [
  "runtime",
  "tunnels",
  "idle RSS",
  `RSS with tunnels (+${SETTLE_MS / 1000} s)`,
  "per tunnel",
  `RSS at ${TARGET_TUNNELS.toLocaleString("en-US")} (extrapolated)`,
  `under 300 MB (${(RSS_BUDGET_KIB / 1024).toFixed(1)} MiB)`,
  ...AFTER_CLOSE_MS.map((ms) => `RSS ${ms / 1000} s after close`),
];

function tableRow(r: IdleRow): string {
  if (r.notRun !== undefined) return `| ${r.target} | ${r.notRun.split("\n")[0]!.replaceAll("|", "\\|")} |${"|".repeat(TABLE_COLUMNS.length - 2)}`;
  const after = AFTER_CLOSE_MS.map((_, i) => mib(r.afterCloseKiB?.[i]));
  if (r.proxyExit) after[after.length - 1] = `exited (${r.proxyExit})`;
  return `| ${r.target} | ${r.tunnels} | ${mib(r.idleRssKiB)} | ${mib(r.openRssKiB)} | ${kibText(r.perTunnelKiB)} | ${mibAndMb(r.extrapolatedKiB)} | ${underBudget(r.extrapolatedKiB)} | ${after.join(" | ")} |`;
}

function printRowDetail(r: IdleRow): void {
  if (r.notRun !== undefined) {
    console.log(`  ${r.target}: ${r.notRun}`);
    return;
  }
  console.log(
    `  ${r.target}: ${r.tunnels} tunnels; RSS idle ${mib(r.idleRssKiB)}, with ${Math.min(WARMUP_TUNNELS, r.tunnels ?? 0)} ${mib(r.warmRssKiB)}, with ${r.tunnels} ${mib(r.openRssKiB)} ` +
      `(${r.openFds} fds); ${kibText(r.perTunnelKiB)} per tunnel → ${mibAndMb(r.extrapolatedKiB)} at ${TARGET_TUNNELS} (under 300 MB: ${underBudget(r.extrapolatedKiB)}` +
      (r.tunnels !== undefined && r.tunnels < TARGET_TUNNELS && r.perTunnelKiB !== undefined && r.openRssKiB !== undefined
        ? `; from the RSS measured with ${r.tunnels} instead: ${mibAndMb(r.openRssKiB + r.perTunnelKiB * (TARGET_TUNNELS - r.tunnels))}`
        : "") +
      `); ` +
      `after close: ${AFTER_CLOSE_MS.map((ms, i) => `${ms / 1000} s ${mib(r.afterCloseKiB?.[i])}`).join(", ")}` +
      (r.closedEarly ? `; ${r.closedEarly} tunnels closed before the bench closed them` : "") +
      (r.proxyExit ? `; the proxy EXITED: ${r.proxyExit}` : ""),
  );
}

/** The idle-tunnels section of `npm run bench`: prints its results, ending with a markdown table. */
export async function runIdleBench(): Promise<IdleRow[]> {
  installSignalHandlers();
  const started = performance.now();
  const plan = tunnelPlan();
  const targets: IdleTarget[] = [...RUNTIMES, "node (dist)"];
  console.log(`\n## idle tunnels: up to ${TARGET_TUNNELS} idle CONNECT tunnels through the proxy on ${targets.join(", ")}`);
  for (const line of machineInfo()) console.log(line);
  console.log(`- load average at start: ${safeRead("/proc/loadavg").split(" ").slice(0, 3).join(" ")}`);
  console.log(`- file descriptors: ${plan.note}`);
  console.log(`- tunnels used: ${plan.tunnels}`);
  console.log(`- ${treeInfo()}${distStale() ? `; ${DIST_MAIN} is older than some file under src/ (the dist row measures the last build)` : ""}`);
  console.log(
    `- per row: a fresh proxy (RUST_LOG=${IDLE_RUST_LOG}); a silent sink in this process; ${OPEN_CONCURRENCY} CONNECTs at a time, each waiting for HTTP/1.1 200; ` +
      `VmRSS read ${SETTLE_MS / 1000} s after start, after ${WARMUP_TUNNELS} warm-up tunnels and with all open; per tunnel = growth over the tunnels after the warm-up; ` +
      `RSS at ${TARGET_TUNNELS} = idle + per tunnel × ${TARGET_TUNNELS}; budget 300 MB = ${(RSS_BUDGET_KIB / 1024).toFixed(0)} MiB\n`,
  );
  const rows: IdleRow[] = [];
  const sink = await startSink();
  try {
    for (const target of targets) {
      const row: IdleRow = { target };
      rows.push(row);
      const cannot = plan.tunnels === 0 ? "the descriptor limits allow no tunnels" : target === "node (dist)" && !existsSync(join(PROXY_ROOT, DIST_MAIN)) ? `${DIST_MAIN} does not exist (run npm run build)` : undefined;
      if (cannot) row.notRun = `skipped: ${cannot}`;
      else {
        try {
          await measure(row, plan, sink);
        } catch (e) {
          row.notRun = `failed: ${(e as Error).message}`;
        }
      }
      printRowDetail(row);
    }
  } finally {
    await sink.close();
  }
  console.log(`\nmarkdown table (for BENCHMARKS.md):\n`);
  console.log(`| ${TABLE_COLUMNS.join(" | ")} |`);
  console.log(`|---|${"---:|".repeat(TABLE_COLUMNS.length - 1)}`);
  for (const r of rows) console.log(tableRow(r));
  console.log(`\nidle-tunnel check took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return rows;
}

// Run alone: `npx tsx bench/idle.ts`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runIdleBench();
}
