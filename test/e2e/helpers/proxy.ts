/**
 * Starting the standalone proxy as a child process (`node --import tsx src/runtimes/node/main.ts`)
 * and running the CLI for its exit code.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, proxyCommand, proxyFreeEnv, REPO_ROOT, withDeadline } from "./util.ts";

/** A running proxy process. */
export interface ProxyProcess {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /**
   * Port of the SOCKS5 listener, from `SOCKS5 proxy listening on 127.0.0.1:PORT` (undefined when
   * the config does not enable SOCKS5 and the line was not printed by the time the HTTP one was).
   */
  readonly socksPort: number | undefined;
  /**
   * Port of the admin API, from `admin API listening on 127.0.0.1:PORT` (undefined when the line
   * was not printed by the time the HTTP one was; pass `waitForAdmin` to wait for it).
   */
  readonly adminPort: number | undefined;
  /** The directory holding the config file (removed by `stop`). */
  readonly dir: string;
  readonly configPath: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  /** Resolves with the exit code when the process ends (null if killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Send `signal` (default SIGTERM), wait for the exit and return its code. Idempotent. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export interface StartProxyOptions {
  /** Extra environment variables (undefined removes one). */
  env?: Record<string, string | undefined>;
  /** Pass no `--config` flag (the config is found through CODEX_HOME). */
  noConfigFlag?: boolean;
  /** How long to wait for the listening line. */
  readyTimeoutMs?: number;
  /**
   * Also wait for `SOCKS5 proxy listening on …` before resolving. Default: true when the config
   * text contains `enable_socks5 = true`.
   */
  waitForSocks5?: boolean;
  /** Also wait for `admin API listening on …` before resolving. Default: false. */
  waitForAdmin?: boolean;
  /** Extra command-line arguments, after `--config PATH` (e.g. `["--constraints", file]`). */
  args?: readonly string[];
  /** Run this executable (a compiled single-file binary, `npm`) instead of the runtime's entry. */
  command?: string;
  /** With `command`: its arguments before `--config PATH` (e.g. `["start", "--"]` for `npm`). */
  commandArgs?: readonly string[];
  /**
   * Start the proxy with this open-files limit, soft and hard (see {@link withOpenFilesLimit});
   * the process keeps its pid, so `child.pid` is the proxy's.
   */
  nofile?: number;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) {
    try {
      c.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

const LISTENING = /HTTP proxy listening on (127\.0\.0\.1|\[?::1\]?):(\d+)/;
const SOCKS5_LISTENING = /SOCKS5 proxy listening on (?:127\.0\.0\.1|\[?::1\]?):(\d+)/;
const ADMIN_LISTENING = /admin API listening on (?:127\.0\.0\.1|\[?::1\]?):(\d+)/;

/**
 * Write `configToml` to a fresh temp dir as `config.toml`, start the proxy on it and wait for
 * `HTTP proxy listening on HOST:PORT` on stderr.
 */
export async function startProxy(configToml: string, opts: StartProxyOptions = {}): Promise<ProxyProcess> {
  const tmp = makeTempDir("cnp-e2e-proxy-");
  const configPath = join(tmp.dir, "config.toml");
  writeFileSync(configPath, configToml);
  const args: string[] = [];
  if (!opts.noConfigFlag) args.push("--config", configPath);
  if (opts.args) args.push(...opts.args);
  const base = opts.command ? { command: opts.command, args: [...(opts.commandArgs ?? []), ...args] } : proxyCommand(args);
  const cmd = opts.nofile === undefined ? base : withOpenFilesLimit(base, opts.nofile);
  const child = spawn(cmd.command, cmd.args, {
    cwd: REPO_ROOT,
    env: proxyFreeEnv({ RUST_LOG: "info", ...opts.env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  let err = "";
  let out = "";
  child.stderr!.setEncoding("utf8");
  child.stdout!.setEncoding("utf8");
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      live.delete(child);
      resolve(code);
    });
  });
  const waitForSocks5 = opts.waitForSocks5 ?? /^\s*enable_socks5\s*=\s*true\s*$/m.test(configToml);
  const ready = new Promise<{ host: string; port: number }>((resolve, reject) => {
    const onData = (chunk: string) => {
      err += chunk;
      const m = LISTENING.exec(err);
      if (m && (!waitForSocks5 || SOCKS5_LISTENING.test(err)) && (!opts.waitForAdmin || ADMIN_LISTENING.test(err))) resolve({ host: m[1]!.replace(/[[\]]/g, ""), port: Number(m[2]) });
    };
    child.stderr!.on("data", onData);
    child.stdout!.on("data", (c: string) => (out += c));
    child.once("error", reject);
    void exited.then((code) => reject(new Error(`proxy exited with code ${code} before listening; stderr:\n${err}`)));
  });
  let addr: { host: string; port: number };
  try {
    addr = await withDeadline(ready, opts.readyTimeoutMs ?? 20_000, `proxy listening line; stderr so far:\n${err}`);
  } catch (e) {
    child.kill("SIGKILL");
    tmp.remove();
    throw e;
  }
  let stopped: Promise<number | null> | undefined;
  const hostForUrl = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
  const socksMatch = SOCKS5_LISTENING.exec(err);
  const adminMatch = ADMIN_LISTENING.exec(err);
  return {
    socksPort: socksMatch ? Number(socksMatch[1]) : undefined,
    adminPort: adminMatch ? Number(adminMatch[1]) : undefined,
    url: `http://${hostForUrl}:${addr.port}`,
    host: addr.host,
    port: addr.port,
    dir: tmp.dir,
    configPath,
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000) {
      if (!stopped) {
        stopped = (async () => {
          try {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return await withDeadline(exited, timeoutMs, `proxy exit after ${signal}`);
          } catch (e) {
            child.kill("SIGKILL");
            throw e;
          } finally {
            tmp.remove();
          }
        })();
      }
      return stopped;
    },
  };
}

/**
 * `cmd` run under an open-files limit of `n` (soft and hard): `sh -c 'ulimit -n N && exec …'`,
 * so the command replaces the shell and keeps its pid.
 */
export function withOpenFilesLimit(cmd: { command: string; args: string[] }, n: number): { command: string; args: string[] } {
  return { command: "/bin/sh", args: ["-c", 'ulimit -n "$0" && exec "$@"', String(n), cmd.command, ...cmd.args] };
}

/** The outcome of a CLI run that ends by itself. */
export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the proxy CLI with `args` and wait (bounded) for it to exit on its own. */
export async function runCli(
  args: readonly string[],
  opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const cmd = proxyCommand(args);
  const child = spawn(cmd.command, cmd.args, {
    cwd: REPO_ROOT,
    env: proxyFreeEnv({ RUST_LOG: "info", ...opts.env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      live.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  try {
    return await withDeadline(done, opts.timeoutMs ?? 15_000, `CLI ${args.join(" ")} to exit; stderr so far:\n${stderr}`);
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
}

/** A `[network]` config for tests: loopback listeners on port 0 plus the given lines. */
export function networkConfig(lines: Record<string, unknown>): string {
  const base: Record<string, unknown> = {
    enabled: true,
    proxy_url: "http://127.0.0.1:0",
    admin_url: "http://127.0.0.1:0",
    ...lines,
  };
  let text = "[network]\n";
  for (const [k, v] of Object.entries(base)) text += `${k} = ${tomlValue(v)}\n`;
  return text;
}

function tomlValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(", ")}]`;
  throw new Error(`unsupported TOML value ${String(v)}`);
}
