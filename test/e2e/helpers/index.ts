/** End-to-end test helpers. */
import { expect } from "vitest";
import type { RawResponse } from "./raw.ts";

export * from "./curl.ts";
export * from "./hosts.ts";
export * from "./proxy.ts";
export * from "./raw.ts";
export * from "./servers.ts";
export * from "./socks5.ts";
export * from "./util.ts";

/** The JSON body of a blocked plain request (docs/behaviour.md §5). */
export interface BlockedBody {
  status: "blocked";
  host: string;
  reason: string;
  decision: "deny" | "ask";
  source: string;
  protocol: string;
  port: number;
  message: string;
}

/** Messages per reason (docs/behaviour.md §5). */
export const MESSAGES = {
  not_allowed: "Domain not in allowlist.",
  not_allowed_local: "Sandbox policy blocks local/private network addresses.",
  denied: "Domain denied by the sandbox policy.",
  method_not_allowed: "Method not allowed in limited mode.",
  mitm_required: "Limited mode needs TLS interception (network.mitm = true) to open HTTPS tunnels.",
} as const;

/** `x-proxy-error` per reason (docs/behaviour.md §5). */
export const PROXY_ERROR = {
  not_allowed: "blocked-by-allowlist",
  not_allowed_local: "blocked-by-allowlist",
  denied: "blocked-by-denylist",
  method_not_allowed: "blocked-by-method-policy",
  mitm_required: "blocked-by-mitm-required",
} as const;

/** The expected body of a baseline-policy refusal of a plain HTTP request. */
export function blockedBody(host: string, reason: keyof typeof MESSAGES, port: number, over: Partial<BlockedBody> = {}): BlockedBody {
  return {
    status: "blocked",
    host,
    reason,
    decision: "deny",
    source: reason === "method_not_allowed" ? "mode_guard" : "baseline_policy",
    protocol: "http",
    port,
    message: MESSAGES[reason],
    ...over,
  };
}

/** Assert a raw response is the §5 JSON refusal with exactly `body`. */
export function expectBlockedJson(r: RawResponse, body: BlockedBody): void {
  expect(r.status, `status of ${r.text}`).toBe(403);
  expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
  expect(r.headers["x-proxy-error"]).toBe(PROXY_ERROR[body.reason as keyof typeof PROXY_ERROR] ?? "blocked-by-policy");
  expect(JSON.parse(r.text)).toEqual(body);
}

/** Assert a raw response is the §5 text refusal of a CONNECT for `reason`. */
export function expectBlockedConnect(r: RawResponse, reason: keyof typeof MESSAGES): void {
  expect(r.status, `status of ${r.text}`).toBe(403);
  expect(r.headers["content-type"]).toMatch(/^text\/plain\b/);
  expect(r.headers["x-proxy-error"]).toBe(PROXY_ERROR[reason]);
  expect(r.text).toBe(MESSAGES[reason]);
}
