/**
 * Audit events through the OpenTelemetry SDK's in-memory exporter, produced by real sessions
 * over in-memory connections: the exact attribute sets of the reference for an allow, each
 * refusal reason, a decider override, a mode-guard block, a SOCKS5 UDP datagram, with and
 * without metadata.
 */
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { describe, expect, it } from "vitest";
import type { LoggerProvider as LoggerProviderApi } from "@opentelemetry/api-logs";
import { createConnectionAuditSink } from "../../src/core/audit/connection.ts";
import { AUDIT_LOGGER_NAME, auditAttributes, createAuditSink, type AuditMetadata } from "../../src/core/audit/otel.ts";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import type { PolicyDecider } from "../../src/core/policy/decide.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, tripwireNet } from "../helpers/memory-net.ts";

const ORIGIN = 8000;
const CLIENT = { host: "127.0.0.1", port: 50001 };

function setup(overrides: Partial<NetworkConfig>, metadata?: AuditMetadata, decider?: PolicyDecider) {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter })] });
  const origin = (conn: import("../../src/core/net/contract.ts").Conn) =>
    void (async () => {
      let s = "";
      while (!s.includes("\r\n\r\n")) {
        const c = await conn.read();
        if (c === null) return;
        s += latin1(c);
      }
      await conn.write(latin1Bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    })();
  const { net } = tripwireNet({ origins: { [ORIGIN]: origin } });
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, ...overrides }, { resolve: (h) => net.resolve(h), decider });
  state.addSink(createAuditSink({ loggerProvider: provider, metadata }));
  const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false };
  /** Send one request on a fresh connection and wait for the answer's first bytes. */
  const request = async (text: string): Promise<string> => {
    const [client, server] = connPair(CLIENT);
    const done = serveHttpConnection(server, ctx);
    await client.write(latin1Bytes(text));
    const first = await client.read();
    client.close();
    await done;
    return first ? latin1(first) : "";
  };
  const records = () => exporter.getFinishedLogRecords();
  return { request, records, state };
}

