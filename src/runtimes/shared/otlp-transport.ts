/**
 * The contract of the audit export's own OTLP/HTTP transport (`otlp-conn-transport.ts`, on the
 * runtime's own sockets): the official `node:http` transport's of
 * `@opentelemetry/otlp-exporter-base`, which it stands in for because it costs the proxy's thread
 * less (BENCHMARKS.md, profile notes 18 and 19).
 *
 * It is an `IExporterTransport` the official export delegate drives, with its concurrency
 * limit, response handling and metrics, and each attempt ends as the official transport's does:
 * a 2xx is a success whose body goes to the response handler; 429, 502, 503 and 504 are
 * retryable, after `Retry-After` when the collector gives one (OTLP/HTTP specification,
 * "Failures" and "Throttling"); a timeout, or a network error, is retryable; any other status
 * (3xx included: redirects are not followed) fails, naming it; a 2xx whose body breaks off is a
 * success (the batch arrived). The official retrying wrapper is not part of the package's public
 * entry points, so {@link RetryingTransport} retries as it does: up to {@link EXPORT_MAX_RETRIES}
 * times, with a jittered exponential backoff, never past the export's deadline.
 *
 * @module
 */
import { type ExportResponse, type IExporterTransport, OTLPExporterError } from "@opentelemetry/otlp-exporter-base";

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

/**
 * What an attempt came to when the collector at `url` answered `status` (`reason` its phrase)
 * with `body` and, perhaps, a `Retry-After` value.
 */
export function answerResult(url: string, status: number, reason: string, retryAfter: string | null, body: Uint8Array): ExportResponse {
  if (status >= 200 && status <= 299) return { status: "success", data: body };
  if (RETRYABLE_STATUSES.has(status)) return { status: "retryable", retryInMillis: retryAfterMs(retryAfter, Date.now()) };
  return {
    status: "failure",
    error: new OTLPExporterError(`the collector at ${url} answered ${status} ${reason}`.trimEnd(), status, new TextDecoder().decode(body)),
  };
}

/** The retryable result of an attempt the collector did not answer within `ms`. */
export function noAnswerWithin(url: string, ms: number, cause: unknown): ExportResponse {
  return { status: "retryable", error: new Error(`the collector at ${url} did not answer within ${ms} ms`, { cause }) };
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
      const left = deadline - Date.now();
      if (left <= 0) return result; // the wait took the rest of the export's time
      result = await this.inner.send(data, left);
    }
    return result;
  }

  shutdown(): void {
    this.inner.shutdown();
  }
}
