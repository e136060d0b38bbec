/**
 * The library API: `NetworkProxy.builder()…build()`, `run()` → a handle with the real bound
 * addresses, `shutdown()`, and the environment a child process needs (`env()`, `envFor()`).
 * Runtime-neutral: each runtime's entry module supplies the {@link Runtime}.
 *
 * @module
 */
import { stringify } from "smol-toml";
import { createAdminApp } from "../admin/app.ts";
import type { BrowserGuardOptions } from "../admin/browser-guard.ts";
import { adminTokenFrom } from "../admin/token.ts";
import { AttributionRegistry } from "../attribution.ts";
import type { LoggerProvider } from "@opentelemetry/api-logs";
import type { MetricReader } from "@opentelemetry/sdk-metrics";
import type { DecisionSink } from "../audit/events.ts";
import { createAuditSink, type AuditMetadata, type AuditSinkOptions } from "../audit/otel.ts";
import { createConnectionAuditSink, type ConnectionSink } from "../audit/connection.ts";
import { checkConstraints, type NetworkConstraints } from "../config/constraints.ts";
import { parseListenUrl, planListeners } from "../config/listen-url.ts";
import { parseConfigText } from "../config/parse.ts";
import { ConfigError, type NetworkConfig } from "../config/types.ts";
import { proxyEnv } from "../env.ts";
import { silentLogger, TARGET, type Logger } from "../log.ts";
import type { NetAddr } from "../net/contract.ts";
import type { PolicyDecider } from "../policy/decide.ts";
import { upstreamProxiesFromEnv } from "../net/upstream-proxy.ts";
import { startProxy, type ProxyAddresses, type RunningProxy } from "../server.ts";
import { loadExtraCa } from "../tls-trust.ts";
import { loadConfigFile } from "../config/load.ts";
import { readHookSecrets, type SecretReader } from "../mitm/hook-secrets.ts";
import { ClientTrust } from "../mitm/client-trust.ts";
import type { Runtime } from "../runtime.ts";
import { caFromPem, caFromStore, type CaMaterial } from "../mitm/ca-loader.ts";
import type { LocalCa } from "../mitm/ca.ts";
import { ProxyState } from "../state.ts";
import type { Hono } from "hono";

/**
 * What a runtime gives the library.
 *
 * @deprecated the same as {@link Runtime}; use that name.
 */
export type ProxyRuntime = Runtime;

/** Per-command attribution for {@link NetworkProxyHandle.envFor}. */
export interface CommandAttribution {
  /** The command line the child runs (reaches the decider as `command`). */
  readonly command: string;
  /** The exec-policy hint (reaches the decider as `exec_policy_hint`). */
  readonly execPolicyHint?: string;
}

/** A running proxy. */
export interface NetworkProxyHandle {
  /** The real bound addresses (ports resolved when 0 was asked for). */
  readonly addresses: ProxyAddresses;
  /** Close the listeners and every live connection; resolves when all are done. */
  shutdown(): Promise<void>;
  /** Environment variables that send a child process's traffic through this proxy. */
  env(): Record<string, string>;
  /** Like {@link env}, with a credential that attributes the child's requests to `command`. */
  envFor(attribution: CommandAttribution): Record<string, string>;
}

type AddrInput = string | NetAddr;

/** What a {@link NetworkProxyBuilder} has been told so far. */
interface BuilderSettings {
  base: Partial<NetworkConfig>;
  file?: string;
  /** The Codex permission profile `.configFile()` reads. */
  profile?: string;
  source?: () => Promise<Partial<NetworkConfig>> | Partial<NetworkConfig>;
  http?: AddrInput;
  socks?: AddrInput;
  admin?: AddrInput;
  decider?: PolicyDecider;
  managed?: NetworkConstraints;
  logger: Logger;
  sinks: readonly DecisionSink[];
  audit: AuditSinkOptions;
  ca?: CaMaterial;
  metricReaders?: readonly MetricReader[];
  connectionSinks?: readonly ConnectionSink[];
}

/** Builder of a {@link NetworkProxy}. */
export class NetworkProxyBuilder {
  private readonly s: BuilderSettings = { base: {}, logger: silentLogger, sinks: [], audit: {} };

  constructor(private readonly runtime: Runtime) {}

  private set<K extends keyof BuilderSettings>(key: K, value: BuilderSettings[K]): this {
    this.s[key] = value;
    return this;
  }

  /** `[network]` settings as an object (same keys as the TOML table); `enabled` defaults to true. */
  config(network: Partial<NetworkConfig>): this {
    return this.set("base", { ...network });
  }

  /**
   * Read `[network]` from a TOML file (also re-read by `state.reload()`), or the Codex permission
   * profile `options.profile` (`[permissions.NAME.network]`; by default the one
   * `default_permissions` names, when the file has no `[network]`).
   */
  configFile(path: string, options: { profile?: string } = {}): this {
    return this.set("file", path).set("profile", options.profile);
  }

  /** Where `state.reload()` gets the configuration from (the embedding app's source). */
  configSource(source: () => Promise<Partial<NetworkConfig>> | Partial<NetworkConfig>): this {
    return this.set("source", source);
  }

