/**
 * An OTLP/HTTP logs receiver on 127.0.0.1 (what the proxy's audit export posts to) and decoders
 * for what it received: OTLP/JSON and OTLP binary protobuf, both flattened to the same shape.
 *
 * Protobuf is decoded with `protobufjs` (installed as a dependency of `@grpc/proto-loader`) and
 * the message definitions of opentelemetry-proto below (field numbers as in
 * `opentelemetry/proto/{common,resource,logs}/v1` and `collector/logs/v1`), so the check does not
 * rely on the SDK's own serializer.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import { gunzipSync } from "node:zlib";
import protobuf from "protobufjs";
import { withDeadline } from "./util.ts";

/** One POST the receiver got. */
export interface OtlpPost {
  readonly method: string;
  /** Request target as sent (path and query). */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** `content-type` without parameters, lower-cased. */
  readonly contentType: string;
  /** The body, gunzipped when it came with `content-encoding: gzip`. */
  readonly body: Buffer;
  /** The body exactly as received. */
  readonly rawBody: Buffer;
}

/** A running receiver. */
export interface OtlpReceiver {
  readonly port: number;
  /** `http://127.0.0.1:PORT/v1/logs` */
  readonly endpoint: string;
  /** Every request received, in order (any path). */
  readonly posts: OtlpPost[];
  /** How many connections it accepted. */
  connections(): number;
  close(): Promise<void>;
}

/** Options of {@link startOtlpReceiver}. */
export interface OtlpReceiverOptions {
  /**
   * Answers of the first requests, in order: the n-th request (from 0) is answered by
   * `script[n]` when there is one, else as usual. The request is recorded either way.
   */
  readonly script?: ReadonlyArray<(res: ServerResponse) => void>;
  /** How long the receiver keeps an idle connection open (node:http's `keepAliveTimeout`; its default: 5 s). */
  readonly keepAliveTimeoutMs?: number;
}

/**
 * Start the receiver: `POST /v1/logs` (and `POST /v1/metrics`) answers 200 with the request's content-type, body `{}`
 * for JSON and empty for protobuf (an empty `ExportLogsServiceResponse`); anything else 404.
 */
export async function startOtlpReceiver(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const posts: OtlpPost[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
      let body = rawBody;
      if ((req.headers["content-encoding"] ?? "").toLowerCase() === "gzip") {
        try {
          body = gunzipSync(rawBody);
        } catch {
          body = rawBody;
        }
      }
      posts.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, contentType, body, rawBody });
      const scripted = options.script?.[posts.length - 1];
      if (scripted !== undefined) return scripted(res);
      if (req.method !== "POST" || !["/v1/logs", "/v1/metrics"].includes((req.url ?? "").split("?")[0]!)) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found");
        return;
      }
      const json = contentType === "application/json";
      const answer = json ? "{}" : "";
      res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/octet-stream", "content-length": Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  let connections = 0;
  server.on("connection", () => connections++);
  server.on("clientError", (_err, socket) => socket.destroy());
  if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
  const port = await withDeadline(
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const a = server.address();
        if (a === null || typeof a === "string") reject(new Error("no address"));
        else resolve(a.port);
      });
    }),
    5_000,
    "OTLP receiver listen",
  );
  return {
    port,
    endpoint: `http://127.0.0.1:${port}/v1/logs`,
    posts,
    connections: () => connections,
    async close() {
      server.closeAllConnections();
      await withDeadline(new Promise<void>((r) => server.close(() => r())), 5_000, "OTLP receiver close");
    },
  };
}

/** An attribute value, flattened: `stringValue` → string, `intValue`/`doubleValue` → number, `boolValue` → boolean. */
export type OtlpValue = string | number | boolean | null | OtlpValue[] | { [k: string]: OtlpValue };

