/**
 * Running curl (always with an explicit `--noproxy ""` and a proxy-free environment, so no
 * environment variable can make it bypass or chain the proxy under test).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { proxyFreeEnv } from "./util.ts";

export const CURL = existsSync("/usr/bin/curl") ? "/usr/bin/curl" : "curl";

export interface CurlResult {
  /** curl's exit code (0 on success; 22 with --fail, 56 on a refused CONNECT, …). */
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Run curl with `args` (bounded by `timeoutMs`). */
export function curl(args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<CurlResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    execFile(
      CURL,
      ["--noproxy", "", "--silent", "--show-error", "--max-time", String(Math.ceil(timeoutMs / 1000)), ...args],
      { encoding: "buffer", maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs + 2_000, env: proxyFreeEnv() },
      (err, stdout, stderr) => {
        const code: unknown = err ? (err as { code?: unknown }).code : 0;
        if (typeof code !== "number") {
          if (err?.killed) return reject(new Error(`curl ${args.join(" ")} killed after ${timeoutMs} ms`));
          return reject(err ?? new Error("curl failed"));
        }
        resolve({ code, stdout, stderr: stderr.toString("utf8") });
      },
    );
  });
}

/** A response as curl saw it with `-D -` (final response only, interim 1xx skipped). */
export interface CurlHttp extends CurlResult {
  readonly status: number;
  /** Lower-cased header names. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly text: string;
}

/** Run curl with `-D -` and split status, headers and body. */
export async function curlHttp(args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<CurlHttp> {
  const r = await curl(["-D", "-", ...args], opts);
  let rest = r.stdout;
  let status = 0;
  let headers: Record<string, string> = {};
  // with -p (proxytunnel), curl also prints the proxy's "HTTP/1.1 200 Connection established" head
  for (;;) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0 || !rest.subarray(0, 5).toString("latin1").startsWith("HTTP/")) break;
    const lines = rest.subarray(0, end).toString("latin1").split("\r\n");
    status = Number(lines[0]!.split(" ")[1]);
    headers = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(":");
      if (c > 0) {
        const k = line.slice(0, c).trim().toLowerCase();
        const v = line.slice(c + 1).trim();
        headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
      }
    }
    rest = rest.subarray(end + 4);
    const next = rest.subarray(0, 5).toString("latin1");
    const interim = status >= 100 && status < 200;
    // a tunnel's 200 is followed by the response inside it (-p, or any https:// URL via a proxy)
    const tunnel = status === 200 && next === "HTTP/" && (args.includes("-p") || (args.includes("-x") && args.some((a) => a.startsWith("https://"))));
    if (!interim && !tunnel) break;
  }
  return { ...r, status, headers, body: rest, text: rest.toString("utf8") };
}
