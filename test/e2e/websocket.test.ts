/**
 * WebSocket (and any `Upgrade`) over plain HTTP through the proxy, with a real client (`ws`
 * through `http-proxy-agent`, which sends absolute-form requests): in full mode the 101 turns
 * the connection into a byte relay; in limited mode the upgrade is refused with
 * `method_not_allowed` (it would open a write channel); an origin that declines the upgrade is
 * answered like any response.
 */
import { HttpProxyAgent } from "http-proxy-agent";
import { type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { networkConfig, type ProxyProcess, startProxy, withDeadline } from "./helpers/index.ts";

let server: WebSocketServer;
let wsPort: number;
let full: ProxyProcess;
let limited: ProxyProcess;
const paths: string[] = [];

beforeAll(async () => {
  server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    verifyClient: (info: { req: { url?: string } }) => info.req.url !== "/reject",
  });
  server.on("connection", (socket, req) => {
    paths.push(req.url ?? "");
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  await new Promise<void>((r) => server.once("listening", () => r()));
  wsPort = (server.address() as AddressInfo).port;
  [full, limited] = await Promise.all([
    startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] })),
    startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], mode: "limited" })),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([full?.stop(), limited?.stop()]);
  await new Promise((r) => server?.close(r));
});

/** Open a WebSocket through `proxy`; resolves when open, rejects with the HTTP status otherwise. */
function open(proxy: ProxyProcess, url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { agent: new HttpProxyAgent(proxy.url) });
  return withDeadline(
    new Promise<WebSocket>((resolve, reject) => {
      ws.once("open", () => resolve(ws));
      ws.once("unexpected-response", (_req, res) => {
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, proxyError: res.headers["x-proxy-error"] }));
        res.resume();
        ws.terminate();
      });
      ws.once("error", reject);
    }),
    10_000,
    `WebSocket ${url}`,
  );
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return withDeadline(new Promise((resolve) => ws.once("message", (data, isBinary) => resolve({ data: data as Buffer, isBinary }))), 10_000, "echo");
}

describe("WebSocket through the proxy", () => {
  it("full mode: the upgrade is relayed and messages echo both ways", async () => {
    const ws = await open(full, `ws://127.0.0.1:${wsPort}/chat?room=1`);
    try {
      for (const text of ["hello", "second", "x".repeat(70_000)]) {
        const reply = nextMessage(ws);
        ws.send(text);
        expect((await reply).data.toString()).toBe(text);
      }
      const big = Buffer.alloc(1024 * 1024, 7);
      const reply = nextMessage(ws);
      ws.send(big);
      const got = await reply;
      expect(got.isBinary).toBe(true);
      expect(got.data.equals(big)).toBe(true);
      expect(paths.at(-1)).toBe("/chat?room=1");
    } finally {
      const closed = new Promise((r) => ws.once("close", r));
      ws.close();
      await withDeadline(closed, 10_000, "close handshake through the relay");
    }
  });

  it("limited mode: the upgrade is refused with method_not_allowed (403 blocked-by-method-policy)", async () => {
    const before = paths.length;
    await expect(open(limited, `ws://127.0.0.1:${wsPort}/chat`)).rejects.toMatchObject({ status: 403, proxyError: "blocked-by-method-policy" });
    expect(paths.length).toBe(before);
  });

  it("a refused host is refused before any upgrade", async () => {
    await expect(open(full, "ws://not-listed.invalid/chat")).rejects.toMatchObject({ status: 403, proxyError: "blocked-by-allowlist" });
  });

  it("an origin that declines the upgrade is answered like any response, and the proxy goes on", async () => {
    await expect(open(full, `ws://127.0.0.1:${wsPort}/reject`)).rejects.toMatchObject({ status: 401 });
    const ws = await open(full, `ws://127.0.0.1:${wsPort}/after`);
    ws.terminate();
  });
});

describe("WebSocket and the tunnel limit (docs/behaviour.md §5.20)", () => {
  it("an upgraded connection holds a max_tunnels slot until it closes", async () => {
    const capped = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"], max_tunnels: 1 }));
    try {
      const first = await open(capped, `ws://127.0.0.1:${wsPort}/first`);
      const second = await open(capped, `ws://127.0.0.1:${wsPort}/second`).then(
        (ws) => (ws.terminate(), 101),
        (e: { status?: number; proxyError?: string }) => (expect(e.proxyError).toBe("blocked-by-limit"), e.status),
      );
      expect(second).toBe(429);
      first.close();
      await withDeadline(new Promise((r) => first.once("close", r)), 10_000, "close");
      // the slot comes back once the relay has ended
      let opened: WebSocket | undefined;
      for (let i = 0; i < 30 && !opened; i++) {
        opened = await open(capped, `ws://127.0.0.1:${wsPort}/third`).catch(() => undefined);
        if (!opened) await new Promise((r) => setTimeout(r, 100));
      }
      expect(opened).toBeDefined();
      opened!.close();
    } finally {
      await capped.stop();
    }
  });
});
