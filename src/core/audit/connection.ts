/**
 * Connection records (docs/behaviour.md §8.6, ours, beyond the reference's schema): when a
 * tunnel or a client connection ends, one `codex.network_proxy.connection_closed` log record
 * with its protocol, server address and port, client address, bytes each way, duration and how
 * it ended. Never a URL path, a query or a credential.
 *
 * @module
 */
import { logs, SeverityNumber, type LogAttributes } from "@opentelemetry/api-logs";
import { isoTimestamp } from "./iso-time.ts";
import type { AttributeField } from "./otlp/logs-request.ts";
import { AUDIT_LOGGER_NAME, attributeObject, type AttributeList, type AuditSinkOptions, enabled } from "./otel.ts";

/** The event name of a connection record. */
export const CONNECTION_CLOSED_EVENT = "codex.network_proxy.connection_closed";

/**
 * How a connection or tunnel ended: the client or the origin closed first, a failure, the
 * proxy's shutdown, the idle limit, or (a client connection) the proxy ending it after a
 * response or refusal that closes it.
 */
export type ConnectionEnd = "client_closed" | "origin_closed" | "error" | "shutdown" | "idle_timeout" | "proxy_closed";

/** How a tunnel's relay `outcome` (its client side is `a`) reads as a {@link ConnectionEnd}. */
export function tunnelEnd(outcome: "a" | "b" | "error" | "idle", shuttingDown: boolean): ConnectionEnd {
  if (shuttingDown) return "shutdown";
  return outcome === "a" ? "client_closed" : outcome === "b" ? "origin_closed" : outcome === "idle" ? "idle_timeout" : "error";
}

/** One ended tunnel or client connection. */
export interface ConnectionRecord {
  /** When it ended, milliseconds since the Unix epoch. */
  readonly timestamp: number;
  /** `tunnel` (CONNECT, SOCKS5, an upgrade), or the client `connection` to a listener. */
  readonly kind: "tunnel" | "connection";
  /** `https_connect`, `socks5_tcp`, `socks5_udp`, `http` (a listener's connection, an upgrade). */
  readonly protocol: string;
  /** The tunnel's destination, or the listener's address for a client connection. */
  readonly host: string;
  readonly port: number;
  /** `ip:port` of the client. */
  readonly client: string;
  /** Bytes from the client towards the origin. */
  readonly bytesToOrigin: number;
  /** Bytes from the origin towards the client. */
  readonly bytesToClient: number;
  readonly durationMs: number;
  readonly ended: ConnectionEnd;
}

/** Receives every connection record. Must not throw and must not block. */
export type ConnectionSink = (record: ConnectionRecord) => void;

/** The attributes of a connection record, in order: what the OTLP encoder reads. */
export const CONNECTION_FIELDS: readonly AttributeField<ConnectionRecord>[] = [
  ["event.name", () => CONNECTION_CLOSED_EVENT],
  ["event.timestamp", (r) => isoTimestamp(r.timestamp)],
  ["network.proxy.connection.kind", (r) => r.kind],
  ["network.transport.protocol", (r) => r.protocol],
  ["server.address", (r) => r.host],
  ["server.port", (r) => r.port],
  ["client.address", (r) => r.client],
  ["network.proxy.bytes.to_origin", (r) => r.bytesToOrigin],
  ["network.proxy.bytes.to_client", (r) => r.bytesToClient],
  ["network.proxy.duration_ms", (r) => Math.round(r.durationMs)],
  ["network.proxy.close_reason", (r) => r.ended],
];

/** The attributes of one connection record, as a flat list (see {@link AttributeList}). */
export function connectionAttributeList(r: ConnectionRecord): AttributeList {
  const list: AttributeList = [];
  for (const [key, value] of CONNECTION_FIELDS) list.push(key, value(r));
  return list;
}

/** The attributes of one connection record. */
export function connectionAttributes(r: ConnectionRecord): LogAttributes {
  return attributeObject(connectionAttributeList(r));
}

/** A sink that emits each connection record through the audit logger of `options`. */
export function createConnectionAuditSink(options: AuditSinkOptions = {}): ConnectionSink {
  const logger = (options.loggerProvider ?? logs.getLoggerProvider()).getLogger(AUDIT_LOGGER_NAME);
  const ask = { severityNumber: SeverityNumber.INFO, eventName: CONNECTION_CLOSED_EVENT };
  return (r) => {
    if (!enabled(logger, ask)) return;
    logger.emit({
      timestamp: r.timestamp,
      severityNumber: SeverityNumber.INFO,
      severityText: "INFO",
      eventName: CONNECTION_CLOSED_EVENT,
      body: CONNECTION_CLOSED_EVENT,
      attributes: connectionAttributes(r),
    });
  };
}

/** Something with byte counts: a connection. */
export interface Counted {
  bytesRead?(): number;
  bytesWritten?(): number;
}

/** A connection's byte counts now, to subtract later: what it carried before a tunnel opened on it. */
export function countsNow(c: Counted): { readonly read: number; readonly written: number } {
  return { read: c.bytesRead?.() ?? 0, written: c.bytesWritten?.() ?? 0 };
}

/** What {@link tunnelRecord} needs to know about a tunnel that ended. */
export interface EndedTunnel {
  readonly protocol: string;
  readonly host: string;
  readonly port: number;
  readonly client: string;
  /** The connection to the origin: its byte counts since {@link base} are the tunnel's. */
  readonly upstream: Counted;
  /** The upstream's counts when the tunnel opened (a reused connection, a proxy's handshake). */
  readonly base?: { readonly read: number; readonly written: number };
  /** `Date.now()` when it opened. */
  readonly opened: number;
  readonly ended: ConnectionEnd;
}

/** The record of a tunnel that ended. */
export function tunnelRecord(t: EndedTunnel): ConnectionRecord {
  const now = Date.now();
  const base = t.base ?? { read: 0, written: 0 };
  return {
    timestamp: now,
    kind: "tunnel",
    protocol: t.protocol,
    host: t.host,
    port: t.port,
    client: t.client,
    bytesToOrigin: (t.upstream.bytesWritten?.() ?? 0) - base.written,
    bytesToClient: (t.upstream.bytesRead?.() ?? 0) - base.read,
    durationMs: now - t.opened,
    ended: t.ended,
  };
}

/** How the last tunnel on a client connection ended, for that connection's own record. */
const tunnelEnds = new WeakMap<object, ConnectionEnd>();

/** Note how a tunnel carried by `client` ended (its connection ends the same way). */
export function noteTunnelEnd(client: object, ended: ConnectionEnd): void {
  tunnelEnds.set(client, ended);
}

/** How the tunnel `client` last carried ended, if it carried one. */
export function tunnelEndOf(client: object): ConnectionEnd | undefined {
  return tunnelEnds.get(client);
}
