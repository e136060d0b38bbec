/**
 * The shared upstream pool (src/core/http/upstream-pool.ts): a client that closes after each
 * request gets an idle upstream connection another client left; a pooled connection never
 * serves another destination; a reload or mode change takes effect on the next request of a
 * kept-alive client and closes every pooled connection; a request with a body never takes one.
 * The origin tells the proxy's upstream connections apart by their source port.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { adminRequest } from "./helpers/admin.ts";
import { absoluteGet, networkConfig, type ProxyProcess, RawClient, requestOnce, startProxy } from "./helpers/index.ts";

/** What the origin saw: each request's upstream source port, and which sockets closed. */
interface Seen {
  readonly requests: { path: string; port: number }[];
  readonly closed: Set<number>;
}

let server: Server;
let originPort: number;
const seen: Seen = { requests: [], closed: new Set() };
let proxy: ProxyProcess;

const config = (allowed: string[], extra: Record<string, unknown> = {}) => networkConfig({ allowed_domains: allowed, ...extra });

beforeAll(async () => {
  server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const port = req.socket.remotePort ?? 0;
    seen.requests.push({ path: req.url ?? "", port });
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
      res.end("ok");
    });
  });
  server.on("connection", (socket) => {
    const port = socket.remotePort ?? 0;
    socket.on("close", () => seen.closed.add(port));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  originPort = (server.address() as AddressInfo).port;
  proxy = await startProxy(config(["127.0.0.1", "localhost"]), { waitForAdmin: true });
});

afterAll(async () => {
  await proxy?.stop();
  server?.closeAllConnections();
  await new Promise<void>((r) => server?.close(() => r()));
});

beforeEach(() => {
  seen.requests.length = 0;
});

const origin = () => `127.0.0.1:${originPort}`;
/** One request on a fresh client connection that asks to close after it. */
const once = (authority: string, path: string) => requestOnce(proxy.port, absoluteGet(authority, path, "Connection: close\r\n"));
const portsOf = (prefix: string) => seen.requests.filter((r) => r.path.startsWith(prefix)).map((r) => r.port);

