/**
 * An OTLP/HTTP transport over the runtime's own connections, for the audit export in the proxy's
 * thread (`otel-provider.ts` chooses it): the core's HTTP/1.1 client (`core/http/post-client.ts`)
 * on the adapter's {@link Net}. Each batch POSTed through the official transport's `node:http`
 * costs the proxy's thread about 1 ms on Deno and Bun, where `node:http` is a compatibility
 * layer, about 2 µs per request at the SDK's 512-record batches, and about half that on Node;
 * on its own sockets, a fraction of it (BENCHMARKS.md, profile notes 18 and 19).
 *
 * Each attempt ends as `otlp-transport.ts` describes (the official transport's contract): a
 * connection that cannot be made, or that breaks or stalls before the answer's head, is
 * retryable; an answer whose body breaks off or stalls counts as its status says (a 2xx as
 * delivered); an answer that cannot be read, or a header that cannot be sent, fails. A user
 * name and password in the URL are sent as `Basic` credentials, as `node:http` sends them.
 * Plain HTTP only: an `https` endpoint goes through the official transport, which reads the
 * OpenTelemetry TLS variables.
 *
 * @module
 */
import type { ExportResponse, IExporterTransport } from "@opentelemetry/otlp-exporter-base";
import type { Net } from "../../core/net/contract.ts";
import type { HttpHeader } from "../../core/http/fields.ts";
import { PostClient, PostFailure } from "../../core/http/post-client.ts";
import { answerResult, EXPORT_MAX_RESPONSE_BYTES, noAnswerWithin, RETRYABLE_STATUSES, RetryingTransport } from "./otlp-transport.ts";

/** What {@link connTransport} needs. */
export interface ConnTransportOptions {
  /** The collector's URL (for logs: the endpoint as configured, or `…/v1/logs`); plain `http`. */
  readonly url: string;
  /** The request's headers (Content-Type and the configured ones). */
  readonly headers: () => Promise<Record<string, string>>;
  /** `User-Agent` of every request (it replaces one the configured headers name, as the official transport's does). */
  readonly userAgent: string;
  /** The runtime's sockets. */
  readonly net: Net;
}

/** One attempt per `send`: POST the batch on a kept or new connection and say what came of it. */
class ConnTransport implements IExporterTransport {
  private readonly client: PostClient;
  /** The URL as named in messages: without the user name and password it may carry. */
  private readonly display: string;
  /** `Authorization` from the URL's user name and password, as `node:http` makes it, or `undefined`. */
  private readonly basicAuth: string | undefined;

  constructor(private readonly options: ConnTransportOptions) {
    const url = new URL(options.url);
    if (url.protocol !== "http:") throw new Error(`the OTLP endpoint ${options.url} is not plain http; this transport posts only over http`);
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    this.client = new PostClient(options.net, { host, port: url.port === "" ? 80 : Number(url.port), path: `${url.pathname}${url.search}` }, { maxAnswerBytes: EXPORT_MAX_RESPONSE_BYTES });
    this.basicAuth = url.username === "" && url.password === "" ? undefined : basicAuthorization(decodeURIComponent(url.username), decodeURIComponent(url.password));
    url.username = "";
    url.password = "";
    this.display = url.href;
  }

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const url = this.display;
    const fields: HttpHeader[] = [];
    let authorized = false;
    for (const [name, value] of Object.entries(await this.options.headers())) {
      const lower = name.toLowerCase();
      if (lower === "user-agent") continue;
      authorized ||= lower === "authorization";
      fields.push({ name, value });
    }
    fields.push({ name: "User-Agent", value: this.options.userAgent });
    // credentials in the URL, unless a configured header authorizes already (as node:http)
    if (this.basicAuth !== undefined && !authorized) fields.push({ name: "Authorization", value: this.basicAuth });
    try {
      const { head, body } = await this.client.post(fields, data, timeoutMillis);
      return answerResult(url, head.status, head.reason, head.fields.values("retry-after")[0] ?? null, body);
    } catch (e) {
      if (!(e instanceof PostFailure)) return { status: "failure", error: e instanceof Error ? e : new Error(String(e)) };
      const error = new Error(`export to the collector at ${url} failed: ${e.message}`, { cause: e });
      if (e.kind === "request" || e.kind === "answer") return { status: "failure", error };
      // the answer's head arrived, then its body broke off or stalled: its status decides
      if (e.status !== undefined) {
        // a 2xx: the batch arrived, and sending it again would duplicate it
        if (e.status >= 200 && e.status <= 299) return { status: "success" };
        return { status: RETRYABLE_STATUSES.has(e.status) ? "retryable" : "failure", error };
      }
      if (e.kind === "timeout") return noAnswerWithin(url, timeoutMillis, e);
      return { status: "retryable", error };
    }
  }

  shutdown(): void {
    this.client.close();
  }
}

/** `Basic` credentials for `user` and `password` (RFC 7617), UTF-8 as `node:http` sends them. */
function basicAuthorization(user: string, password: string): string {
  let binary = "";
  for (const b of new TextEncoder().encode(`${user}:${password}`)) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

/** The transport: one POST per attempt on the runtime's own connections, retried as the official transport retries. */
export function connTransport(options: ConnTransportOptions): IExporterTransport {
  return new RetryingTransport(new ConnTransport(options));
}