const get = (authority: string, method = "GET") => `${method} http://${authority}/secret/path?token=abc HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe("OpenTelemetry audit events", () => {
  it("an allowed request: one domain_policy_decision from logger codex_otel.network_proxy, exact attributes", async () => {
    const { request, records } = setup({ allowed_domains: ["127.0.0.1"] });
    expect(await request(get(`127.0.0.1:${ORIGIN}`))).toMatch(/^HTTP\/1\.1 200/);
    const [r, ...rest] = records();
    expect(rest).toEqual([]);
    expect(r!.instrumentationScope.name).toBe(AUDIT_LOGGER_NAME);
    const { "event.timestamp": ts, ...attrs } = r!.attributes;
    expect(ts).toMatch(TS);
    expect(attrs).toEqual({
      "event.name": "codex.network_proxy.domain_policy_decision",
      "network.policy.scope": "domain_rule",
      "network.policy.decision": "allow",
      "network.policy.source": "baseline_policy",
      "network.policy.reason": "allowed",
      "network.transport.protocol": "http",
      "server.address": "127.0.0.1",
      "server.port": ORIGIN,
      "http.request.method": "GET",
      "client.address": "127.0.0.1:50001",
      "network.policy.override": false,
    });
  });

  it.each([
    ["not_allowed", { allowed_domains: ["other.example"] }, "listed.example:80", "listed.example"],
    ["denied", { allowed_domains: ["*"], denied_domains: ["evil.example"] }, "evil.example:80", "evil.example"],
    ["not_allowed_local", { allowed_domains: ["*"] }, "127.0.0.2:80", "127.0.0.2"],
  ] as const)("a %s refusal", async (reason, config, authority, host) => {
    const { request, records } = setup(config as unknown as Partial<NetworkConfig>);
    expect(await request(get(authority))).toMatch(/^HTTP\/1\.1 403/);
    expect(records()).toHaveLength(1);
    expect(records()[0]!.attributes).toMatchObject({
      "event.name": "codex.network_proxy.domain_policy_decision",
      "network.policy.decision": "deny",
      "network.policy.source": "baseline_policy",
      "network.policy.reason": reason,
      "server.address": host,
      "network.policy.override": false,
    });
  });

  it("a decider override is the only case with network.policy.override = true", async () => {
    const { request, records } = setup({ allow_local_binding: true }, undefined, () => ({ decision: "allow" }));
    expect(await request(get(`127.0.0.1:${ORIGIN}`))).toMatch(/^HTTP\/1\.1 200/);
    expect(records()[0]!.attributes).toMatchObject({ "network.policy.source": "decider", "network.policy.decision": "allow", "network.policy.override": true });
  });

  it("a decider ask is reported as decision ask", async () => {
    const { request, records } = setup({}, undefined, () => ({ decision: "ask", reason: "needs_approval" }));
    await request(get("asked.example:80"));
    expect(records()[0]!.attributes).toMatchObject({ "network.policy.decision": "ask", "network.policy.source": "decider", "network.policy.reason": "needs_approval", "network.policy.override": false });
  });

  it("a mode-guard refusal adds a block_decision after the domain decision", async () => {
    const { request, records } = setup({ allowed_domains: ["127.0.0.1"], mode: "limited" });
    expect(await request(get(`127.0.0.1:${ORIGIN}`, "POST"))).toMatch(/^HTTP\/1\.1 403/);
    const [domain, block] = records();
    expect(domain!.attributes["event.name"]).toBe("codex.network_proxy.domain_policy_decision");
    const { "event.timestamp": _ts, ...attrs } = block!.attributes;
    expect(attrs).toEqual({
      "event.name": "codex.network_proxy.block_decision",
      "network.policy.scope": "mode_guard",
      "network.policy.decision": "deny",
      "network.policy.source": "mode_guard",
      "network.policy.reason": "method_not_allowed",
      "network.transport.protocol": "http",
      "server.address": "127.0.0.1",
      "server.port": ORIGIN,
      "http.request.method": "POST",
      "client.address": "127.0.0.1:50001",
      "network.policy.override": false,
    });
  });

  it("no event holds the URL path or query", async () => {
    const { request, records } = setup({ allowed_domains: ["127.0.0.1"] });
    await request(get(`127.0.0.1:${ORIGIN}`));
    await request(get("refused.example:80"));
    const text = JSON.stringify(records().map((r) => [r.body, r.attributes]));
    expect(text).not.toContain("secret");
    expect(text).not.toContain("token=abc");
  });

  it("metadata appears when set and is omitted when unset", async () => {
    const meta: AuditMetadata = { conversationId: "conv-1", appVersion: "1.2.3", authMode: "api_key", originator: "cli", userAccountId: "acct", userEmail: "a@example.com", terminalType: "xterm", model: "m", slug: "s" };
    const withMeta = setup({ allowed_domains: ["x.example"] }, meta);
    await withMeta.request(get("y.example:80"));
    expect(withMeta.records()[0]!.attributes).toMatchObject({
      "conversation.id": "conv-1",
      "app.version": "1.2.3",
      auth_mode: "api_key",
      originator: "cli",
      "user.account_id": "acct",
      "user.email": "a@example.com",
      "terminal.type": "xterm",
      model: "m",
      slug: "s",
    });
    const without = setup({ allowed_domains: ["x.example"] }, { model: "only-model" });
    await without.request(get("y.example:80"));
    const keys = Object.keys(without.records()[0]!.attributes);
    expect(keys).toContain("model");
    for (const k of ["conversation.id", "app.version", "auth_mode", "originator", "user.account_id", "user.email", "terminal.type", "slug"]) expect(keys).not.toContain(k);
  });

  it("SOCKS5 records use method none and unknown client when absent (per datagram for UDP)", () => {
    const base = { timestamp: Date.UTC(2026, 10, 24, 11, 0, 0, 5), scope: "domain_rule" as const, decision: "deny" as const, source: "baseline_policy" as const, reason: "not_allowed_local", override: false, host: "127.0.0.2", port: 53, mode: "full" as const };
    expect(auditAttributes({ ...base, protocol: "socks5_udp" })).toEqual({
      "event.name": "codex.network_proxy.domain_policy_decision",
      "event.timestamp": "2026-11-24T11:00:00.005Z",
      "network.policy.scope": "domain_rule",
      "network.policy.decision": "deny",
      "network.policy.source": "baseline_policy",
      "network.policy.reason": "not_allowed_local",
      "network.transport.protocol": "socks5_udp",
      "server.address": "127.0.0.2",
      "server.port": 53,
      "http.request.method": "none",
      "client.address": "unknown",
      "network.policy.override": false,
    });
  });
});

describe("library wiring", () => {
  it("the builder sends audit events to the host's LoggerProvider with its metadata", async () => {
    const { NetworkProxy } = await import("../../src/core/api/proxy.ts");
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter })] });
    const { net } = tripwireNet({});
    const proxy = await NetworkProxy.builder({ net })
      .config({ allowed_domains: ["a.example"] })
      .auditLoggerProvider(provider)
      .auditMetadata({ originator: "embedding-app" })
      .build();
    proxy.state.record({ timestamp: Date.now(), scope: "proxy_state", decision: "deny", source: "proxy_state", reason: "proxy_disabled", override: false, protocol: "https_connect", host: "b.example", port: 443, method: "CONNECT", mode: "full" });
    const [r] = exporter.getFinishedLogRecords();
    expect(r!.instrumentationScope.name).toBe("codex_otel.network_proxy");
    expect(r!.attributes).toMatchObject({ "event.name": "codex.network_proxy.block_decision", "network.policy.scope": "proxy_state", "network.policy.reason": "proxy_disabled", originator: "embedding-app", "client.address": "unknown" });
  });

  it("without a provider, events go to the global one the host installed", async () => {
    const { NetworkProxy } = await import("../../src/core/api/proxy.ts");
    const { logs } = await import("@opentelemetry/api-logs");
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter })] });
    logs.setGlobalLoggerProvider(provider);
    try {
      const { net } = tripwireNet({});
      const proxy = await NetworkProxy.builder({ net }).config({ allowed_domains: ["a.example"] }).build();
      proxy.state.record({ timestamp: Date.now(), scope: "domain_rule", decision: "allow", source: "baseline_policy", reason: "allowed", override: false, protocol: "http", host: "a.example", port: 80, method: "GET", client: "127.0.0.1:1", mode: "full" });
      expect(exporter.getFinishedLogRecords().map((r) => r.attributes["event.name"])).toEqual(["codex.network_proxy.domain_policy_decision"]);
    } finally {
      logs.disable();
    }
  });

  it("a logger that is not enabled (the API's no-op one, or one that says no) gets no record; one without enabled() gets every record", () => {
    const record = { timestamp: 1_800_000_000_000, scope: "domain_rule", decision: "allow", source: "baseline_policy", reason: "allowed", override: false, protocol: "http", host: "a.example", port: 80, method: "GET", client: "127.0.0.1:1", mode: "full" } as const;
    const connection = { timestamp: 1_800_000_000_000, kind: "tunnel", protocol: "https_connect", host: "a.example", port: 443, client: "127.0.0.1:1", bytesToOrigin: 1, bytesToClient: 2, durationMs: 3, ended: "client_closed" } as const;
    const asked: unknown[] = [];
    let emitted = 0;
    const saysNo = { getLogger: () => ({ enabled: (o: unknown) => (asked.push(o), false), emit: () => void emitted++ }) } as unknown as LoggerProviderApi;
    createAuditSink({ loggerProvider: saysNo })(record);
    createConnectionAuditSink({ loggerProvider: saysNo })(connection);
    expect(emitted).toBe(0);
    expect(asked).toEqual([
      { severityNumber: 9, eventName: "codex.network_proxy.domain_policy_decision" },
      { severityNumber: 9, eventName: "codex.network_proxy.connection_closed" },
    ]);
    const older = { getLogger: () => ({ emit: () => void emitted++ }) } as unknown as LoggerProviderApi;
    createAuditSink({ loggerProvider: older })(record);
    createConnectionAuditSink({ loggerProvider: older })(connection);
    expect(emitted).toBe(2);
    // the global provider before the host installs one: a no-op, asked and skipped
    expect(() => createAuditSink()(record)).not.toThrow();
  });

  it("a sink made before the app installs a global provider whose loggers have no enabled() still gives it every record", async () => {
    const { logs } = await import("@opentelemetry/api-logs");
    const sink = createAuditSink();
    const connectionSink = createConnectionAuditSink();
    const emitted: unknown[] = [];
    logs.setGlobalLoggerProvider({ getLogger: () => ({ emit: (r: unknown) => void emitted.push(r) }) } as unknown as LoggerProviderApi);
    try {
      sink({ timestamp: 1_800_000_000_000, scope: "domain_rule", decision: "allow", source: "baseline_policy", reason: "allowed", override: false, protocol: "http", host: "a.example", port: 80, method: "GET", client: "127.0.0.1:1", mode: "full" });
      connectionSink({ timestamp: 1_800_000_000_000, kind: "tunnel", protocol: "https_connect", host: "a.example", port: 443, client: "127.0.0.1:1", bytesToOrigin: 1, bytesToClient: 2, durationMs: 3, ended: "client_closed" });
      expect(emitted).toHaveLength(2);
    } finally {
      logs.disable();
    }
  });
});