async function waitFor(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("upstream pool", () => {
  it("clients that close after each request share one upstream connection", async () => {
    for (let i = 0; i < 6; i++) {
      const r = await once(origin(), `/share-${i}`);
      expect(r.status, r.text).toBe(200);
    }
    // Without the pool each client costs a new upstream connection (6 ports); with it, at most
    // the first request (and one that raced the previous client's release) dials.
    expect(new Set(portsOf("/share-")).size).toBeLessThanOrEqual(2);
  });

  it("never hands a connection made for one host name to another at the same address", async () => {
    for (let i = 0; i < 4; i++) {
      expect((await once(origin(), `/ip-${i}`)).status).toBe(200);
      expect((await once(`localhost:${originPort}`, `/name-${i}`)).status).toBe(200);
    }
    const byIp = new Set(portsOf("/ip-"));
    const byName = new Set(portsOf("/name-"));
    expect([...byIp].filter((p) => byName.has(p))).toEqual([]);
    // Each name still reuses its own.
    expect(byIp.size).toBeLessThanOrEqual(2);
    expect(byName.size).toBeLessThanOrEqual(2);
  });

  it("a request with a body never takes a pooled connection", async () => {
    expect((await once(origin(), "/before-post")).status).toBe(200);
    const pooled = portsOf("/before-post")[0]!;
    const post = `POST http://${origin()}/post HTTP/1.1\r\nHost: ${origin()}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`;
    expect((await requestOnce(proxy.port, post)).status).toBe(200);
    expect(portsOf("/post")[0]).not.toBe(pooled);
  });

  it("a non-idempotent request without a body (POST with Content-Length: 0) never takes a pooled connection", async () => {
    expect((await once(origin(), "/before-empty-post")).status).toBe(200);
    const pooled = portsOf("/before-empty-post")[0]!;
    const post = `POST http://${origin()}/empty-post HTTP/1.1\r\nHost: ${origin()}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
    expect((await requestOnce(proxy.port, post)).status).toBe(200);
    expect(portsOf("/empty-post")[0]).not.toBe(pooled);
  });

  it("a connection that carried NTLM or Negotiate authentication is never handed to another client", async () => {
    const authed = absoluteGet(origin(), "/ntlm", "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==\r\nConnection: close\r\n");
    expect((await requestOnce(proxy.port, authed)).status).toBe(200);
    const pinned = portsOf("/ntlm")[0]!;
    await waitFor("the pinned connection to be closed, not parked", () => seen.closed.has(pinned));
    expect((await once(origin(), "/after-ntlm")).status).toBe(200);
    expect(portsOf("/after-ntlm")[0]).not.toBe(pinned);
  });

  it("a reload applies to the next request of a kept-alive client and closes every pooled connection", async () => {
    const client = await RawClient.connect(proxy.port);
    try {
      await client.write(absoluteGet(origin(), "/kept-1"));
      expect((await client.readResponse()).status).toBe(200);
      expect((await once(origin(), "/parked")).status).toBe(200);
      const parked = portsOf("/parked")[0]!;
      expect(seen.closed.has(parked)).toBe(false);

      writeFileSync(proxy.configPath, config(["localhost"]));
      expect((await adminRequest(proxy.adminPort!, "POST", "/reload")).status).toBe(200);
      await waitFor("the pooled connection to be closed by the reload", () => seen.closed.has(parked));

      await client.write(absoluteGet(origin(), "/kept-2"));
      const refused = await client.readResponse();
      expect(refused.status).toBe(403);
      expect(portsOf("/kept-2")).toEqual([]);
    } finally {
      client.destroy();
      writeFileSync(proxy.configPath, config(["127.0.0.1", "localhost"]));
      expect((await adminRequest(proxy.adminPort!, "POST", "/reload")).status).toBe(200);
    }
    // Allowed again: served on a new upstream connection, not the one closed by the reload.
    expect((await once(origin(), "/after")).status).toBe(200);
    expect(seen.closed.has(portsOf("/after")[0]!)).toBe(false);
  });

  it("a mode change applies to the next request of a kept-alive client and closes every pooled connection", async () => {
    const client = await RawClient.connect(proxy.port);
    const mode = (m: string) => adminRequest(proxy.adminPort!, "POST", "/mode", { body: JSON.stringify({ mode: m }), headers: { "content-type": "application/json" } });
    try {
      await client.write(`POST http://${origin()}/kept-mode-1 HTTP/1.1\r\nHost: ${origin()}\r\nContent-Length: 2\r\n\r\nhi`);
      expect((await client.readResponse()).status).toBe(200);
      expect((await once(origin(), "/before-mode")).status).toBe(200);
      const parked = portsOf("/before-mode")[0]!;
      expect((await mode("limited")).status).toBe(200);
      await waitFor("the pooled connection to be closed by the mode change", () => seen.closed.has(parked));
      // the same client connection: its next write request is refused, and reaches nothing
      await client.write(`POST http://${origin()}/kept-mode-2 HTTP/1.1\r\nHost: ${origin()}\r\nContent-Length: 0\r\n\r\n`);
      const refused = await client.readResponse();
      expect(refused.status).toBe(403);
      expect(refused.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
      expect(portsOf("/kept-mode-2")).toEqual([]);
      // an allowed request on it goes over a connection opened under the new mode, not the old one
      const kept = portsOf("/kept-mode-1")[0]!;
      await client.write(absoluteGet(origin(), "/kept-mode-3"));
      expect((await client.readResponse()).status).toBe(200);
      expect(portsOf("/kept-mode-3")[0]).not.toBe(kept);
      await waitFor("the client's upstream from before the mode change to be closed", () => seen.closed.has(kept));
    } finally {
      client.destroy();
      expect((await mode("full")).status).toBe(200);
    }
  });
});