  /** HTTP proxy listener (`127.0.0.1:0` picks a free port). Overrides `proxy_url`. */
  httpAddr(addr: AddrInput): this {
    return this.set("http", addr);
  }

  /** SOCKS5 listener; also turns SOCKS5 on. Overrides `socks_url`. */
  socksAddr(addr: AddrInput): this {
    return this.set("socks", addr);
  }

  /** Serve the admin API here. Without it the library binds no admin listener. */
  adminAddr(addr: AddrInput): this {
    return this.set("admin", addr);
  }

  /** Consulted for allowlist misses (`not_allowed`) only; see `PolicyDecider`. */
  policyDecider(decider: PolicyDecider): this {
    return this.set("decider", decider);
  }

  /** Managed constraints no config, reload or mode change may widen. */
  constraints(constraints: NetworkConstraints): this {
    return this.set("managed", constraints);
  }

  /** Where the proxy logs (default: nowhere). */
  log(logger: Logger): this {
    return this.set("logger", logger);
  }

  /**
   * Emit audit events through this OpenTelemetry `LoggerProvider` (default: the global one,
   * which is a no-op until the host app installs one; the proxy never installs it itself).
   */
  auditLoggerProvider(provider: LoggerProvider): this {
    return this.set("audit", { ...this.s.audit, loggerProvider: provider });
  }

  /**
   * Also export the metrics (docs/behaviour.md §7.5) through `reader`, e.g. the SDK's
   * `PeriodicExportingMetricReader` with an OTLP exporter of the app's. `state.metrics` serves
   * `GET /metrics` either way.
   */
  metricReader(reader: MetricReader): this {
    return this.set("metricReaders", [...(this.s.metricReaders ?? []), reader]);
  }

  /** Metadata added to every audit event (`conversation.id`, `app.version`, …); unset fields are omitted. */
  auditMetadata(metadata: AuditMetadata): this {
    return this.set("audit", { ...this.s.audit, metadata });
  }

  /** Receive every connection record: a tunnel or client connection that ended (docs/behaviour.md §8.6). */
  onConnection(sink: ConnectionSink): this {
    return this.set("connectionSinks", [...(this.s.connectionSinks ?? []), sink]);
  }

  /** Receive every decision record (audit). */
  onDecision(sink: DecisionSink): this {
    return this.set("sinks", [...this.s.sinks, sink]);
  }

  /**
   * The CA for TLS interception (`mitm = true`): its certificate and PKCS#8 key, PEM (ECDSA
   * P-256). Without it, the proxy uses `$CODEX_HOME/proxy/ca.pem` and `ca.key`, made on first
   * need, as the standalone proxy does. Checked on the first intercepted CONNECT.
   */
  mitmCa(material: CaMaterial): this {
    return this.set("ca", { certPem: material.certPem, keyPem: material.keyPem });
  }

  /** Validate everything and compile the policy. Throws `ConfigError` naming what is wrong. */
  async build(): Promise<NetworkProxy> {
    const load = async (): Promise<NetworkConfig> => {
      let network: NetworkConfig;
      if (this.s.file !== undefined) {
        if (!this.runtime.readTextFile) throw new ConfigError("this runtime cannot read config files");
        network = (await loadConfigFile({ readTextFile: (p) => this.runtime.readTextFile!(p) }, this.s.file, true, { profile: this.s.profile })).network;
      } else {
        network = validateObject(this.s.source ? await this.s.source() : this.s.base, this.s.logger);
      }
      return this.applyAddresses(network);
    };
    const network = await load();
    if (!network.enabled) throw new ConfigError("network.enabled is false: the proxy would not listen");
    if (this.s.managed) {
      const violations = checkConstraints(network, this.s.managed);
      if (violations.length > 0) throw new ConfigError(`managed constraints violated: ${violations.join("; ")}`);
    }
    const secretReader: SecretReader = {
      env: (n) => this.runtime.env?.(n),
      readTextFile: this.runtime.readTextFile && ((p) => this.runtime.readTextFile!(p)),
    };
    const readSecrets = (n: NetworkConfig) => readHookSecrets(n.mitm_hooks ?? [], secretReader);
    const state = new ProxyState(
      network,
      { resolve: (h) => this.runtime.net.resolve(h), decider: this.s.decider },
      {
        source: this.s.file !== undefined || this.s.source ? load : undefined,
        constraints: this.s.managed,
        log: this.s.logger,
        secrets: await readSecrets(network),
        readSecrets,
      },
    );
    state.addSink(createAuditSink(this.s.audit));
    state.addConnectionSink(createConnectionAuditSink(this.s.audit));
    for (const sink of this.s.connectionSinks ?? []) state.addConnectionSink(sink);
    for (const reader of this.s.metricReaders ?? []) state.metrics.addReader(reader);
    for (const sink of this.s.sinks) state.addSink(sink);
    const token = adminTokenFrom(network, (n) => this.runtime.env?.(n));
    const mitmCa = this.s.ca ? caFromPem(this.s.ca) : caFromStore(this.runtime, this.s.logger);
    return new NetworkProxy(this.runtime, state, this.s.logger, this.s.admin !== undefined, token, mitmCa, this.s.ca === undefined);
  }

