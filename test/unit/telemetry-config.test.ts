/**
 * `[otel]` and `[analytics]` (docs/behaviour.md §8): Codex core's defaults (`environment = "dev"`,
 * `exporter = "none"`, `trace_exporter = exporter`, `metrics_exporter = "statsig"`),
 * `[analytics].enabled = false` forcing metrics off, the exporter forms (otlp-http JSON/binary
 * with headers, otlp-grpc, statsig), `log_user_prompt` accepted and ignored, and errors that name
 * `otel.<key>` and the line without ever echoing a header value.
 */
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/core/config/index.ts";
import { parseTelemetryConfig, type OtelExporter, type TelemetryConfig } from "../../src/core/config/telemetry.ts";
import { ConfigError } from "../../src/core/config/types.ts";

const PATH = "/home/u/.codex/config.toml";
const SECRET = "Bearer abc123";

const NONE: OtelExporter = { kind: "none" };
const STATSIG: OtelExporter = { kind: "statsig" };
const DEFAULTS: TelemetryConfig = { environment: "dev", exporter: NONE, traceExporter: NONE, metricsExporter: STATSIG };

const parse = (text: string) => parseTelemetryConfig(text, PATH);

/** Runs `fn`, expecting a ConfigError, and returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("defaults", () => {
  it.each([
    ["an empty file", ""],
    ["only [network]", "[network]\nenabled = true\n"],
    ["an empty [otel]", "[otel]\n"],
    ["an empty [analytics]", "[analytics]\n"],
    ["[analytics] enabled = true", "[analytics]\nenabled = true\n"],
    ["other top-level tables", `model = "m"\n[profiles.a]\nname = "b"\n`],
  ])("%s → environment dev, exporter none, trace = exporter, metrics statsig", (_name, text) => {
    expect(parse(text)).toEqual({ telemetry: DEFAULTS, warnings: [] });
  });
});

describe("resolution", () => {
  const http = (protocol: "binary" | "json", headers: Record<string, string> = {}): OtelExporter => ({ kind: "otlp-http", endpoint: "http://127.0.0.1:4318/v1/logs", protocol, headers });
  const grpc = (headers: Record<string, string> = {}): OtelExporter => ({ kind: "otlp-grpc", endpoint: "http://127.0.0.1:4317", headers });

  it.each<[string, string, Partial<TelemetryConfig>]>([
    ["environment", `[otel]\nenvironment = "prod"\n`, { environment: "prod" }],
    ["exporter statsig: trace follows", `[otel]\nexporter = "statsig"\n`, { exporter: STATSIG, traceExporter: STATSIG }],
    ['exporter "none" spelled out', `[otel]\nexporter = "none"\n`, {}],
    [
      "otlp-http json: trace follows",
      `[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs", protocol = "json" } }\n`,
      { exporter: http("json"), traceExporter: http("json") },
    ],
    [
      "otlp-http binary",
      `[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs", protocol = "binary" } }\n`,
      { exporter: http("binary"), traceExporter: http("binary") },
    ],
    [
      "otlp-http without protocol → binary",
      `[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs" } }\n`,
      { exporter: http("binary"), traceExporter: http("binary") },
    ],
    [
      "otlp-http with headers",
      `[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs", protocol = "json", headers = { authorization = "${SECRET}", "x-team" = "net" } } }\n`,
      { exporter: http("json", { authorization: SECRET, "x-team": "net" }), traceExporter: http("json", { authorization: SECRET, "x-team": "net" }) },
    ],
    [
      "otlp-http as a sub-table",
      `[otel.exporter.otlp-http]\nendpoint = "http://127.0.0.1:4318/v1/logs"\nprotocol = "json"\n[otel.exporter.otlp-http.headers]\nx-key = "v"\n`,
      { exporter: http("json", { "x-key": "v" }), traceExporter: http("json", { "x-key": "v" }) },
    ],
    ["otlp-grpc", `[otel]\nexporter = { otlp-grpc = { endpoint = "http://127.0.0.1:4317" } }\n`, { exporter: grpc(), traceExporter: grpc() }],
    [
      "otlp-grpc with headers",
      `[otel]\nexporter = { otlp-grpc = { endpoint = "http://127.0.0.1:4317", headers = { authorization = "${SECRET}" } } }\n`,
      { exporter: grpc({ authorization: SECRET }), traceExporter: grpc({ authorization: SECRET }) },
    ],
    ["https endpoint", `[otel]\nexporter = { otlp-grpc = { endpoint = "https://collector.example:4317" } }\n`, { exporter: { kind: "otlp-grpc", endpoint: "https://collector.example:4317", headers: {} }, traceExporter: { kind: "otlp-grpc", endpoint: "https://collector.example:4317", headers: {} } }],
    ["trace_exporter set explicitly", `[otel]\nexporter = "statsig"\ntrace_exporter = "none"\n`, { exporter: STATSIG, traceExporter: NONE }],
    ["trace_exporter alone", `[otel]\ntrace_exporter = "statsig"\n`, { traceExporter: STATSIG }],
    ["metrics_exporter none", `[otel]\nmetrics_exporter = "none"\n`, { metricsExporter: NONE }],
    ["metrics_exporter otlp-grpc", `[otel]\nmetrics_exporter = { otlp-grpc = { endpoint = "http://127.0.0.1:4317" } }\n`, { metricsExporter: grpc() }],
    ["metrics do not follow exporter", `[otel]\nexporter = "none"\n`, { metricsExporter: STATSIG }],
    ["[analytics] enabled = false → metrics none", `[analytics]\nenabled = false\n`, { metricsExporter: NONE }],
    ["[analytics] enabled = false beats metrics_exporter statsig", `[analytics]\nenabled = false\n\n[otel]\nmetrics_exporter = "statsig"\n`, { metricsExporter: NONE }],
    [
      "[analytics] enabled = false beats an otlp metrics exporter (others untouched)",
      `[otel]\nexporter = "statsig"\nmetrics_exporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/metrics" } }\n[analytics]\nenabled = false\n`,
      { exporter: STATSIG, traceExporter: STATSIG, metricsExporter: NONE },
    ],
    [
      "[analytics] enabled = true keeps metrics_exporter",
      `[analytics]\nenabled = true\n[otel]\nmetrics_exporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs", protocol = "json" } }\n`,
      { metricsExporter: http("json") },
    ],
    ["log_user_prompt = true is accepted and ignored", `[otel]\nlog_user_prompt = true\n`, {}],
    ["log_user_prompt = false is accepted and ignored", `[otel]\nlog_user_prompt = false\nenvironment = "staging"\n`, { environment: "staging" }],
  ])("%s", (_name, text, want) => {
    const { telemetry, warnings } = parse(text);
    expect(telemetry).toEqual({ ...DEFAULTS, ...want });
    expect(warnings).toEqual([]);
  });

  it("log_user_prompt leaves no trace in the result", () => {
    const { telemetry } = parse(`[otel]\nlog_user_prompt = true\n`);
    expect(Object.keys(telemetry).sort()).toEqual(["environment", "exporter", "metricsExporter", "traceExporter"]);
    expect(JSON.stringify(telemetry)).not.toMatch(/prompt/i);
  });

  it("[otel] and [analytics] produce no [network] warnings (they are known top-level tables)", () => {
    const text = `[network]\nenabled = true\n\n[otel]\nenvironment = "prod"\nexporter = "statsig"\n\n[analytics]\nenabled = false\n`;
    expect(parseConfigText(text, PATH).warnings).toEqual([]);
    expect(parse(text).warnings).toEqual([]);
  });
});

describe("unknown keys", () => {
  it("an unknown [otel] key is a warning naming otel.<key>, not an error", () => {
    const { telemetry, warnings } = parse(`[otel]\nexporterr = "statsig"\nenvironment = "prod"\n`);
    expect(telemetry).toEqual({ ...DEFAULTS, environment: "prod" });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("otel.exporterr");
    expect(warnings[0]).toContain(PATH);
  });
});

describe("errors name otel.<key> and the line", () => {
  const HTTP = (body: string) => `{ otlp-http = { ${body} } }`;
  it.each<[string, string, string, number, RegExp?]>([
    ["a bad exporter string", `[otel]\nexporter = "otlp"\n`, "otel.exporter", 2, /"otlp"/],
    ["an exporter of the wrong type", `[otel]\nenvironment = "x"\nexporter = 5\n`, "otel.exporter", 3],
    ["an exporter array", `[otel]\nexporter = ["none"]\n`, "otel.exporter", 2],
    ["a bad trace_exporter", `[otel]\nexporter = "none"\n\ntrace_exporter = "jaeger"\n`, "otel.trace_exporter", 4, /"jaeger"/],
    ["a bad metrics_exporter", `[otel]\nmetrics_exporter = "prometheus"\n`, "otel.metrics_exporter", 2, /"prometheus"/],
    ["an unknown exporter table key", `[otel]\nexporter = { otlp-https = { endpoint = "http://127.0.0.1:4318" } }\n`, "otel.exporter", 2, /otlp-https/],
    ["two exporter kinds at once", `[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:4318" }, otlp-grpc = { endpoint = "http://127.0.0.1:4317" } }\n`, "otel.exporter", 2],
    ["an empty exporter table", `[otel]\nexporter = {}\n`, "otel.exporter", 2],
    ["an exporter body that is not a table", `[otel]\nexporter = { otlp-http = "http://127.0.0.1:4318" }\n`, "otel.exporter", 2],
    ["a missing endpoint", `[otel]\nexporter = ${HTTP(`protocol = "json"`)}\n`, "otel.exporter", 2, /endpoint/],
    ["a missing otlp-grpc endpoint", `[otel]\nexporter = { otlp-grpc = { headers = { a = "b" } } }\n`, "otel.exporter", 2, /endpoint/],
    ["an endpoint without scheme", `[otel]\nexporter = ${HTTP(`endpoint = "127.0.0.1:4318"`)}\n`, "otel.exporter", 2, /endpoint/],
    ["an endpoint with another scheme", `[otel]\nexporter = ${HTTP(`endpoint = "ftp://127.0.0.1/logs"`)}\n`, "otel.exporter", 2, /endpoint/],
    ["an empty endpoint", `[otel]\nexporter = ${HTTP(`endpoint = ""`)}\n`, "otel.exporter", 2, /endpoint/],
    ["an endpoint of the wrong type", `[otel]\nexporter = ${HTTP(`endpoint = 4318`)}\n`, "otel.exporter", 2, /endpoint/],
    ["an invalid endpoint in a sub-table", `[otel]\nenvironment = "x"\n[otel.exporter.otlp-http]\nendpoint = "nope"\n`, "otel.exporter", 3, /endpoint/],
    ["a bad protocol", `[otel]\nexporter = ${HTTP(`endpoint = "http://127.0.0.1:4318", protocol = "grpc"`)}\n`, "otel.exporter", 2, /protocol/],
    ["a protocol of the wrong type", `[otel]\nexporter = ${HTTP(`endpoint = "http://127.0.0.1:4318", protocol = true`)}\n`, "otel.exporter", 2, /protocol/],
    ["a non-string header", `[otel]\nexporter = ${HTTP(`endpoint = "http://127.0.0.1:4318", headers = { x-retries = 3 }`)}\n`, "otel.exporter", 2, /headers/],
    ["headers that are not a table", `[otel]\nexporter = ${HTTP(`endpoint = "http://127.0.0.1:4318", headers = "a: b"`)}\n`, "otel.exporter", 2, /headers/],
    ["a non-string otlp-grpc header", `[otel]\nmetrics_exporter = { otlp-grpc = { endpoint = "http://127.0.0.1:4317", headers = { a = false } } }\n`, "otel.metrics_exporter", 2, /headers/],
    ["environment of the wrong type", `[otel]\nenvironment = 1\n`, "otel.environment", 2, /string/],
    ["environment as a table", `[otel.environment]\nname = "prod"\n`, "otel.environment", 1, /string/],
    ["log_user_prompt of the wrong type", `[otel]\nlog_user_prompt = "yes"\n`, "otel.log_user_prompt", 2, /boolean/],
    ["analytics.enabled of the wrong type", `[otel]\n\n[analytics]\nenabled = "no"\n`, "analytics.enabled", 4, /boolean/],
  ])("%s", (_name, text, key, line, detail) => {
    const e = configError(() => parse(text));
    expect(e.key).toBe(key);
    expect(e.line).toBe(line);
    expect(e.message).toContain(`${key}:`);
    expect(e.message).toContain(`${PATH}:${line}`);
    if (detail) expect(e.message).toMatch(detail);
  });

  it.each([
    ["otel", `otel = "statsig"\n`],
    ["analytics", `analytics = false\n`],
  ])("a non-table %s names the table itself (no stray leading dot)", (table, text) => {
    const e = configError(() => parse(text));
    expect(e.message).toContain(`${PATH}:1`);
    expect(e.message).toMatch(new RegExp(`: ${table}: expected table`));
    expect(e.key).toBe(table);
  });
});

describe("an error about an exporter table never echoes a header value", () => {
  const H = `headers = { authorization = "${SECRET}" }`;
  it.each([
    ["a bad endpoint", `exporter = { otlp-http = { endpoint = "ftp://127.0.0.1", ${H} } }`],
    ["a missing endpoint", `exporter = { otlp-http = { protocol = "json", ${H} } }`],
    ["a bad protocol", `exporter = { otlp-http = { endpoint = "http://127.0.0.1:4318", protocol = "xml", ${H} } }`],
    ["a non-string header next to the secret", `exporter = { otlp-http = { endpoint = "http://127.0.0.1:4318", headers = { authorization = "${SECRET}", x-n = 5 } } }`],
    ["an unknown exporter kind", `exporter = { otlp-htttp = { endpoint = "http://127.0.0.1:4318", ${H} } }`],
    ["an extra key beside the kind", `exporter = { otlp-http = { endpoint = "http://127.0.0.1:4318", ${H} }, extra = 1 }`],
    ["a bad otlp-grpc endpoint", `trace_exporter = { otlp-grpc = { endpoint = "grpc://127.0.0.1:4317", ${H} } }`],
    ["a bad metrics exporter", `metrics_exporter = { otlp-grpc = { ${H} } }`],
  ])("%s", (_name, line) => {
    const e = configError(() => parse(`[otel]\n${line}\n`));
    expect(e.message).not.toContain(SECRET);
    expect(e.message).not.toContain("abc123");
    expect(JSON.stringify({ ...e, message: e.message, stack: e.stack })).not.toContain("abc123");
  });
});

describe("unknown keys inside an exporter body", () => {
  it("are warned about by name (a typo like protocl must not pass silently)", () => {
    const text = `[otel]\nexporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs", protocl = "json" } }\n`;
    const { telemetry, warnings } = parseTelemetryConfig(text, "/cfg.toml");
    expect(telemetry.exporter).toMatchObject({ kind: "otlp-http", protocol: "binary" });
    expect(warnings).toEqual(["/cfg.toml: otel.exporter: otlp-http.protocl: unknown key, ignored"]);
  });
});
