/**
 * The proxy's metrics (docs/behaviour.md §7.5), kept with the OpenTelemetry metrics SDK:
 * decisions by protocol, decision and reason; open client connections and tunnels; bytes relayed
 * each way by protocol; and the latency of a decision, of DNS vetting and of an upstream connect.
 * Host names are never attributes (their number is unbounded); protocols, decisions and reasons
 * are (a decider's free-form reason is reported as `decider`).
 *
 * The SDK is loaded after the proxy starts listening, not before (it costs tens of
 * milliseconds), and so are the OTLP exporter's readers: what happens meanwhile is kept, up to
 * {@link MAX_EARLY_EVENTS}, and recorded once it is there. Bytes are observed when collected:
 * those of ended connections plus the live counts of open ones, so a long tunnel shows as it
 * goes. `GET /metrics` serialises it with the official Prometheus serializer; an
 * OTLP exporter, when configured, reads the same provider.
 *
 * @module
 */
import type { Histogram } from "@opentelemetry/api";
import type { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import type { DecisionRecord } from "../audit/events.ts";

/** Longest a shutdown waits for the last metrics export. */
export const SHUTDOWN_FLUSH_MS = 3_000;

/** Events kept while the SDK loads; later ones are dropped (and counted in the log). */
export const MAX_EARLY_EVENTS = 4_096;

/** `service.name` of the metrics' resource. */
export const SERVICE_NAME = "codex-network-proxy";

/** The instrumentation scope the instruments are made under. */
export const METER_NAME = "codex_network_proxy";

/** Reasons reported as themselves; any other (a decider's own) is reported as `decider`. */
const KNOWN_REASONS: ReadonlySet<string> = new Set([
  "allowed",
  "not_allowed",
  "not_allowed_local",
  "denied",
  "method_not_allowed",
  "mitm_required",
  "mitm_hook_denied",
  "mitm_handshake_failed",
  "limited_mode_exception",
  "proxy_disabled",
  "proxy_loop",
  "decider_error",
  "decider_timeout",
  "unix_socket_unsupported",
  "too_many_connections",
  "too_many_tunnels",
  "rate_limited",
]);

/** Bucket bounds of the latency histograms, in seconds: 50 µs to 10 s. */
export const LATENCY_BUCKETS_S: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Which latency a sample measures. */
export type LatencyKind = "decision" | "dns" | "connect";

/** What the gauges read when collected. */
export interface OpenCounts {
  readonly connections: number;
  readonly tunnels: number;
}

type Event = { readonly kind: "latency"; readonly latency: LatencyKind; readonly seconds: number; readonly protocol?: string };

/** Separates the parts of a decision counter's key (never in a protocol, decision or reason). */
const KEY_SEPARATOR = "\u0000";

/** Bytes each way of one protocol. */
export interface ByteCounts {
  toOrigin: number;
  toClient: number;
}

/** A reader, or a function that makes one (called when the SDK loads, after the listeners are up). */
export type ReaderSource = MetricReader | (() => Promise<MetricReader | undefined>);

/** The instruments, once the SDK is loaded. */
interface Instruments {
  readonly provider: MeterProvider;
  readonly reader: MetricReader & { collectNow(): ReturnType<MetricReader["collect"]> };
  readonly latency: Readonly<Record<LatencyKind, Histogram>>;
}

/** The metrics of one proxy. */
export class ProxyMetrics {
  private instruments: Instruments | undefined;
  private loading: Promise<Instruments> | undefined;
  private early: Event[] = [];
  private dropped = 0;
  /** Told how many events were dropped while the SDK loaded (the log). */
  onDropped?: (count: number) => void;
  private open: () => OpenCounts = () => ({ connections: 0, tunnels: 0 });
  /** Decisions so far, by `protocol`, `decision` and `reason` joined with {@link KEY_SEPARATOR}. */
  private readonly decisions = new Map<string, number>();
  /** Bytes of connections that ended (and of datagrams), by protocol. */
  private readonly ended = new Map<string, ByteCounts>();
  /** Bytes of the connections open now, by protocol. */
  private live: () => ReadonlyMap<string, ByteCounts> = () => new Map();
  private readonly extraReaders: ReaderSource[] = [];

  /** Read the open connections and tunnels from `counts` (the running server's). */
  observeOpen(counts: () => OpenCounts): void {
    this.open = counts;
  }

  /** Read the bytes of the open client connections from `counts` (so long tunnels show as they go). */
  observeLiveBytes(counts: () => ReadonlyMap<string, ByteCounts>): void {
    this.live = counts;
  }

  /**
   * Also export through `reader` (an OTLP periodic reader), or the reader `reader()` makes when
   * the SDK loads (so an exporter costs nothing before the listeners are up). Call before
   * {@link start}.
   */
  addReader(reader: ReaderSource): void {
    this.extraReaders.push(reader);
  }

  /**
   * One decision record: counted in a plain map (a string key and an increment on the request
   * path) that the SDK's observable counter reads when collected; the SDK's own counter would
   * hash the three attributes on every request.
   */
  decision(r: DecisionRecord): void {
    const key = r.protocol + KEY_SEPARATOR + r.decision + KEY_SEPARATOR + (KNOWN_REASONS.has(r.reason) ? r.reason : "decider");
    this.decisions.set(key, (this.decisions.get(key) ?? 0) + 1);
  }

  /** One latency sample, in milliseconds. */
  latency(latency: LatencyKind, ms: number, protocol?: string): void {
    this.push({ kind: "latency", latency, seconds: ms / 1000, protocol });
  }

  /** Bytes relayed one way for `protocol`, by a connection that ended or a datagram. */
  bytes(protocol: string, direction: "to_origin" | "to_client", bytes: number): void {
    if (bytes <= 0) return;
    let counts = this.ended.get(protocol);
    if (!counts) this.ended.set(protocol, (counts = { toOrigin: 0, toClient: 0 }));
    if (direction === "to_origin") counts.toOrigin += bytes;
    else counts.toClient += bytes;
  }

  /** Load the SDK (once) and record what was kept meanwhile. */
  start(): Promise<void> {
    this.loading ??= this.load();
    return this.loading.then(() => undefined);
  }

  /** `GET /metrics`: the Prometheus text format, from the official serializer. */
  async prometheusText(): Promise<string> {
    this.loading ??= this.load();
    const { reader } = await this.loading;
    const { resourceMetrics } = await reader.collectNow();
    // the serializer alone: the package's index also loads its HTTP server (node:http)
    const { PrometheusSerializer } = await import("@opentelemetry/exporter-prometheus/build/src/PrometheusSerializer.js");
    return new PrometheusSerializer().serialize(resourceMetrics);
  }

  /**
   * Flush the extra readers (a last OTLP export) and stop, waiting at most `ms`: a dead
   * collector must not hold the exit.
   */
  async shutdown(ms = SHUTDOWN_FLUSH_MS): Promise<void> {
    const loaded = await this.loading?.catch(() => undefined); // an SDK that failed to load has nothing to flush
    if (!loaded) return;
    const { provider } = loaded;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([provider.shutdown().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  /** Events dropped while the SDK loaded. */
  get droppedEarly(): number {
    return this.dropped;
  }

  private push(e: Event): void {
    const i = this.instruments;
    if (i) return record(i, e);
    if (this.early.length < MAX_EARLY_EVENTS) this.early.push(e);
    else this.dropped++;
  }

  private async load(): Promise<Instruments> {
    const [sdk, { resourceFromAttributes }] = await Promise.all([import("@opentelemetry/sdk-metrics"), import("@opentelemetry/resources")]);
    /** A reader the proxy collects from itself, for `GET /metrics`. */
    class PullReader extends sdk.MetricReader {
      collectNow() {
        return this.collect();
      }
      protected override async onForceFlush(): Promise<void> {}
      protected override async onShutdown(): Promise<void> {}
    }
    const reader = new PullReader();
    const extra = await Promise.all(this.extraReaders.map((r) => (typeof r === "function" ? r() : r)));
    const provider = new sdk.MeterProvider({
      resource: resourceFromAttributes({ "service.name": SERVICE_NAME }),
      readers: [reader, ...extra.filter((r): r is MetricReader => r !== undefined)],
      views: [
        {
          instrumentType: sdk.InstrumentType.HISTOGRAM,
          aggregation: { type: sdk.AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [...LATENCY_BUCKETS_S] } },
        },
      ],
    });
    const meter = provider.getMeter(METER_NAME);
    const histogram = (name: string, description: string) => meter.createHistogram(name, { description, unit: "s" });
    const instruments: Instruments = {
      provider,
      reader,

      latency: {
        decision: histogram("network_proxy.decision.duration", "Time from a request's arrival at the decision step to its verdict"),
        dns: histogram("network_proxy.dns.duration", "Time DNS vetting took"),
        connect: histogram("network_proxy.connect.duration", "Time an upstream connect took"),
      },
    };
    meter
      .createObservableCounter("network_proxy.decisions", { description: "Policy decisions, by protocol, decision and reason" })
      .addCallback((o) => {
        for (const [key, count] of this.decisions) {
          const [protocol, decision, reason] = key.split(KEY_SEPARATOR);
          o.observe(count, { protocol, decision, reason });
        }
      });
    meter
      .createObservableUpDownCounter("network_proxy.open_connections", { description: "Open client connections, all listeners" })
      .addCallback((o) => o.observe(this.open().connections));
    meter
      .createObservableUpDownCounter("network_proxy.open_tunnels", { description: "Open tunnels (CONNECT, SOCKS5, upgrades)" })
      .addCallback((o) => o.observe(this.open().tunnels));
    meter
      .createObservableCounter("network_proxy.bytes", { description: "Bytes through client connections, by listener protocol and direction", unit: "By" })
      .addCallback((o) => {
        const totals = new Map<string, ByteCounts>();
        for (const source of [this.ended, this.live()]) {
          for (const [protocol, c] of source) {
            const t = totals.get(protocol) ?? { toOrigin: 0, toClient: 0 };
            t.toOrigin += c.toOrigin;
            t.toClient += c.toClient;
            totals.set(protocol, t);
          }
        }
        for (const [protocol, t] of totals) {
          o.observe(t.toOrigin, { protocol, direction: "to_origin" });
          o.observe(t.toClient, { protocol, direction: "to_client" });
        }
      });
    this.instruments = instruments;
    for (const e of this.early) record(instruments, e);
    this.early = [];
    if (this.dropped > 0) this.onDropped?.(this.dropped);
    return instruments;
  }
}

function record(i: Instruments, e: Event): void {
  i.latency[e.latency].record(e.seconds, e.protocol === undefined ? NO_ATTRIBUTES : protocolAttributes(e.protocol));
}

const NO_ATTRIBUTES = Object.freeze({});
/** One attributes object per protocol, made once. */
const PROTOCOL_ATTRIBUTES = new Map<string, Readonly<{ protocol: string }>>();
function protocolAttributes(protocol: string): Readonly<{ protocol: string }> {
  let a = PROTOCOL_ATTRIBUTES.get(protocol);
  if (!a) PROTOCOL_ATTRIBUTES.set(protocol, (a = Object.freeze({ protocol })));
  return a;
}
