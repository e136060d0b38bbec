/**
 * Standalone OpenTelemetry audit export (docs/behaviour.md §8): with
 * `[otel] exporter = { otlp-http = … }` the proxy posts one log record per decision to the
 * collector, from logger `codex_otel.network_proxy`, with the exact attribute set of the
 * reference; shutdown on SIGTERM flushes what is pending. A dead collector costs nothing but
 * the export; `exporter = "statsig"` starts with one info line. No record carries a URL path or
 * a query.
 *
 * The collector is a loopback node:http server run by the test (helpers/otlp.ts); every host
 * the proxy refuses is under `.example` / `.invalid` (or 127.0.0.2, refused before any dial).
 */
import type { ServerResponse } from "node:http";
import { availableParallelism } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUDIT_WORKER_MIN_CPUS } from "../../src/runtimes/shared/otel-export.ts";
import {
  deadPort,
  type EchoReply,
  networkConfig,
  type Origin,
  pollUntil,
  type ProxyProcess,
  RawClient,
  type RawResponse,
  startOrigin,
  startProxy,
} from "./helpers/index.ts";
import { allRecords, type OtlpLogRecord, type OtlpReceiver, type OtlpReceiverOptions, type OtlpValue, startOtlpReceiver } from "./helpers/otlp.ts";

const DOMAIN = "codex.network_proxy.domain_policy_decision";
const BLOCK = "codex.network_proxy.block_decision";
const SCOPE = "codex_otel.network_proxy";
/** RFC 3339, UTC, exactly milliseconds. */
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** A distinctive path and query: neither may ever reach the collector. */
const PATH = "/secret-path-q7x?q=zzz-query-9k";
const PATH_PARTS = ["secret-path-q7x", "zzz-query-9k"];
/** The export in the proxy's thread, whatever the machine's cores (src/runtimes/shared/otel-export.ts). */
const MAIN_THREAD = { CODEX_NETWORK_PROXY_AUDIT_THREAD: "main" };

let origin: Origin;
const receivers: OtlpReceiver[] = [];
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  origin = await startOrigin();
});

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop("SIGKILL")));
  await Promise.allSettled([origin?.close(), ...receivers.map((r) => r.close())]);
});

/** The decision events (the connection_closed records of §8.6 are ours, checked elsewhere). */
function decisionRecords(rx: OtlpReceiver): OtlpLogRecord[] {
  return allRecords(rx).filter((r) => r.attributes["event.name"] !== "codex.network_proxy.connection_closed");
}

async function receiver(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver(options);
  receivers.push(r);
  return r;
}

/** A proxy config: the [network] table of the scenario plus `otel` lines. */
function config(otel: string, network: Record<string, unknown> = {}): string {
  return (
    networkConfig({ mode: "limited", allowed_domains: ["127.0.0.1"], denied_domains: ["evil.example"], ...network }) +
    `\n[otel]\n${otel}\n`
  );
}

async function start(text: string, env: Record<string, string | undefined> = {}): Promise<ProxyProcess> {
  const p = await startProxy(text, { env });
  proxies.push(p);
  return p;
}

/** One request on a fresh connection; `client` is the `ip:port` the proxy saw it from. */
async function send(proxyPort: number, text: string, opts: { connect?: boolean } = {}): Promise<{ response: RawResponse; client: string }> {
  const c = await RawClient.connect(proxyPort);
  try {
    const client = `127.0.0.1:${c.socket.localPort}`;
    await c.write(text);
    return { response: await c.readResponse({ connect: opts.connect, timeoutMs: 8_000 }), client };
  } finally {
    c.destroy();
  }
}

/** The attribute set one request must produce (event.timestamp checked separately). */
type Expected = Record<string, OtlpValue>;

interface Sent {
  readonly what: string;
  readonly client: string;
  readonly events: Expected[];
}

function domainEvent(over: Expected): Expected {
  return {
    "event.name": DOMAIN,
    "network.policy.scope": "domain_rule",
    "network.policy.decision": "deny",
    "network.policy.source": "baseline_policy",
    "network.transport.protocol": "http",
    "http.request.method": "GET",
    "network.policy.override": false,
    ...over,
  };
}

function blockEvent(over: Expected): Expected {
  return {
    "event.name": BLOCK,
    "network.policy.scope": "mode_guard",
    "network.policy.decision": "deny",
    "network.policy.source": "mode_guard",
    "network.policy.reason": "method_not_allowed",
    "network.transport.protocol": "http",
    "network.policy.override": false,
    ...over,
  };
}

