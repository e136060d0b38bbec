/**
 * An OTLP/HTTP transport over the runtime's own `fetch`, for the audit export on Bun
 * (`otel-provider.ts` chooses it there). On Bun a batch POSTed through `fetch` costs the proxy's
 * thread almost nothing, while the official `node:http` transport of
 * `@opentelemetry/otlp-exporter-base` costs it about 1 ms per batch in place, about 2 µs per
 * request at the SDK's 512-record batches (BENCHMARKS.md, profile note 18). On Node, `fetch`
 * (undici) costs more than `node:http`, and on Deno about the same, so they keep the official
 * transport.
 *
 * It keeps the official transport's contract (the `IExporterTransport` the official export
 * delegate drives, with its concurrency limit, response handling and metrics): a 2xx is a
 * success whose body goes to the response handler; 429, 502, 503 and 504 are retryable, after
 * `Retry-After` when the collector gives one (OTLP/HTTP specification, "Failures" and
 * "Throttling"); a timeout, or a network error of {@link RETRYABLE_ERROR_CODES}, is retryable;
 * any other status (3xx included: redirects are not followed) or error fails, naming it; a 2xx
 * whose body breaks off is a success (the batch arrived).
 * The official retrying wrapper is not part of the package's public entry points, so
 * {@link RetryingTransport} retries as it does: up to {@link EXPORT_MAX_RETRIES} times, with a
 * jittered exponential backoff, never past the export's deadline.
 *
 * `fetch` honours proxy environment variables on some runtimes (Bun's does, for loopback too);
 * the caller passes what turns that off (`{ proxy: false }` on Bun) in `init`, so the export
 * goes straight to the configured endpoint, as the `node:http` transport does.
 *
 * @module
 */
import { type ExportResponse, type IExporterTransport, OTLPExporterError } from "@opentelemetry/otlp-exporter-base";
import { readBounded } from "../../core/net/bytes.ts";

/** HTTP statuses of an export worth retrying (OTLP/HTTP specification, "Retryable Response Codes"). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/** Retries of one export after its first attempt (as the official retrying transport). */
export const EXPORT_MAX_RETRIES = 5;

/** Wait before the first retry, when the collector names none (`Retry-After`). */
export const EXPORT_INITIAL_BACKOFF_MS = 1_000;

/** Longest computed wait between two attempts. */
export const EXPORT_MAX_BACKOFF_MS = 5_000;

/** Each computed wait is this many times the one before. */
export const EXPORT_BACKOFF_MULTIPLIER = 1.5;

/** Each computed wait is moved by up to this share, either way, at random. */
export const EXPORT_BACKOFF_JITTER = 0.2;

/**
 * Largest response body read (as the official transport): a collector that answers more fails
 * the export, not retried.
 */
export const EXPORT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * Network error codes worth retrying (as the official `node:http` transport): any other error
 * fails the export at once.
 */
export const RETRYABLE_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
]);

/** What {@link fetchTransport} needs. */
export interface FetchTransportOptions {
  /** The collector's URL (for logs: the endpoint as configured, or `…/v1/logs`). */
  readonly url: string;
  /** The request's headers (Content-Type and the configured ones). */
  readonly headers: () => Promise<Record<string, string>>;
  /** `User-Agent` of every request (it replaces one the configured headers name, as the official transport's does). */
  readonly userAgent: string;
  /** More `fetch` options, e.g. `{ proxy: false }` on Bun. */
  readonly init?: Readonly<Record<string, unknown>>;
}

