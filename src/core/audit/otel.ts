/**
 * Audit events as OpenTelemetry log records (docs/behaviour.md §8): every
 * domain decision is a `codex.network_proxy.domain_policy_decision`, every mode-guard or
 * proxy-state refusal a `codex.network_proxy.block_decision`, emitted through the logger
 * `codex_otel.network_proxy` of the provider the embedding app passes (or the global one; the
 * proxy never installs a global provider itself). No event holds a URL path, a query or a
 * credential: decision records carry none.
 *
 * @module
 */
import { logs, SeverityNumber, type LogAttributes, type Logger, type LoggerProvider } from "@opentelemetry/api-logs";
import type { DecisionRecord, DecisionSink } from "./events.ts";
import { isoTimestamp } from "./iso-time.ts";
import type { AttributeField } from "./otlp/logs-request.ts";

/** The logger (instrumentation scope) audit events are emitted through. */
export const AUDIT_LOGGER_NAME = "codex_otel.network_proxy";
/** Event name of a domain-rule decision (allow included). */
export const DOMAIN_POLICY_EVENT = "codex.network_proxy.domain_policy_decision";
/** Event name of a mode-guard or proxy-state refusal. */
export const BLOCK_DECISION_EVENT = "codex.network_proxy.block_decision";

/** Optional context the embedding app attaches to every event; unset fields are omitted. */
export interface AuditMetadata {
  conversationId?: string;
  appVersion?: string;
  authMode?: string;
  originator?: string;
  userAccountId?: string;
  userEmail?: string;
  terminalType?: string;
  model?: string;
  slug?: string;
}

/** Metadata field → attribute name, in the reference's order. */
const METADATA_ATTRIBUTES: ReadonlyArray<readonly [keyof AuditMetadata, string]> = [
  ["conversationId", "conversation.id"],
  ["appVersion", "app.version"],
  ["authMode", "auth_mode"],
  ["originator", "originator"],
  ["userAccountId", "user.account_id"],
  ["userEmail", "user.email"],
  ["terminalType", "terminal.type"],
  ["model", "model"],
  ["slug", "slug"],
];

/** The event name of a record. */
export function auditEventName(r: DecisionRecord): string {
  return r.scope === "domain_rule" ? DOMAIN_POLICY_EVENT : BLOCK_DECISION_EVENT;
}

/**
 * Attributes as a flat list, `[key0, value0, key1, value1, …]`, in order. {@link attributeObject}
 * turns one into the object the OpenTelemetry API takes.
 */
export type AttributeList = (string | number | boolean)[];

/** The object of `list`'s keys and values, in order. */
export function attributeObject(list: AttributeList): LogAttributes {
  const attributes: LogAttributes = {};
  for (let i = 0; i < list.length; i += 2) attributes[list[i] as string] = list[i + 1];
  return attributes;
}

/** The attributes every decision begins with (the embedding app's metadata goes after them). */
const DECISION_HEAD: readonly AttributeField<DecisionRecord>[] = [
  ["event.name", auditEventName],
  // RFC 3339, UTC, milliseconds
  ["event.timestamp", (r) => isoTimestamp(r.timestamp)],
];

/** The attributes of a decision after the metadata. */
const DECISION_BODY: readonly AttributeField<DecisionRecord>[] = [
  ["network.policy.scope", (r) => r.scope],
  ["network.policy.decision", (r) => r.decision],
  ["network.policy.source", (r) => r.source],
  ["network.policy.reason", (r) => r.reason],
  ["network.transport.protocol", (r) => r.protocol],
  ["server.address", (r) => r.host],
  ["server.port", (r) => r.port],
  ["http.request.method", (r) => r.method ?? "none"],
  ["client.address", (r) => r.client ?? "unknown"],
  // Only a decider overriding an allowlist miss sets this; state refusals never do.
  ["network.policy.override", (r) => r.scope === "domain_rule" && r.override],
];

/** The reference's attributes of a decision without metadata, in order: what the OTLP encoder reads. */
export const DECISION_FIELDS: readonly AttributeField<DecisionRecord>[] = [...DECISION_HEAD, ...DECISION_BODY];

/** The exact attribute set of the reference for one decision, as a flat list. */
export function auditAttributeList(r: DecisionRecord, metadata: AuditMetadata = {}): AttributeList {
  const list: AttributeList = [];
  for (const [key, value] of DECISION_HEAD) list.push(key, value(r));
  for (const [field, name] of METADATA_ATTRIBUTES) {
    const value = metadata[field];
    if (value !== undefined && value !== "") list.push(name, value);
  }
  for (const [key, value] of DECISION_BODY) list.push(key, value(r));
  return list;
}

/** The exact attribute set of the reference for one decision. */
export function auditAttributes(r: DecisionRecord, metadata: AuditMetadata = {}): LogAttributes {
  return attributeObject(auditAttributeList(r, metadata));
}

/** Options of {@link createAuditSink}. */
export interface AuditSinkOptions {
  /** Where events go; default: the global provider (a no-op until the host app installs one). */
  loggerProvider?: LoggerProvider;
  metadata?: AuditMetadata;
}

/**
 * Whether `logger` would take a record like `ask` (the Logs API's `Enabled`). A logger of an
 * older API without `enabled` (or whose `enabled` throws) takes every record.
 */
export function enabled(logger: Logger, ask: { severityNumber: SeverityNumber; eventName: string }): boolean {
  if (typeof logger.enabled !== "function") return true;
  try {
    return logger.enabled(ask);
  } catch {
    // the API's proxy logger forwards to the provider installed later, whose loggers may have no
    // `enabled` of their own: then it takes every record, as before
    return true;
  }
}

/** A decision sink that emits every record as an OpenTelemetry log record. */
export function createAuditSink(options: AuditSinkOptions = {}): DecisionSink {
  const provider = options.loggerProvider ?? logs.getLoggerProvider();
  const logger = provider.getLogger(AUDIT_LOGGER_NAME);
  const metadata = { ...options.metadata };
  const domainAsk = { severityNumber: SeverityNumber.INFO, eventName: DOMAIN_POLICY_EVENT };
  const blockAsk = { severityNumber: SeverityNumber.INFO, eventName: BLOCK_DECISION_EVENT };
  return (r) => {
    // a logger that would drop the record (the API's no-op one until the app installs a
    // provider) is not handed one: the attributes are not built
    if (!enabled(logger, r.scope === "domain_rule" ? domainAsk : blockAsk)) return;
    const attributes = auditAttributes(r, metadata);
    logger.emit({
      timestamp: r.timestamp,
      severityNumber: SeverityNumber.INFO,
      severityText: "INFO",
      eventName: attributes["event.name"] as string,
      body: attributes["event.name"] as string,
      attributes,
    });
  };
}