/**
 * The scenario (limited mode, allowed 127.0.0.1, denied evil.example): an allowed GET, a
 * not_allowed, a denied and a not_allowed_local refusal, a POST refused by the mode guard and a
 * CONNECT refused by it. Asserts each answer and returns what each must have produced.
 */
async function exercise(proxy: ProxyProcess): Promise<Sent[]> {
  const o = origin.port;
  const sent: Sent[] = [];

  const allowed = await send(proxy.port, `GET http://127.0.0.1:${o}${PATH} HTTP/1.1\r\nHost: 127.0.0.1:${o}\r\n\r\n`);
  expect(allowed.response.status, allowed.response.text).toBe(200);
  expect((JSON.parse(allowed.response.text) as EchoReply).url).toBe(PATH);
  sent.push({
    what: "allowed GET",
    client: allowed.client,
    events: [domainEvent({ "network.policy.decision": "allow", "network.policy.reason": "allowed", "server.address": "127.0.0.1", "server.port": o, "client.address": allowed.client })],
  });

  const notAllowed = await send(proxy.port, `GET http://not-listed.invalid:8080${PATH} HTTP/1.1\r\nHost: not-listed.invalid:8080\r\n\r\n`);
  expect(notAllowed.response.status).toBe(403);
  expect(notAllowed.response.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
  sent.push({
    what: "not_allowed GET",
    client: notAllowed.client,
    events: [domainEvent({ "network.policy.reason": "not_allowed", "server.address": "not-listed.invalid", "server.port": 8080, "client.address": notAllowed.client })],
  });

  const denied = await send(proxy.port, `GET http://evil.example${PATH} HTTP/1.1\r\nHost: evil.example\r\n\r\n`);
  expect(denied.response.status).toBe(403);
  expect(denied.response.headers["x-proxy-error"]).toBe("blocked-by-denylist");
  sent.push({
    what: "denied GET",
    client: denied.client,
    events: [domainEvent({ "network.policy.reason": "denied", "server.address": "evil.example", "server.port": 80, "client.address": denied.client })],
  });

  const local = await send(proxy.port, `GET http://127.0.0.2:9${PATH} HTTP/1.1\r\nHost: 127.0.0.2:9\r\n\r\n`);
  expect(local.response.status).toBe(403);
  expect(local.response.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
  sent.push({
    what: "not_allowed_local GET",
    client: local.client,
    events: [domainEvent({ "network.policy.reason": "not_allowed_local", "server.address": "127.0.0.2", "server.port": 9, "client.address": local.client })],
  });

  const before = origin.requests.length;
  const post = await send(proxy.port, `POST http://127.0.0.1:${o}${PATH} HTTP/1.1\r\nHost: 127.0.0.1:${o}\r\nContent-Length: 0\r\n\r\n`);
  expect(post.response.status).toBe(403);
  expect(post.response.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
  sent.push({
    what: "limited-mode POST",
    client: post.client,
    events: [
      domainEvent({ "network.policy.decision": "allow", "network.policy.reason": "allowed", "server.address": "127.0.0.1", "server.port": o, "http.request.method": "POST", "client.address": post.client }),
      blockEvent({ "server.address": "127.0.0.1", "server.port": o, "http.request.method": "POST", "client.address": post.client }),
    ],
  });

  const tunnel = await send(proxy.port, `CONNECT 127.0.0.1:${o} HTTP/1.1\r\nHost: 127.0.0.1:${o}\r\n\r\n`, { connect: true });
  expect(tunnel.response.status).toBe(403);
  expect(tunnel.response.headers["x-proxy-error"]).toBe("blocked-by-mitm-required");
  expect(origin.requests.length, "the origin saw neither the POST nor a tunnel").toBe(before);
  sent.push({
    what: "limited-mode CONNECT",
    client: tunnel.client,
    events: [
      domainEvent({
        "network.policy.decision": "allow",
        "network.policy.reason": "allowed",
        "network.transport.protocol": "https_connect",
        "server.address": "127.0.0.1",
        "server.port": o,
        "http.request.method": "CONNECT",
        "client.address": tunnel.client,
      }),
      blockEvent({
        "network.policy.reason": "mitm_required",
        "network.transport.protocol": "https_connect",
        "server.address": "127.0.0.1",
        "server.port": o,
        "http.request.method": "CONNECT",
        "client.address": tunnel.client,
      }),
    ],
  });
  return sent;
}

/** Stop with SIGTERM (shutdown flushes the export) and expect a clean exit. */
async function stopCleanly(proxy: ProxyProcess, deadlineMs = 15_000): Promise<number> {
  const t0 = Date.now();
  const code = await proxy.stop("SIGTERM", deadlineMs);
  expect(code, `exit code; stderr:\n${proxy.stderr()}`).toBe(0);
  return Date.now() - t0;
}

/** Every expected event is there exactly once, with exactly the expected attributes. */
function expectEvents(records: OtlpLogRecord[], sent: Sent[], window: { from: number; to: number }, environment: string): void {
  for (const s of sent) {
    const mine = records.filter((r) => r.attributes["client.address"] === s.client);
    expect(
      mine.map((r) => r.attributes["event.name"]),
      `events of the ${s.what} (client ${s.client})`,
    ).toEqual(s.events.map((e) => e["event.name"]));
    for (const [i, want] of s.events.entries()) {
      const r = mine[i]!;
      expect(r.scope, `scope of ${s.what}`).toBe(SCOPE);
      expect(r.resource["deployment.environment"], "resource deployment.environment").toBe(environment);
      const { "event.timestamp": ts, ...attrs } = r.attributes;
      expect(attrs, `attributes of ${want["event.name"]} for the ${s.what}`).toEqual(want);
      expect(ts).toMatch(TS);
      const t = Date.parse(ts as string);
      expect(t).toBeGreaterThanOrEqual(window.from - 1_000);
      expect(t).toBeLessThanOrEqual(window.to + 1_000);
    }
  }
}

function expectNoPath(receiverText: string): void {
  for (const part of PATH_PARTS) expect(receiverText, `the collector never sees "${part}"`).not.toContain(part);
}

describe("OTLP/HTTP JSON export", () => {
  it("exports one record per decision with the reference's exact attributes; SIGTERM flushes", async () => {
    const rx = await receiver();
    // the export pipeline in a worker thread, asked for (src/runtimes/shared/otel-export.ts)
    const proxy = await start(config(`environment = "e2e-json"\nexporter = { otlp-http = { endpoint = "${rx.endpoint}", protocol = "json" } }`), {
      CODEX_NETWORK_PROXY_AUDIT_THREAD: "worker",
    });
    expect(proxy.stderr()).toContain("audit events exported with otlp-http (json) from a worker thread");
    const from = Date.now();
    const sent = await exercise(proxy);
    const to = Date.now();
    await stopCleanly(proxy);

    expect(rx.posts.length, "the collector got at least one POST").toBeGreaterThan(0);
    for (const p of rx.posts) {
      expect(p.method).toBe("POST");
      expect(p.url).toBe("/v1/logs");
      expect(p.contentType).toBe("application/json");
      // a worker has no runtime sockets: the official transport posts (src/runtimes/shared/otel-provider.ts)
      expect(p.headers["user-agent"]).toMatch(/^OTel-OTLP-Exporter-JavaScript\//);
    }
    // The raw OTLP/JSON shape: resourceLogs[].scopeLogs[].logRecords[], attributes as [{key, value}].
    const first = JSON.parse(rx.posts[0]!.body.toString("utf8")) as {
      resourceLogs: { resource: { attributes: { key: string; value: Record<string, unknown> }[] }; scopeLogs: { scope: { name: string }; logRecords: { attributes: { key: string; value: Record<string, unknown> }[] }[] }[] }[];
    };
    expect(Array.isArray(first.resourceLogs)).toBe(true);
    // the first decision event (connection_closed records, ours, travel in the same stream)
    const raw = first.resourceLogs[0]!.scopeLogs
      .find((s) => s.scope.name === SCOPE)!
      .logRecords.find((r) => !r.attributes.some((a) => a.key === "event.name" && a.value.stringValue === "codex.network_proxy.connection_closed"))!;
    const rawOverride = raw.attributes.find((a) => a.key === "network.policy.override");
    expect(rawOverride?.value).toEqual({ boolValue: false });
    const rawName = raw.attributes.find((a) => a.key === "event.name");
    expect(Object.keys(rawName!.value)).toEqual(["stringValue"]);
    const rawPort = raw.attributes.find((a) => a.key === "server.port");
    expect(Object.keys(rawPort!.value)).toEqual(["intValue"]);

    const records = decisionRecords(rx);
    expectEvents(records, sent, { from, to }, "e2e-json");
    expect(records.every((r) => r.scope === SCOPE)).toBe(true);
    expectNoPath(rx.posts.map((p) => p.body.toString("utf8")).join("\n"));
  });
});

describe("OTLP/HTTP binary protobuf export", () => {
  it("posts application/x-protobuf with the same events", async () => {
    const rx = await receiver();
    const proxy = await start(config(`environment = "e2e-binary"\nexporter = { otlp-http = { endpoint = "${rx.endpoint}", protocol = "binary" } }`));
    // where the machine puts it by default: a worker thread only with cores to spare
    const where = availableParallelism() >= AUDIT_WORKER_MIN_CPUS ? " from a worker thread" : "\n";
    expect(proxy.stderr()).toContain(`audit events exported with otlp-http (binary)${where}`);
    const from = Date.now();
    const sent = await exercise(proxy);
    const to = Date.now();
    await stopCleanly(proxy);

    expect(rx.posts.length).toBeGreaterThan(0);
    for (const p of rx.posts) {
      expect(p.url).toBe("/v1/logs");
      expect(p.contentType).toBe("application/x-protobuf");
    }
    // Decoded with protobufjs and the opentelemetry-proto definitions (helpers/otlp.ts).
    const records = decisionRecords(rx);
    expectEvents(records, sent, { from, to }, "e2e-binary");
    // Protobuf strings are raw UTF-8 in the body, so the path and query would show up verbatim.
    expectNoPath(Buffer.concat(rx.posts.map((p) => p.body)).toString("latin1"));
  });

  it("protocol defaults to binary; configured headers reach the collector", async () => {
    const rx = await receiver();
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}", headers = { x-e2e-collector-key = "k-5150" } } }`));
    const r = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(r.response.status).toBe(403);
    await stopCleanly(proxy);
    expect(rx.posts.length).toBeGreaterThan(0);
    expect(rx.posts.every((p) => p.contentType === "application/x-protobuf")).toBe(true);
    expect(rx.posts.map((p) => p.headers["x-e2e-collector-key"])).toEqual(rx.posts.map(() => "k-5150"));
    const mine = decisionRecords(rx).filter((x) => x.attributes["client.address"] === r.client);
    expect(mine.map((x) => [x.attributes["event.name"], x.attributes["network.policy.reason"], x.resource["deployment.environment"]])).toEqual([[DOMAIN, "not_allowed", "dev"]]);
    expectNoPath(Buffer.concat(rx.posts.map((p) => p.body)).toString("latin1"));
  });
});

describe("where the export goes", () => {
  it("straight to the endpoint, whatever proxy the proxy's own environment names; on the runtime's own sockets in the proxy's thread", async () => {
    const rx = await receiver();
    const nowhere = `http://127.0.0.1:${await deadPort()}`;
    const env = { HTTP_PROXY: nowhere, http_proxy: nowhere, HTTPS_PROXY: nowhere, https_proxy: nowhere, ALL_PROXY: nowhere, all_proxy: nowhere, NO_PROXY: undefined, no_proxy: undefined };
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}" } }`), { ...env, ...MAIN_THREAD });
    const r = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(r.response.status).toBe(403);
    await stopCleanly(proxy);
    const mine = decisionRecords(rx).filter((x) => x.attributes["client.address"] === r.client);
    expect(mine.map((x) => x.attributes["network.policy.reason"])).toEqual(["not_allowed"]);
    // the core's HTTP/1.1 client posts (src/runtimes/shared/otlp-conn-transport.ts), not node:http
    expect(rx.posts.length).toBeGreaterThan(0);
    for (const p of rx.posts) expect(p.headers["user-agent"]).toMatch(/^codex-network-proxy\//);
  });

  it("batch after batch on one kept connection; one the collector closed while idle is replaced, nothing lost", async () => {
    for (const keepAliveTimeoutMs of [60_000, 100]) {
      const rx = await receiver({ keepAliveTimeoutMs });
      const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}" } }`), MAIN_THREAD);
      const clients: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
        expect(r.response.status).toBe(403);
        clients.push(r.client);
        // each record goes in a batch of its own (the batch delay is 1 s)
        const before = rx.posts.length;
        await pollUntil(() => rx.posts.length > before, 5_000, "a batch reaches the collector");
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      await stopCleanly(proxy);
      const mine = decisionRecords(rx).filter((x) => clients.includes(String(x.attributes["client.address"])));
      expect(mine.map((x) => x.attributes["client.address"]).sort()).toEqual([...clients].sort());
      expect(proxy.stderr()).not.toContain("audit records lost");
      expect(rx.connections(), `connections with keepAliveTimeout ${keepAliveTimeoutMs} ms`).toBe(keepAliveTimeoutMs === 100 ? rx.posts.length : 1);
    }
  });

  it("gzip (OTEL_EXPORTER_OTLP_COMPRESSION) goes through the official transport on every runtime", async () => {
    const rx = await receiver();
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}" } }`), { OTEL_EXPORTER_OTLP_COMPRESSION: "gzip" });
    const r = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(r.response.status).toBe(403);
    await stopCleanly(proxy);
    expect(rx.posts.length).toBeGreaterThan(0);
    for (const p of rx.posts) {
      expect(p.headers["content-encoding"]).toBe("gzip");
      expect(p.headers["user-agent"]).toMatch(/^OTel-OTLP-Exporter-JavaScript\//);
    }
    const mine = decisionRecords(rx).filter((x) => x.attributes["client.address"] === r.client);
    expect(mine.map((x) => x.attributes["network.policy.reason"])).toEqual(["not_allowed"]);
  });
});

describe("what the collector answers", () => {
  it("a chunked answer is read whole, and the connection is kept", async () => {
    const chunked = (res: ServerResponse): void => {
      res.writeHead(200, { "content-type": "application/x-protobuf" });
      // an empty ExportLogsServiceResponse partial_success (field 1), in two chunks
      res.write(Buffer.from([0x0a]));
      res.end(Buffer.from([0x00]));
    };
    const rx = await receiver({ script: [chunked, chunked] });
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}" } }`), MAIN_THREAD);
    for (let i = 0; i < 2; i++) {
      const before = rx.posts.length;
      expect((await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`)).response.status).toBe(403);
      await pollUntil(() => rx.posts.length > before, 5_000, "a batch reaches the collector");
    }
    await stopCleanly(proxy);
    expect(rx.connections()).toBe(1);
    expect(proxy.stderr()).not.toContain("audit records lost");
  });

  it("503 with Retry-After is retried: the same batch again, nothing lost", async () => {
    const rx = await receiver({ script: [(res) => res.writeHead(503, { "retry-after": "0" }).end("busy")] });
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}" } }`));
    const r = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(r.response.status).toBe(403);
    await stopCleanly(proxy);
    expect(rx.posts.length).toBeGreaterThanOrEqual(2);
    expect(Buffer.compare(rx.posts[1]!.rawBody, rx.posts[0]!.rawBody)).toBe(0);
    const delivered = decisionRecords({ ...rx, posts: rx.posts.slice(1) }).filter((x) => x.attributes["client.address"] === r.client);
    expect(delivered.map((x) => x.attributes["network.policy.reason"])).toEqual(["not_allowed"]);
    expect(proxy.stderr()).not.toContain("audit records lost");
  });

  it("a redirect is not followed: nothing goes where it points, and the batch counts as lost", async () => {
    const elsewhere = await receiver();
    const rx = await receiver({ script: [(res) => res.writeHead(307, { location: elsewhere.endpoint }).end()] });
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "${rx.endpoint}" } }`));
    const r = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(r.response.status).toBe(403);
    await stopCleanly(proxy);
    expect(rx.posts.length).toBeGreaterThanOrEqual(1);
    expect(elsewhere.posts).toHaveLength(0);
    expect(proxy.stderr()).toMatch(/audit records lost so far: 0 dropped .*, [1-9]\d* in batches the collector did not take/);
  });
});

describe("a collector that is down", () => {
  it("does not hurt proxying, and SIGTERM still exits 0 promptly", async () => {
    const port = await deadPort();
    const proxy = await start(config(`exporter = { otlp-http = { endpoint = "http://127.0.0.1:${port}/v1/logs", protocol = "json" } }`, { mode: "full" }));
    const ok = await send(proxy.port, `GET http://127.0.0.1:${origin.port}${PATH} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
    expect(ok.response.status).toBe(200);
    expect((JSON.parse(ok.response.text) as EchoReply).url).toBe(PATH);
    const refused = await send(proxy.port, `GET http://not-listed.invalid${PATH} HTTP/1.1\r\nHost: not-listed.invalid\r\n\r\n`);
    expect(refused.response.status).toBe(403);
    expect(JSON.parse(refused.response.text)).toMatchObject({ status: "blocked", reason: "not_allowed", host: "not-listed.invalid" });
    const ms = await stopCleanly(proxy, 15_000);
    expect(ms).toBeLessThan(15_000);
  });
});

describe('exporter = "statsig"', () => {
  it("starts fine, logs one info line about statsig, proxies normally", async () => {
    const proxy = await start(config(`exporter = "statsig"`, { mode: "full" }));
    const lines = proxy.stderr().split("\n").filter((l) => /statsig/i.test(l));
    expect(lines, proxy.stderr()).toHaveLength(1);
    expect(lines[0]).toMatch(/\bINFO\b/);
    const ok = await send(proxy.port, `GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
    expect(ok.response.status).toBe(200);
    await stopCleanly(proxy);
  });
});