/** One log record with its resource and scope. */
export interface OtlpLogRecord {
  readonly resource: Record<string, OtlpValue>;
  readonly scope: string;
  readonly eventName: string | undefined;
  readonly severityText: string | undefined;
  readonly body: OtlpValue | undefined;
  readonly attributes: Record<string, OtlpValue>;
}

/** Every log record in a POST, JSON or protobuf as its content-type says. */
export function decodeOtlpLogs(post: OtlpPost): OtlpLogRecord[] {
  if (post.contentType === "application/json") return flatten(JSON.parse(post.body.toString("utf8")) as RequestShape);
  if (post.contentType === "application/x-protobuf") return flatten(decodeProtobufRequest(post.body));
  throw new Error(`unexpected OTLP content-type ${JSON.stringify(post.contentType)}`);
}

/** Every log record in every POST to /v1/logs. */
export function allRecords(receiver: OtlpReceiver): OtlpLogRecord[] {
  return receiver.posts.filter((p) => p.url.split("?")[0] === "/v1/logs").flatMap(decodeOtlpLogs);
}

// --- shapes shared by OTLP/JSON and protobufjs's toObject (camelCase names) ---

interface AnyValueShape {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number | string;
  bytesValue?: string;
  arrayValue?: { values?: AnyValueShape[] };
  kvlistValue?: { values?: KeyValueShape[] };
}
interface KeyValueShape {
  key: string;
  value?: AnyValueShape;
}
interface RequestShape {
  resourceLogs?: {
    resource?: { attributes?: KeyValueShape[] };
    scopeLogs?: {
      scope?: { name?: string };
      logRecords?: { eventName?: string; severityText?: string; body?: AnyValueShape; attributes?: KeyValueShape[] }[];
    }[];
  }[];
}

function flatten(req: RequestShape): OtlpLogRecord[] {
  const out: OtlpLogRecord[] = [];
  for (const rl of req.resourceLogs ?? []) {
    const resource = attributesOf(rl.resource?.attributes);
    for (const sl of rl.scopeLogs ?? []) {
      for (const lr of sl.logRecords ?? []) {
        out.push({
          resource,
          scope: sl.scope?.name ?? "",
          eventName: lr.eventName || undefined,
          severityText: lr.severityText || undefined,
          body: lr.body === undefined ? undefined : valueOf(lr.body),
          attributes: attributesOf(lr.attributes),
        });
      }
    }
  }
  return out;
}

function attributesOf(kvs: KeyValueShape[] | undefined): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = kv.value === undefined ? null : valueOf(kv.value);
  return out;
}

function valueOf(v: AnyValueShape): OtlpValue {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue); // OTLP/JSON may send int64 as a string
  if (v.doubleValue !== undefined) return Number(v.doubleValue);
  if (v.bytesValue !== undefined) return v.bytesValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf);
  if (v.kvlistValue !== undefined) return attributesOf(v.kvlistValue.values);
  return null; // an AnyValue with no value set
}

// --- protobuf ---

const OTLP_LOGS_PROTO = `
syntax = "proto3";
package otlp;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message LogRecord {
  fixed64 time_unix_nano = 1;
  fixed64 observed_time_unix_nano = 11;
  int32 severity_number = 2;
  string severity_text = 3;
  AnyValue body = 5;
  repeated KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7;
  fixed32 flags = 8;
  bytes trace_id = 9;
  bytes span_id = 10;
  string event_name = 12;
}
message ScopeLogs { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; string schema_url = 3; }
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; string schema_url = 3; }
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
`;

let requestType: protobuf.Type | undefined;

function decodeProtobufRequest(body: Buffer): RequestShape {
  requestType ??= protobuf.parse(OTLP_LOGS_PROTO).root.lookupType("otlp.ExportLogsServiceRequest");
  const message = requestType.decode(body);
  // defaults: false, so unset fields stay absent; oneof members that are set (bool false too) are kept.
  return requestType.toObject(message, { longs: String, bytes: String, defaults: false, arrays: false }) as RequestShape;
}
