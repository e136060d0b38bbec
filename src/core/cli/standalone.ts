/**
 * The standalone command line, runtime-neutral: arguments, locating and loading
 * `config.toml`, starting the listeners and stopping on a signal. Each runtime's `main.ts`
 * passes its {@link StandaloneRuntime} to {@link runStandalone}.
 *
 * `codex-network-proxy env` prints the variables a child needs instead (docs/behaviour.md §9.4).
 *
 * Exit codes: 0 after a clean shutdown, `--help`, `--version` or `enabled = false`;
 * 2 for usage or configuration errors; 1 when the proxy cannot start (a bind fails).
 *
 * @module
 */
import { planListeners } from "../config/listen-url.ts";
import { ConfigError, type ListenPlan, type LoadedConfig, type NetworkConfig } from "../config/types.ts";
import { createAdminApp } from "../admin/app.ts";
import { loadConfigFile } from "../config/load.ts";
import { readHookSecrets, type HookSecrets, type SecretReader } from "../mitm/hook-secrets.ts";
import { adminTokenFrom } from "../admin/token.ts";
import { checkConstraints, parseConstraintsText, type NetworkConstraints } from "../config/constraints.ts";
import { createLineLogger, TARGET, type Logger } from "../log.ts";
import { upstreamProxiesFromEnv } from "../net/upstream-proxy.ts";
import { startProxy } from "../server.ts";
import { loadExtraCa } from "../tls-trust.ts";
import type { StandaloneRuntime } from "../runtime.ts";
import { ProxyState } from "../state.ts";
import { VERSION } from "../version.ts";
import { caFromStore, writeTrustBundle } from "../mitm/ca-loader.ts";
import { caEnv } from "../mitm/ca-env.ts";
import { proxyEnv } from "../env.ts";

/** The `--help` text. */
export const HELP = `codex-network-proxy ${VERSION}
Local network-policy proxy for sandboxed software: an HTTP proxy (and an optional
SOCKS5 proxy) that decides every request, CONNECT tunnel and SOCKS5 connection or
datagram by an allowlist, a denylist, local-address protection and a read-only
"limited" mode.

Usage: codex-network-proxy [--config PATH] [--profile NAME] [--constraints PATH]
       codex-network-proxy env [--config PATH] [--profile NAME] [--constraints PATH]

Commands:
  env                    print shell export lines that send a process's traffic
                         through the configured proxy: eval "$(codex-network-proxy env)".
                         With network.mitm = true they include the CA variables
                         (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, ...),
                         pointing at $CODEX_HOME/proxy/ca-bundle.pem: the system roots
                         plus the proxy's CA, both written if missing

Options:
  -c, --config PATH      read this file instead of $CODEX_HOME/config.toml (it must exist)
      --profile NAME     read the Codex permission profile [permissions.NAME.network]
                         instead of the one default_permissions names (or [network])
      --constraints PATH managed limits (a TOML [network] table) that the config, a
                         reload or POST /mode may never widen
  -h, --help             print this help and exit
  -V, --version          print the version and exit

The config file is watched: a change is applied within a second (POST /reload on
the admin API forces it); an invalid change is logged and the previous policy stays.

Configuration is the [network] table of the file, plus [otel] and [analytics]
for exporting audit events (see README.md and examples/config.toml). Without a file the defaults apply, and since
network.enabled defaults to false the proxy then exits without listening.

Environment:
  CODEX_HOME                       directory holding config.toml, and proxy/ca.pem for
                                   TLS interception (network.mitm) (default ~/.codex)
  RUST_LOG                         log filter, e.g. info, codex_network_proxy=debug
  CODEX_NETWORK_PROXY_ADMIN_TOKEN  admin API bearer token (overrides network.admin_token)
  CODEX_NETWORK_PROXY_AUDIT_THREAD where [otel] export runs: worker or main (default:
                                   a worker thread with 3 or more CPUs, else main)

Exit status: 0 after SIGINT/SIGTERM or when disabled, 2 for a usage or
configuration error, 1 when a listener cannot be bound.
`;

type Args =
  | { kind: "run" | "env"; config?: string; constraints?: string; profile?: string }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string };

/** Parse the command line: options, and the `env` command first when given. */
export function parseArgs(args: readonly string[]): Args {
  const files: { config?: string; constraints?: string; profile?: string } = {};
  const command = args[0] === "env" ? "env" : "run";
  for (let i = command === "env" ? 1 : 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-h" || a === "--help") return { kind: "help" };
    if (a === "-V" || a === "--version") return { kind: "version" };
    const m = /^--(config|constraints|profile)(?:=(.*))?$/.exec(a) ?? (a === "-c" ? [a, "config", undefined] : null);
    if (!m) return { kind: "error", message: `unknown argument ${JSON.stringify(a)}` };
    const key = m[1] as "config" | "constraints" | "profile";
    const value = m[2] ?? args[++i];
    if (value === undefined || value === "") return { kind: "error", message: `${a} needs ${key === "profile" ? "a profile name" : "a file path"}` };
    files[key] = value;
  }
  return { kind: command, ...files };
}

