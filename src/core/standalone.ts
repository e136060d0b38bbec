/**
 * The standalone command line, runtime-neutral: arguments, locating and loading
 * `config.toml`, starting the listeners and stopping on a signal. Each runtime's `main.ts`
 * supplies the host capabilities and calls {@link runStandalone}.
 *
 * Exit codes: 0 after a clean shutdown, `--help`, `--version` or `enabled = false`;
 * 2 for usage or configuration errors; 1 when the proxy cannot start (a bind fails).
 *
 * @module
 */
import { findKeyLine } from "./config/key-line.ts";
import { planListeners } from "./config/listen-url.ts";
import { parseConfigText } from "./config/parse.ts";
import { ConfigError, defaultNetworkConfig, type LoadedConfig } from "./config/types.ts";
import { createLineLogger, TARGET } from "./log.ts";
import type { Net } from "./net/contract.ts";
import { compilePatterns, PatternError } from "./policy/patterns.ts";
import { startProxy } from "./server.ts";
import { ProxyState } from "./state.ts";
import { VERSION } from "./version.ts";

/** What the standalone entry needs from its runtime. */
export interface StandaloneHost {
  /** `node`, `bun` or `deno`, for the version line. */
  readonly runtime: string;
  /** Arguments after the program name. */
  readonly args: readonly string[];
  env(name: string): string | undefined;
  /** File contents, or `null` when the file does not exist. Other failures throw. */
  readTextFile(path: string): Promise<string | null>;
  /** What is at `path`. */
  pathKind(path: string): Promise<"file" | "dir" | "missing" | "other">;
  /** The user's home directory. */
  homeDir(): string | undefined;
  stdout(text: string): void;
  stderr(text: string): void;
  readonly net: Net;
  /** Call `handler` once on SIGINT or SIGTERM. */
  onShutdownSignal(handler: (signal: string) => void): void;
}

/** The `--help` text. */
export const HELP = `codex-network-proxy ${VERSION}
Local network-policy proxy for sandboxed software: an HTTP proxy (and an optional
SOCKS5 proxy) that decides every request, CONNECT tunnel and SOCKS5 connection or
datagram by an allowlist, a denylist, local-address protection and a read-only
"limited" mode.

Usage: codex-network-proxy [--config PATH]

Options:
  -c, --config PATH  read this file instead of $CODEX_HOME/config.toml (it must exist)
  -h, --help         print this help and exit
  -V, --version      print the version and exit

Configuration is the [network] table of the file (see README.md and
examples/config.toml). Without a file the defaults apply, and since
network.enabled defaults to false the proxy then exits without listening.

Environment:
  CODEX_HOME  directory holding config.toml (default ~/.codex)
  RUST_LOG    log filter, e.g. info, codex_network_proxy=debug (default info)

Exit status: 0 after SIGINT/SIGTERM or when disabled, 2 for a usage or
configuration error, 1 when a listener cannot be bound.
`;

type Args = { kind: "run"; config?: string } | { kind: "help" } | { kind: "version" } | { kind: "error"; message: string };

/** Parse the command line. */
export function parseArgs(args: readonly string[]): Args {
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-h" || a === "--help") return { kind: "help" };
    if (a === "-V" || a === "--version") return { kind: "version" };
    if (a === "-c" || a === "--config") {
      const v = args[++i];
      if (v === undefined || v === "") return { kind: "error", message: `${a} needs a file path` };
      config = v;
    } else if (a.startsWith("--config=")) {
      config = a.slice("--config=".length);
      if (config === "") return { kind: "error", message: "--config= needs a file path" };
    } else {
      return { kind: "error", message: `unknown argument ${JSON.stringify(a)}` };
    }
  }
  return config === undefined ? { kind: "run" } : { kind: "run", config };
}