  private applyAddresses(network: NetworkConfig): NetworkConfig {
    const out = { ...network, enabled: network.enabled };
    if (this.s.http !== undefined) out.proxy_url = addrText(this.s.http, "httpAddr");
    if (this.s.socks !== undefined) {
      out.socks_url = addrText(this.s.socks, "socksAddr");
      out.enable_socks5 = true;
    }
    if (this.s.admin !== undefined) out.admin_url = addrText(this.s.admin, "adminAddr");
    return out;
  }
}

/** An embeddable proxy: live state, the admin app, and `run()`. */
export class NetworkProxy {
  /** @internal use {@link NetworkProxyBuilder.build} */
  constructor(
    private readonly runtime: Runtime,
    /** Live policy, mode and blocked log: `reload()`, `setMode()`, `blocked.list()`. */
    readonly state: ProxyState,
    private readonly logger: Logger,
    private readonly serveAdmin: boolean,
    private readonly adminToken: string | undefined,
    private readonly mitmCa?: () => Promise<LocalCa>,
    /** `mitmCa` is the one kept in `$CODEX_HOME/proxy` (the app gave none). */
    private readonly mitmCaFromStore = true,
  ) {}

  /** A builder on `runtime` (each runtime's entry module presets it). */
  static builder(runtime: Runtime): NetworkProxyBuilder {
    return new NetworkProxyBuilder(runtime);
  }

  /**
   * The admin API as a Hono app, to mount with `app.route("/proxy", proxy.adminApp())`. It
   * refuses (403) requests a web page could have made a browser send: a foreign `Origin`,
   * `Sec-Fetch-Site: cross-site`/`same-site`, and a `Host` other than `localhost`, a loopback
   * literal or one of `options.allowedHosts` (default none: loopback only). Pass the names your
   * server is reached under, e.g. `proxy.adminApp({ allowedHosts: ["proxy.internal"] })`.
   *
   * @throws TypeError for an `allowedHosts` entry that is not a host name or IP literal.
   */
  adminApp(options: BrowserGuardOptions = {}): Hono {
    return createAdminApp(this.state, { token: this.adminToken, log: this.logger, allowedHosts: options.allowedHosts });
  }

  /** Bind the listeners and start serving. */
  async run(): Promise<NetworkProxyHandle> {
    const { plan, warnings } = planListeners(this.state.snapshot().network);
    for (const w of warnings) this.logger.log("warn", TARGET.config, w);
    const attribution = new AttributionRegistry();
    const extraCa = await loadExtraCa(
      (n) => this.runtime.env?.(n),
      this.runtime.readTextFile && ((p) => this.runtime.readTextFile!(p)),
      (m) => this.logger.log("warn", TARGET.config, m),
    );
    const running: RunningProxy = await startProxy({
      net: this.runtime.net,
      state: this.state,
      log: this.logger,
      plan,
      attribution,
      admin: this.serveAdmin ? this.adminApp().fetch : undefined,
      upstream: upstreamProxiesFromEnv((n) => this.runtime.env?.(n), (m) => this.logger.log("warn", TARGET.config, m)),
      extraCa,
      mitmCa: this.mitmCa,
    });
    const endpoints = { http: running.addresses.http, socks5: running.addresses.socks5 };
    // With interception on, children get the CA variables too (a bundle of the system roots and the CA).
    const intercepting = () => this.state.snapshot().network.mitm;
    const trust = this.mitmCa && new ClientTrust(this.runtime, this.mitmCa, this.mitmCaFromStore, intercepting, this.logger);
    if (trust && intercepting()) await trust.ensure();
    const unwatch = trust ? this.state.onChange(() => void (intercepting() && trust.ensure())) : undefined;
    return {
      addresses: running.addresses,
      shutdown: async () => {
        unwatch?.();
        await Promise.all([running.shutdown(), trust?.close()]);
        await this.state.metrics.shutdown(); // a last export through the app's metric readers
      },
      env: () => ({ ...proxyEnv(endpoints), ...trust?.env() }),
      envFor: (a) => ({ ...proxyEnv(endpoints, attribution.issue({ command: a.command, exec_policy_hint: a.execPolicyHint })), ...trust?.env() }),
    };
  }
}

function addrText(addr: AddrInput, what: string): string {
  const text = typeof addr === "string" ? addr : addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
  parseListenUrl(text, what); // throws ConfigError naming the bad value
  return text;
}

/**
 * Check a config object exactly as a file would be checked (types, modes, patterns): it is
 * written out as TOML and parsed back. `enabled` defaults to true for an embedded proxy.
 */
function validateObject(network: Partial<NetworkConfig>, log: Logger): NetworkConfig {
  let text: string;
  try {
    text = stringify({ network: { enabled: true, ...stripUndefined(network) } });
  } catch (e) {
    throw new ConfigError(`config object: ${(e as Error).message}`, undefined, undefined, { cause: e });
  }
  const loaded = parseConfigText(text, "config object");
  for (const w of loaded.warnings) log.log("warn", TARGET.config, w);
  return loaded.network;
}

function stripUndefined(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