/** Find the config path: `--config`, else `$CODEX_HOME/config.toml`, else `~/.codex/config.toml`. */
async function configPath(rt: StandaloneRuntime, explicit: string | undefined): Promise<string> {
  if (explicit !== undefined) return explicit;
  const codexHome = rt.env("CODEX_HOME");
  if (codexHome) {
    const kind = await rt.pathKind(codexHome);
    if (kind === "missing") throw new ConfigError(`CODEX_HOME ${codexHome} does not exist`);
    if (kind !== "dir") throw new ConfigError(`CODEX_HOME ${codexHome} is not a directory`);
    return `${codexHome.replace(/\/+$/, "")}/config.toml`;
  }
  const home = rt.homeDir();
  if (!home) throw new ConfigError("cannot find the home directory: set CODEX_HOME or pass --config");
  return `${home.replace(/\/+$/, "")}/.codex/config.toml`;
}

/** Run the standalone proxy until a shutdown signal. Resolves with the exit code. */
export async function runStandalone(rt: StandaloneRuntime): Promise<number> {
  const args = parseArgs(rt.args);
  if (args.kind === "help") {
    rt.stdout(HELP);
    return 0;
  }
  if (args.kind === "version") {
    rt.stdout(`codex-network-proxy ${VERSION}\n`);
    return 0;
  }
  if (args.kind === "error") {
    rt.stderr(`error: ${args.message}\n\n${HELP}`);
    return 2;
  }
  const log = createLineLogger((line) => rt.stderr(line + "\n"), rt.env("RUST_LOG"));
  if (args.kind === "env") return printEnv(rt, args, log);
  let path: string;
  let loaded: LoadedConfig;
  let constraints: NetworkConstraints | undefined;
  let plan: ListenPlan;
  let initialMtime: number | undefined;
  let adminToken: string | undefined;
  let secrets: HookSecrets;
  const secretReader: SecretReader = { env: (n) => rt.env(n), readTextFile: (p) => rt.readTextFile(p) };
  try {
    path = await configPath(rt, args.config);
    // The watcher's baseline is taken before the first read, so an edit made during startup
    // is never missed.
    initialMtime = await rt.fileMtime?.(path).catch(() => undefined);
    loaded = await loadConfigFile(rt, path, args.config !== undefined, { profile: args.profile });
    if (args.constraints !== undefined) constraints = await loadConstraintsFile(rt, args.constraints);
    const planned = planListeners(loaded.network);
    plan = planned.plan;
    for (const w of [...loaded.warnings, ...planned.warnings]) log.log("warn", TARGET.config, w);
    const violations = constraints ? checkConstraints(loaded.network, constraints) : [];
    if (violations.length > 0) throw new ConfigError(`${path}: managed constraints violated:\n  ${violations.join("\n  ")}`);
    adminToken = adminTokenFrom(loaded.network, (n) => rt.env(n));
    secrets = await readHookSecrets(loaded.network.mitm_hooks, secretReader);
  } catch (e) {
    if (e instanceof ConfigError) {
      rt.stderr(`error: ${e.message.trimEnd()}\n`);
      return 2;
    }
    throw e;
  }
  const network = loaded.network;
  if (!network.enabled) {
    rt.stderr("network.enabled is false; skipping proxy listeners\n");
    return 0;
  }
  // Signals are caught from here on, so one that arrives while binding still ends cleanly.
  let received: string | undefined;
  let wake: ((signal: string) => void) | undefined;
  rt.onShutdownSignal((signal) => {
    received = signal;
    wake?.(signal);
  });
  const configFile = path;
  const state = new ProxyState(
    network,
    { resolve: (h) => rt.net.resolve(h) },
    {
      source: async () => (await loadConfigFile(rt, configFile, args.config !== undefined, { profile: args.profile })).network,
      constraints,
      log,
      secrets,
      readSecrets: (n) => readHookSecrets(n.mitm_hooks, secretReader),
    },
  );
  log.log(
    "info",
    TARGET.main,
    `codex-network-proxy ${VERSION} on ${rt.name}: mode ${network.mode}, ${network.allowed_domains.length} allowed and ${network.denied_domains.length} denied patterns`,
  );
  const audit = loaded.telemetry && rt.startAuditExport ? await rt.startAuditExport(loaded.telemetry, log, { net: rt.net }) : undefined;
  if (loaded.telemetry && rt.startMetricsExport) await rt.startMetricsExport(loaded.telemetry, state.metrics, log);
  if (audit?.sink) state.addSink(audit.sink);
  if (audit?.connectionSink) state.addConnectionSink(audit.connectionSink);
  const admin = createAdminApp(state, { token: adminToken, log });
  let running;
  try {
    const upstream = upstreamProxiesFromEnv(
      (n) => rt.env(n),
      (m) => log.log(network.allow_upstream_proxy ? "warn" : "debug", TARGET.config, m),
    );
    if (network.allow_upstream_proxy) {
      const named = [upstream.https, upstream.http, upstream.all].filter((p) => p !== undefined).map((p) => p!.display);
      log.log("info", TARGET.config, `upstream proxy chaining on: ${named.length ? [...new Set(named)].join(", ") : "no proxy variable set"}`);
    }
    const extraCa = await loadExtraCa((n) => rt.env(n), (p) => rt.readTextFile(p), (m) => log.log("warn", TARGET.config, m));
    const mitmCa = caFromStore(rt, log);
    running = await startProxy({ net: rt.net, state, log, plan, admin: admin.fetch, upstream, extraCa, mitmCa });
  } catch (e) {
    rt.stderr(`error: cannot start the proxy: ${(e as Error).message}\n`);
    await Promise.allSettled([audit?.shutdown(), state.metrics.shutdown()]);
    return 1;
  }
  const watcher = rt.fileMtime ? watchConfigFile(configFile, rt.fileMtime, state, log, initialMtime) : undefined;
  const signal = received ?? (await new Promise<string>((resolve) => (wake = resolve)));
  log.log("info", TARGET.main, `${signal} received; closing listeners and connections`);
  watcher?.stop();
  await running.shutdown();
  await Promise.allSettled([audit?.shutdown(), state.metrics.shutdown()]); // flush pending audit records and metrics
  return 0;
}