/** Find the config path: `--config`, else `$CODEX_HOME/config.toml`, else `~/.codex/config.toml`. */
async function configPath(host: StandaloneHost, explicit: string | undefined): Promise<string> {
  if (explicit !== undefined) return explicit;
  const codexHome = host.env("CODEX_HOME");
  if (codexHome) {
    const kind = await host.pathKind(codexHome);
    if (kind === "missing") throw new ConfigError(`CODEX_HOME ${codexHome} does not exist`);
    if (kind !== "dir") throw new ConfigError(`CODEX_HOME ${codexHome} is not a directory`);
    return `${codexHome.replace(/\/+$/, "")}/config.toml`;
  }
  const home = host.homeDir();
  if (!home) throw new ConfigError("cannot find the home directory: set CODEX_HOME or pass --config");
  return `${home.replace(/\/+$/, "")}/.codex/config.toml`;
}

/**
 * Load and fully validate a config file, domain patterns included. A missing file yields the
 * defaults, unless it is `required` (named with `--config`: a typo must not pass silently).
 * Throws {@link ConfigError} naming the key and line.
 */
export async function loadConfigFile(host: Pick<StandaloneHost, "readTextFile">, path: string, required = false): Promise<LoadedConfig> {
  let text: string | null;
  try {
    text = await host.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`failed to parse ${path}: cannot read file: ${(e as Error).message}`);
  }
  if (text === null) {
    if (required) throw new ConfigError(`config file ${path} does not exist`);
    return { network: defaultNetworkConfig(), warnings: [] };
  }
  const loaded = parseConfigText(text, path);
  for (const key of ["allowed_domains", "denied_domains"] as const) {
    loaded.network[key].forEach((pattern, index) => {
      try {
        compilePatterns([pattern]);
      } catch (e) {
        if (!(e instanceof PatternError)) throw e;
        const line = findKeyLine(text, "network", key);
        const where = line === undefined ? `${path}:` : `${path}:${line}:`;
        throw new ConfigError(`${where} network.${key}[${index}]: ${e.message}`, `network.${key}`, line);
      }
    });
  }
  return loaded;
}

/** Run the standalone proxy until a shutdown signal. Resolves with the exit code. */
export async function runStandalone(host: StandaloneHost): Promise<number> {
  const args = parseArgs(host.args);
  if (args.kind === "help") {
    host.stdout(HELP);
    return 0;
  }
  if (args.kind === "version") {
    host.stdout(`codex-network-proxy ${VERSION}\n`);
    return 0;
  }
  if (args.kind === "error") {
    host.stderr(`error: ${args.message}\n\n${HELP}`);
    return 2;
  }
  const log = createLineLogger((line) => host.stderr(line + "\n"), host.env("RUST_LOG"));
  let loaded: LoadedConfig;
  let plan;
  try {
    const path = await configPath(host, args.config);
    loaded = await loadConfigFile(host, path, args.config !== undefined);
    const planned = planListeners(loaded.network);
    plan = planned.plan;
    for (const w of [...loaded.warnings, ...planned.warnings]) log.log("warn", TARGET.config, w);
  } catch (e) {
    if (e instanceof ConfigError) {
      host.stderr(`error: ${e.message.trimEnd()}\n`);
      return 2;
    }
    throw e;
  }
  const network = loaded.network;
  if (!network.enabled) {
    host.stderr("network.enabled is false; skipping proxy listeners\n");
    return 0;
  }
  // Signals are caught from here on, so one that arrives while binding still ends cleanly.
  let received: string | undefined;
  let wake: ((signal: string) => void) | undefined;
  host.onShutdownSignal((signal) => {
    received = signal;
    wake?.(signal);
  });
  const state = new ProxyState(network, { resolve: (h) => host.net.resolve(h) });
  log.log(
    "info",
    TARGET.main,
    `codex-network-proxy ${VERSION} on ${host.runtime}: mode ${network.mode}, ${network.allowed_domains.length} allowed and ${network.denied_domains.length} denied patterns`,
  );
  let running;
  try {
    running = await startProxy({ net: host.net, state, log, plan });
  } catch (e) {
    host.stderr(`error: cannot start the proxy: ${(e as Error).message}\n`);
    return 1;
  }
  const signal = received ?? (await new Promise<string>((resolve) => (wake = resolve)));
  log.log("info", TARGET.main, `${signal} received; closing listeners and connections`);
  await running.shutdown();
  return 0;
}
