/**
 * `x-unix-socket: /abs/path` on plain HTTP requests (docs/behaviour.md §5, "ours": every platform
 * whose runtime can dial unix sockets): forwarded over the socket when the path is in
 * `allow_unix_sockets` (byte-equal or the same file through a symlink), else a 403 JSON refusal
 * with host `unix-socket` and reason `not_allowed`; relative paths never match; limited mode
 * still applies. The header is never ignored: the request never goes to the TCP host.
 */
import { symlinkSync } from "node:fs";
import { join, relative as relativePath } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  curlHttp,
  type EchoReply,
  makeTempDir,
  networkConfig,
  type Origin,
  type ProxyProcess,
  requestOnce,
  startOrigin,
  startProxy,
} from "./helpers/index.ts";

let tmp: { dir: string; remove(): void };
let sockPath: string;
let linkPath: string;
let unixOrigin: Origin;
let tcpOrigin: Origin;
let withSocket: ProxyProcess;
let withoutSocket: ProxyProcess;
let limited: ProxyProcess;

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-unix-");
  sockPath = join(tmp.dir, "origin.sock");
  linkPath = join(tmp.dir, "link.sock");
  [unixOrigin, tcpOrigin] = await Promise.all([startOrigin({ socketPath: sockPath }), startOrigin()]);
  symlinkSync(sockPath, linkPath);
  [withSocket, withoutSocket, limited] = await Promise.all([
    startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], allow_unix_sockets: [sockPath] })),
    startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] })),
    startProxy(networkConfig({ mode: "limited", allowed_domains: ["127.0.0.1"], allow_unix_sockets: [sockPath] })),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([withSocket, withoutSocket, limited].map((p) => p?.stop()));
  await Promise.allSettled([unixOrigin?.close(), tcpOrigin?.close()]);
  tmp?.remove();
});

function viaSocket(proxy: ProxyProcess, socket: string, path: string, method = "GET"): ReturnType<typeof requestOnce> {
  const a = `127.0.0.1:${tcpOrigin.port}`;
  return requestOnce(proxy.port, `${method} http://${a}${path} HTTP/1.1\r\nHost: ${a}\r\nx-unix-socket: ${socket}\r\nContent-Length: 0\r\n\r\n`);
}

describe("x-unix-socket", () => {
  it("an allowed socket path: the request is forwarded over the unix socket, never to the TCP host", async () => {
    const tcpBefore = tcpOrigin.requests.length;
    const r = await viaSocket(withSocket, sockPath, "/over-unix");
    expect(r.status, r.text).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/over-unix");
    expect(unixOrigin.requests.at(-1)?.url).toBe("/over-unix");
    expect(tcpOrigin.requests.length, "must not fall back to the TCP host").toBe(tcpBefore);
  });

  it("curl -x … -H 'x-unix-socket: PATH' reaches the unix origin", async () => {
    const r = await curlHttp(["-x", withSocket.url, "-H", `x-unix-socket: ${sockPath}`, `http://127.0.0.1:${tcpOrigin.port}/via-curl`]);
    expect(r.status).toBe(200);
    expect(unixOrigin.requests.at(-1)?.url).toBe("/via-curl");
  });

  it("a symlink to an allowed socket is the same file → allowed", async () => {
    const r = await viaSocket(withSocket, linkPath, "/over-link");
    expect(r.status, r.text).toBe(200);
    expect(unixOrigin.requests.at(-1)?.url).toBe("/over-link");
  });

  it("a relative path is refused (403 not_allowed), even one naming the allowed socket", async () => {
    const before = unixOrigin.requests.length;
    const relative = relativePath(process.cwd(), sockPath);
    const r = await viaSocket(withSocket, relative, "/relative");
    expect(r.status, r.text).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ host: "unix-socket", reason: "not_allowed" });
    expect(unixOrigin.requests.length).toBe(before);
  });

  it("a path not in allow_unix_sockets → 403 JSON, host unix-socket, reason not_allowed", async () => {
    const tcpBefore = tcpOrigin.requests.length;
    const r = await viaSocket(withSocket, join(tmp.dir, "other.sock"), "/nope");
    expect(r.status, r.text).toBe(403);
    expect(r.headers["content-type"]).toMatch(/^application\/json\b/);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-allowlist");
    expect(JSON.parse(r.text)).toMatchObject({ status: "blocked", host: "unix-socket", reason: "not_allowed", decision: "deny", protocol: "http", message: "Domain not in allowlist." });
    expect(tcpOrigin.requests.length, "must not fall back to the TCP host").toBe(tcpBefore);
  });

  it("no allow_unix_sockets at all → 403, the header is never ignored", async () => {
    const tcpBefore = tcpOrigin.requests.length;
    const r = await viaSocket(withoutSocket, sockPath, "/ignored?");
    expect(r.status, r.text).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ host: "unix-socket", reason: "not_allowed" });
    expect(tcpOrigin.requests.length, "must not fall back to the TCP host").toBe(tcpBefore);
  });

  it("limited mode still applies to unix-socket requests", async () => {
    const before = unixOrigin.requests.length;
    const r = await viaSocket(limited, sockPath, "/limited-unix", "POST");
    expect(r.status, r.text).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
    expect(JSON.parse(r.text)).toMatchObject({ reason: "method_not_allowed", source: "mode_guard" });
    expect(unixOrigin.requests.length).toBe(before);
  });
});