/**
 * The `env` command: `export` lines for the configured listeners (docs/behaviour.md §9.4) and,
 * with `mitm = true`, the CA variables, writing the CA and its bundle when missing. 2 for a
 * configuration the proxy would not start with or that names no fixed listener, 1 when the CA
 * or bundle cannot be written.
 */
async function printEnv(rt: StandaloneRuntime, args: { config?: string; constraints?: string; profile?: string }, log: Logger): Promise<number> {
  let network: NetworkConfig;
  let plan: ListenPlan;
  try {
    const path = await configPath(rt, args.config);
    network = (await loadConfigFile(rt, path, args.config !== undefined, { profile: args.profile })).network;
    if (!network.enabled) throw new ConfigError(`${path}: network.enabled is false: there is no proxy to point at`);
    const constraints = args.constraints === undefined ? undefined : await loadConstraintsFile(rt, args.constraints);
    const violations = constraints ? checkConstraints(network, constraints) : [];
    if (violations.length > 0) throw new ConfigError(`${path}: managed constraints violated:\n  ${violations.join("\n  ")}`);
    plan = planListeners(network).plan;
    for (const [key, addr] of [["proxy_url", plan.http], ["socks_url", plan.socks5]] as const) {
      if (addr?.port === 0) throw new ConfigError(`${path}: network.${key} has port 0, which is picked when the proxy starts: env needs a fixed port`);
    }
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    rt.stderr(`error: ${e.message.trimEnd()}\n`);
    return 2;
  }
  const vars = proxyEnv({ http: plan.http, socks5: plan.socks5 });
  if (network.mitm) {
    const store = caFromStore(rt, log);
    try {
      if (!store) throw new Error("this runtime cannot keep the CA's files");
      const bundle = await writeTrustBundle(rt, await store(), true, log);
      if (bundle) Object.assign(vars, caEnv(bundle));
    } catch (e) {
      rt.stderr(`error: cannot write the CA bundle: ${(e as Error).message}\n`);
      return 1;
    }
  }
  rt.stdout(Object.entries(vars).map(([name, value]) => `export ${name}=${shellQuote(value)}\n`).join(""));
  return 0;
}

/** `value` in single quotes for a POSIX shell. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** How often the config file's modification time is checked for live reload. */
export const CONFIG_WATCH_INTERVAL_MS = 1_000;

/**
 * Reload `state` whenever the file's modification time changes from `baseline` (or from its
 * first reading), checked at most once per {@link CONFIG_WATCH_INTERVAL_MS}. A failed reload is logged and not retried until the file
 * changes again; the previous policy stays in force.
 */
export function watchConfigFile(
  path: string,
  mtime: (path: string) => Promise<number | undefined>,
  state: ProxyState,
  log: Logger,
  baseline?: number,
): { stop(): void } {
  let last: number | undefined | null = baseline ?? null; // null: not read yet
  let busy = false;
  const check = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const now = await mtime(path).catch(() => undefined);
      if (last !== null && now !== last) {
        log.log("info", TARGET.config, `${path} changed; reloading`);
        try {
          await state.reload();
        } catch (e) {
          log.log("warn", TARGET.config, `${(e as Error).message}; the previous configuration stays in force`);
        }
      }
      last = now;
    } finally {
      busy = false;
    }
  };
  void check();
  const timer = setInterval(() => void check(), CONFIG_WATCH_INTERVAL_MS);
  return { stop: () => clearInterval(timer) };
}

/** Load a `--constraints` file (it must exist). */
async function loadConstraintsFile(rt: Pick<StandaloneRuntime, "readTextFile">, path: string): Promise<NetworkConstraints> {
  let text: string | null;
  try {
    text = await rt.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`failed to parse ${path}: cannot read file: ${(e as Error).message}`, undefined, undefined, { cause: e });
  }
  if (text === null) throw new ConfigError(`constraints file ${path} does not exist`);
  return parseConstraintsText(text, path);
}
