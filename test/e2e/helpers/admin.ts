/**
 * Talking to the proxy's admin API over plain sockets, and rewriting a watched config file
 * with a chosen modification time.
 */
import { renameSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { RawClient, type RawResponse } from "./raw.ts";

/** Options of {@link adminRequest}. */
export interface AdminRequestOptions {
  /** Request body (sent with a Content-Length). */
  body?: string | Uint8Array;
  /** `Authorization: Bearer <token>`. */
  token?: string;
  /** Extra header lines, e.g. `{ "content-type": "application/json" }`. Not `Host`: see {@link host}. */
  headers?: Record<string, string>;
  /** The `Host` header value (default `127.0.0.1:<port>`); `null` sends no Host line at all. */
  host?: string | null;
  /** Deadline for the whole exchange. Default 5 s. */
  timeoutMs?: number;
}

/**
 * One request to the admin API at `127.0.0.1:port` on a fresh connection (`Connection: close`),
 * the response read and parsed. A write error (the server answered early and closed) is ignored
 * so the response can still be read.
 */
export async function adminRequest(port: number, method: string, path: string, opts: AdminRequestOptions = {}): Promise<RawResponse> {
  if (Object.keys(opts.headers ?? {}).some((k) => k.toLowerCase() === "host")) throw new Error("adminRequest: set Host with the host option, not in headers");
  const host = opts.host === undefined ? `127.0.0.1:${port}` : opts.host;
  const c = await RawClient.connect(port);
  try {
    const body = opts.body === undefined ? undefined : typeof opts.body === "string" ? Buffer.from(opts.body, "utf8") : Buffer.from(opts.body);
    let head = `${method} ${path} HTTP/1.1\r\n${host === null ? "" : `Host: ${host}\r\n`}Connection: close\r\n`;
    if (opts.token !== undefined) head += `Authorization: Bearer ${opts.token}\r\n`;
    for (const [k, v] of Object.entries(opts.headers ?? {})) head += `${k}: ${v}\r\n`;
    if (body !== undefined) head += `Content-Length: ${body.length}\r\n`;
    else if (method === "POST") head += "Content-Length: 0\r\n";
    head += "\r\n";
    await c.write(body === undefined ? head : Buffer.concat([Buffer.from(head, "latin1"), body])).catch(() => undefined);
    return await c.readResponse({ noBody: method === "HEAD", timeoutMs: opts.timeoutMs ?? 5_000 });
  } finally {
    c.destroy();
  }
}

/** `GET path` on the admin API, the body parsed as JSON (asserting a 200). */
export async function adminJson<T = unknown>(port: number, path: string, token?: string): Promise<T> {
  const r = await adminRequest(port, "GET", path, { token });
  if (r.status !== 200) throw new Error(`GET ${path} on the admin API answered ${r.status}: ${r.text}`);
  return JSON.parse(r.text) as T;
}

/**
 * Replace `path` with `text` atomically (write a sibling, rename over) and give it modification
 * time `mtimeMs`, so a watcher that polls the mtime sees exactly one change (or none, when
 * `mtimeMs` is the file's current mtime). Returns the mtime set.
 */
export function replaceFileWithMtime(path: string, text: string, mtimeMs: number): number {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, text);
  const t = new Date(mtimeMs);
  utimesSync(tmp, t, t);
  renameSync(tmp, path);
  return statSync(path).mtimeMs;
}

/** Current modification time of `path` in ms. */
export function mtimeOf(path: string): number {
  return statSync(path).mtimeMs;
}
