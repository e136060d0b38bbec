/**
 * The `[otel]` and `[analytics]` tables of the standalone config (docs/behaviour.md §8): OTEL
 * resolution follows Codex core's defaults — `environment = "dev"`, `exporter = "none"`,
 * `trace_exporter = exporter`, `metrics_exporter = "statsig"` — and `[analytics].enabled =
 * false` turns metrics export off. `log_user_prompt` is accepted and ignored. The proxy emits
 * log records (audit events, `exporter`) and metrics (`metrics_exporter`); the trace settings
 * are validated, then unused.
 *
 * @module
 */
import { parse } from "smol-toml";
import { findKeyLine } from "./key-line.ts";
import { isTomlTable, tomlTypeName } from "./toml-value.ts";
import { ConfigError } from "./error.ts";

/** Where telemetry goes. `statsig` has no public endpoint outside the reference's vendor. */
export type OtelExporter =
  | { readonly kind: "none" }
  | { readonly kind: "statsig" }
  | { readonly kind: "otlp-http"; readonly endpoint: string; readonly protocol: "binary" | "json"; readonly headers: Readonly<Record<string, string>> }
  | { readonly kind: "otlp-grpc"; readonly endpoint: string; readonly headers: Readonly<Record<string, string>> };

/** The resolved telemetry settings. */
export interface TelemetryConfig {
  readonly environment: string;
  readonly exporter: OtelExporter;
  readonly traceExporter: OtelExporter;
  readonly metricsExporter: OtelExporter;
}

/** Keys of `[otel]`. */
const OTEL_KEYS = ["environment", "exporter", "trace_exporter", "metrics_exporter", "log_user_prompt"] as const;

/** Parse `[otel]` and `[analytics]` of the config text. Throws {@link ConfigError} naming key and line. */
export function parseTelemetryConfig(text: string, path: string): { telemetry: TelemetryConfig; warnings: string[] } {
  const root = parse(text) as Record<string, unknown>; // syntax errors were reported by parseConfigText
  const warnings: string[] = [];
  const fail = (table: string, key: string, detail: string): ConfigError => {
    const line = findKeyLine(text, table, key);
    const name = table === "" ? key : `${table}.${key}`; // a top-level table names itself
    return new ConfigError(`${line === undefined ? path : `${path}:${line}`}: ${name}: ${detail}`, name, line);
  };
  const otel = tableOf(root, "otel", fail);
  const analytics = tableOf(root, "analytics", fail);
  for (const key of Object.keys(otel)) {
    if (!(OTEL_KEYS as readonly string[]).includes(key)) warnings.push(`${path}: otel.${key}: unknown key, ignored`);
  }
  const environment = otel.environment ?? "dev";
  if (typeof environment !== "string") throw fail("otel", "environment", `expected string, got ${tomlTypeName(environment)}`);
  if (otel.log_user_prompt !== undefined && typeof otel.log_user_prompt !== "boolean") {
    throw fail("otel", "log_user_prompt", `expected boolean, got ${tomlTypeName(otel.log_user_prompt)}`);
  }
  const warn = (key: string, detail: string): void => void warnings.push(`${path}: otel.${key}: ${detail}`);
  const exporter = parseExporter(otel.exporter ?? "none", "exporter", fail, warn);
  const traceExporter = otel.trace_exporter === undefined ? exporter : parseExporter(otel.trace_exporter, "trace_exporter", fail, warn);
  let metricsExporter = parseExporter(otel.metrics_exporter ?? "statsig", "metrics_exporter", fail, warn);
  const enabled = analytics.enabled;
  if (enabled !== undefined && typeof enabled !== "boolean") throw fail("analytics", "enabled", `expected boolean, got ${tomlTypeName(enabled)}`);
  if (enabled === false) metricsExporter = { kind: "none" };
  return { telemetry: { environment, exporter, traceExporter, metricsExporter }, warnings };
}

type Fail = (table: string, key: string, detail: string) => ConfigError;

/** Keys an exporter body may have (others are warned about: typos must not pass silently). */
const EXPORTER_KEYS: Record<"otlp-http" | "otlp-grpc", readonly string[]> = {
  "otlp-http": ["endpoint", "protocol", "headers"],
  "otlp-grpc": ["endpoint", "headers"],
};

function tableOf(root: Record<string, unknown>, name: string, fail: Fail): Record<string, unknown> {
  const t = root[name];
  if (t === undefined) return {};
  if (!isTomlTable(t)) throw fail("", name, `expected table, got ${tomlTypeName(t)}`);
  return t;
}

/** `"none"`, `"statsig"`, `{ otlp-http = { endpoint, protocol, headers } }` or `{ otlp-grpc = { endpoint, headers } }`. */
function parseExporter(value: unknown, key: string, fail: Fail, warn: (key: string, detail: string) => void): OtelExporter {
  const allowed = `"none", "statsig", { otlp-http = { endpoint = "…", protocol = "binary"|"json" } } or { otlp-grpc = { endpoint = "…" } }`;
  if (value === "none" || value === "statsig") return { kind: value };
  if (!isTomlTable(value)) return badExporter();
  const kinds = Object.keys(value);
  if (kinds.length !== 1 || (kinds[0] !== "otlp-http" && kinds[0] !== "otlp-grpc")) return badExporter();
  const kind = kinds[0];
  const body = value[kind];
  if (!isTomlTable(body)) throw fail("otel", key, `${kind}: expected a table with an endpoint, got ${tomlTypeName(body)}`);
  const endpoint = body.endpoint;
  if (typeof endpoint !== "string" || !/^https?:\/\/\S+$/.test(endpoint)) {
    throw fail("otel", key, `${kind}.endpoint: expected an http(s) URL, got ${JSON.stringify(endpoint ?? null)}`);
  }
  for (const k of Object.keys(body)) {
    if (!EXPORTER_KEYS[kind].includes(k)) warn(key, `${kind}.${k}: unknown key, ignored`);
  }
  const headers: Record<string, string> = {};
  if (body.headers !== undefined) {
    if (!isTomlTable(body.headers)) throw fail("otel", key, `${kind}.headers: expected a table of strings, got ${tomlTypeName(body.headers)}`);
    for (const [name, v] of Object.entries(body.headers)) {
      if (typeof v !== "string") throw fail("otel", key, `${kind}.headers.${name}: expected string, got ${tomlTypeName(v)}`);
      headers[name] = v;
    }
  }
  if (kind === "otlp-grpc") return { kind, endpoint, headers };
  const protocol = body.protocol ?? "binary";
  if (protocol !== "binary" && protocol !== "json") {
    throw fail("otel", key, `otlp-http.protocol: ${JSON.stringify(protocol)} is not "binary" or "json"`);
  }
  return { kind, endpoint, protocol, headers };

  function badExporter(): never {
    // Never echo a table: its headers may hold credentials.
    const shown = typeof value === "string" ? JSON.stringify(value) : isTomlTable(value) ? `a table with keys ${JSON.stringify(Object.keys(value))}` : tomlTypeName(value);
    throw fail("otel", key, `${shown} is not an exporter (expected ${allowed})`);
  }
}
