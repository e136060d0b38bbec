/**
 * The one object through which the core reaches its runtime (docs/architecture.md "Runtimes").
 * Each adapter builds one — `nodeRuntime`, `bunRuntime`, `denoRuntime` — and both the library
 * (`NetworkProxy.builder()`) and the standalone entry (`runStandalone`) take it.
 *
 * Only `net` is required: an embedder may hand the library a bare `{ net }`. The standalone
 * entry needs the process parts as well ({@link StandaloneRuntime}).
 *
 * Timers, the clock (`setTimeout`, `Date.now`, `performance.now`), `crypto.subtle`,
 * `TextEncoder`, streams and `fetch`'s `Request`/`Response` are not in it: they are web-standard
 * globals that Node, Bun and Deno provide alike, and tests replace them with vitest's fake timers.
 *
 * @module
 */
import type { ConnectionSink } from "./audit/connection.ts";
import type { DecisionSink } from "./audit/events.ts";
import type { PrivateFiles } from "./mitm/ca-store.ts";
import type { TelemetryConfig } from "./config/telemetry.ts";
import type { Logger } from "./log.ts";
import type { ProxyMetrics } from "./metrics/metrics.ts";
import type { Net } from "./net/contract.ts";

/** What is at a path. */
export type PathKind = "file" | "dir" | "missing" | "other";

/** A running audit export (`[otel]`), to flush and stop at shutdown. */
export interface AuditExport {
  /** Takes every decision record for export; `undefined` when nothing is exported. */
  readonly sink?: DecisionSink;
  /** Takes every connection record (`connection_closed`) for export. */
  readonly connectionSink?: ConnectionSink;
  /** Where the export pipeline runs (the adapters run it in a worker thread when they can). */
  readonly where?: "worker" | "main thread";
  /** Flush pending records and stop. */
  shutdown(): Promise<void>;
}

/** What a runtime provides. */
export interface Runtime {
  /**
   * Sockets: TCP listen and dial, UDP, TLS client, unix sockets, the resolver, and HTTP serving
   * for the admin API (`serveHttp`). The adapter contract suite (test/contract) pins its behaviour.
   */
  readonly net: Net;
  /** `node v20.11.1`, `bun 1.2.3`, `deno 2.1.0`: named in the start-up line. */
  readonly name?: string;
  /** An environment variable (`CODEX_NETWORK_PROXY_ADMIN_TOKEN`, `HTTPS_PROXY`, `CODEX_HOME`…). */
  env?(name: string): string | undefined;
  /** File contents, or `null` when the file does not exist. Other failures throw. */
  readTextFile?(path: string): Promise<string | null>;
  /** What is at `path`. */
  pathKind?(path: string): Promise<PathKind>;
  /** Modification time of a file in ms (`undefined` when missing); enables live reload. */
  fileMtime?(path: string): Promise<number | undefined>;
  /** Files that hold secrets (the local CA's key): exclusive creation with a mode, `lstat`. */
  readonly privateFiles?: PrivateFiles;
  /** The user's home directory. */
  homeDir?(): string | undefined;
  /** The working directory (a relative `CODEX_HOME` is taken from it). */
  cwd?(): string;
  /** The runtime's built-in root certificates, PEM (Node's and Bun's `tls.rootCertificates`). */
  bundledRoots?(): readonly string[];
  /** Command-line arguments after the program name. */
  readonly args?: readonly string[];
  /** Write to standard output; a closed reader is ignored. */
  stdout?(text: string): void;
  /** Write to standard error; a closed reader is ignored. */
  stderr?(text: string): void;
  /** Call `handler` once on SIGINT or SIGTERM. */
  onShutdownSignal?(handler: (signal: string) => void): void;
  /**
   * Start exporting audit events as `[otel]` says (absent: no export). `options.net` is this
   * runtime's {@link net}: the export may post on it.
   */
  startAuditExport?(telemetry: TelemetryConfig, log: Logger, options?: { readonly net?: Net }): Promise<AuditExport>;
  /** Add the OTLP metrics export `[otel] metrics_exporter` asks for to `metrics` (absent: none). */
  startMetricsExport?(telemetry: TelemetryConfig, metrics: ProxyMetrics, log: Logger): Promise<void>;
}

/** The parts of a {@link Runtime} the standalone entry cannot run without. */
type StandaloneNeeds = "name" | "env" | "readTextFile" | "pathKind" | "homeDir" | "args" | "stdout" | "stderr" | "onShutdownSignal";

/** A {@link Runtime} with everything the standalone entry needs. */
export type StandaloneRuntime = Runtime & Required<Pick<Runtime, StandaloneNeeds>>;
