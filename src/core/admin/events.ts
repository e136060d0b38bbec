/**
 * `GET /events` (docs/behaviour.md §7.6): every decision as a server-sent event (`event:
 * decision`, `data:` one JSON object with the fields of a `/blocked` entry, its `timestamp` in
 * milliseconds, plus `scope` and `override`), as it is made. Useful on its own (`curl -N`) and the live page's feed. No URL
 * path or query is ever in it (decision records hold none).
 *
 * A slow reader cannot make the proxy hold memory: past {@link MAX_QUEUED_EVENTS} events not yet
 * written, later ones are dropped and a `dropped` event says how many. At most
 * {@link MAX_EVENT_STREAMS} streams are open at once; more are answered `503`.
 *
 * @module
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { blockedEntry } from "../audit/blocked.ts";
import type { DecisionRecord } from "../audit/events.ts";
import type { ProxyState } from "../state.ts";

/** Streams open at once; one more is answered `503`. */
export const MAX_EVENT_STREAMS = 16;
/** Events a stream may have waiting to be written before it drops what comes. */
export const MAX_QUEUED_EVENTS = 1_000;
/** A comment line this often keeps intermediaries from closing a quiet stream, in ms. */
export const KEEPALIVE_INTERVAL_MS = 15_000;

/** The JSON of one decision event: a `/blocked` entry's fields, the time in ms, scope and override. */
export function decisionEvent(r: DecisionRecord): string {
  return JSON.stringify({ ...blockedEntry(r), timestamp: r.timestamp, scope: r.scope, override: r.override });
}

/** The handler of `GET /events` over `state`. */
export function eventsHandler(state: ProxyState): (c: Context) => Response | Promise<Response> {
  return (c) => {
    if (state.subscriberCount >= MAX_EVENT_STREAMS) return c.json({ status: "error", error: `at most ${MAX_EVENT_STREAMS} event streams at once` }, 503);
    return streamSSE(c, async (stream) => {
      let queued = 0;
      let dropped = 0;
      let wake: (() => void) | undefined;
      const pending: string[] = [];
      const unsubscribe = state.subscribe((r) => {
        if (queued >= MAX_QUEUED_EVENTS) {
          dropped++;
          return;
        }
        queued++;
        pending.push(decisionEvent(r));
        wake?.();
      });
      const keepalive = setInterval(() => wake?.(), KEEPALIVE_INTERVAL_MS);
      stream.onAbort(() => wake?.());
      try {
        await stream.writeSSE({ event: "ready", data: "{}" });
        while (!stream.aborted && !stream.closed) {
          if (pending.length === 0 && dropped === 0) {
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
            if (pending.length === 0 && dropped === 0 && !stream.aborted) await stream.write(": keepalive\n\n");
            continue;
          }
          if (dropped > 0) {
            await stream.writeSSE({ event: "dropped", data: JSON.stringify({ dropped }) });
            dropped = 0;
          }
          const data = pending.shift();
          if (data !== undefined) {
            await stream.writeSSE({ event: "decision", data });
            queued--;
          }
        }
      } finally {
        clearInterval(keepalive);
        unsubscribe();
      }
    });
  };
}