/** One attempt per `send`: POST the batch and say what came of it. */
class FetchTransport implements IExporterTransport {
  constructor(private readonly options: FetchTransportOptions) {}

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const { url } = this.options;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMillis);
    /** The collector answered 2xx: the batch arrived, whatever becomes of the answer's body. */
    let accepted = false;
    try {
      const response = await fetch(url, {
        ...this.options.init,
        method: "POST",
        headers: withUserAgent(await this.options.headers(), this.options.userAgent),
        body: data as Uint8Array<ArrayBuffer>,
        signal: abort.signal,
        // a 3xx fails, as with node:http: never re-send the batch and its headers elsewhere
        redirect: "manual",
      });
      accepted = response.status >= 200 && response.status <= 299;
      const body = await readBounded(response.body, EXPORT_MAX_RESPONSE_BYTES);
      if (body === undefined) {
        return { status: "failure", error: new OTLPExporterError(`the answer of the collector at ${url} is larger than ${EXPORT_MAX_RESPONSE_BYTES} bytes`) };
      }
      if (accepted) return { status: "success", data: body };
      if (RETRYABLE_STATUSES.has(response.status)) {
        return { status: "retryable", retryInMillis: retryAfterMs(response.headers.get("retry-after"), Date.now()) };
      }
      return {
        status: "failure",
        error: new OTLPExporterError(`the collector at ${url} answered ${response.status} ${response.statusText}`.trimEnd(), response.status, new TextDecoder().decode(body)),
      };
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      // a 2xx whose body broke off: sending the batch again would duplicate it
      if (accepted) return { status: "success" };
      if (abort.signal.aborted) return { status: "retryable", error: new Error(`the collector at ${url} did not answer within ${timeoutMillis} ms`, { cause: error }) };
      if (RETRYABLE_ERROR_CODES.has(errorCode(error) ?? "")) return { status: "retryable", error };
      return { status: "failure", error };
    } finally {
      clearTimeout(timer);
    }
  }

  shutdown(): void {}
}

/** The system error code of a failed `fetch` (Bun's errors carry it; undici's their `cause`). */
function errorCode(e: Error): string | undefined {
  const own = (e as { code?: unknown }).code;
  if (typeof own === "string") return own;
  const cause = (e as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === "string" ? cause.code : undefined;
}

/** `headers` with `User-Agent: userAgent`, in place of any the configured headers name. */
function withUserAgent(headers: Record<string, string>, userAgent: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() !== "user-agent") out[name] = value;
  out["User-Agent"] = userAgent;
  return out;
}

/**
 * The wait a `Retry-After` value asks for, in ms at `nowMs` (RFC 9110 §10.2.3: a number of
 * seconds, or an HTTP date), or `undefined` when there is none or it means nothing.
 */
export function retryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/^[A-Za-z]{3}/.test(text)) return undefined; // each of the three HTTP-date forms begins with a day's name
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Retries a transport's retryable answers, as the official retrying transport does. */
export class RetryingTransport implements IExporterTransport {
  /**
   * @param random draws the jitter (in [0, 1)).
   * @param wait waits `ms` before a retry.
   */
  constructor(
    private readonly inner: IExporterTransport,
    private readonly random: () => number = Math.random,
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {}

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const deadline = Date.now() + timeoutMillis;
    let result = await this.inner.send(data, timeoutMillis);
    let backoff = EXPORT_INITIAL_BACKOFF_MS;
    for (let retries = 0; result.status === "retryable" && retries < EXPORT_MAX_RETRIES; retries++) {
      const jittered = Math.min(backoff * (1 + (this.random() * 2 - 1) * EXPORT_BACKOFF_JITTER), EXPORT_MAX_BACKOFF_MS);
      backoff *= EXPORT_BACKOFF_MULTIPLIER;
      const wait = result.retryInMillis ?? Math.max(0, jittered);
      if (wait > deadline - Date.now()) return result; // the next attempt would start after the export's deadline
      await this.wait(wait);
      result = await this.inner.send(data, deadline - Date.now());
    }
    return result;
  }

  shutdown(): void {
    this.inner.shutdown();
  }
}

/** The transport: one `fetch` per attempt, retried as the official transport retries. */
export function fetchTransport(options: FetchTransportOptions): IExporterTransport {
  return new RetryingTransport(new FetchTransport(options));
}
