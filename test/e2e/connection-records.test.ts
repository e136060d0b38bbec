/**
 * Connection records (issue 15 item 2, docs/behaviour.md §8.6) on node, bun and deno: when a
 * tunnel or a client connection ends, one `codex.network_proxy.connection_closed` log record
 * reaches the OTLP collector with its protocol, server address and port, client address, bytes
 * each way, duration and how it ended, exported from the main thread and from the worker. No
 * URL path or query is in any of them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlHttp, networkConfig, type Origin, RawClient, RUNTIME, startBannerServer, startEchoServer, startOrigin, startProxy, type TcpServer } from "./helpers/index.ts";
import { allRecords, type OtlpLogRecord, type OtlpReceiver, startOtlpReceiver } from "./helpers/otlp.ts";

let origin: Origin;
let echo: TcpServer;
let banner: TcpServer;
let receiver: OtlpReceiver;
const BANNER = "SSH-2.0-origin-speaks-first\r\n";

beforeAll(async () => {
  [origin, echo, banner, receiver] = await Promise.all([startOrigin(), startEchoServer(), startBannerServer(BANNER), startOtlpReceiver()]);
});

afterAll(async () => {
  await Promise.allSettled([origin?.close(), echo?.close(), banner?.close(), receiver?.close()]);
});

const closed = (records: OtlpLogRecord[]) => records.filter((r) => r.attributes["event.name"] === "codex.network_proxy.connection_closed");

describe(`connection_closed records (${RUNTIME})`, () => {
  it.each(["main", "worker"])("a tunnel and a client connection each give one record (export in the %s thread)", async (thread) => {
    const before = allRecords(receiver).length;
    const text = networkConfig({ allowed_domains: ["127.0.0.1"] }) + `\n[otel]\nexporter = { otlp-http = { endpoint = "${receiver.endpoint}", protocol = "json" } }\n`;
    const proxy = await startProxy(text, { env: { CODEX_NETWORK_PROXY_AUDIT_THREAD: thread } });
    let tunnelClient = "";
    try {
      // a tunnel: 5 bytes each way, then the client closes
      const c = await RawClient.connect(proxy.port);
      tunnelClient = `127.0.0.1:${c.socket.localPort}`;
      await c.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
      expect((await c.readResponse({ connect: true })).status).toBe(200);
      await c.write("hello");
      expect((await c.readBytes(5, 5_000)).toString()).toBe("hello");
      c.socket.end();
      await c.waitClosed(5_000);
      // a tunnel the origin closes first, after sending more than the client did
      const b = await RawClient.connect(proxy.port, "127.0.0.1", { allowHalfOpen: true });
      await b.write(`CONNECT 127.0.0.1:${banner.port} HTTP/1.1\r\nHost: 127.0.0.1:${banner.port}\r\n\r\n`);
      expect((await b.readResponse({ connect: true })).status).toBe(200);
      expect((await b.readBytes(BANNER.length, 5_000)).toString()).toBe(BANNER);
      await b.write("hi");
      b.socket.end();
      await b.waitClosed(5_000);
      // a plain request on a connection of its own
      expect((await curlHttp(["-x", `http://127.0.0.1:${proxy.port}`, `${origin.url}/secret-path?token=abc`])).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      expect(await proxy.stop()).toBe(0); // flushes the export
    }
    const records = closed(allRecords(receiver).slice(before));
    const tunnel = records.find((r) => r.attributes["network.proxy.connection.kind"] === "tunnel");
    expect(tunnel?.attributes).toMatchObject({
      "network.transport.protocol": "https_connect",
      "server.address": "127.0.0.1",
      "server.port": echo.port,
      "client.address": tunnelClient,
      "network.proxy.bytes.to_origin": 5,
      "network.proxy.bytes.to_client": 5,
      "network.proxy.close_reason": "client_closed",
    });
    expect(typeof tunnel?.attributes["network.proxy.duration_ms"]).toBe("number");
    const spoken = records.find((r) => r.attributes["server.port"] === banner.port);
    expect(spoken?.attributes).toMatchObject({
      "network.proxy.connection.kind": "tunnel",
      "network.proxy.bytes.to_client": BANNER.length,
      "network.proxy.close_reason": "origin_closed",
    });
    expect(Number(spoken?.attributes["network.proxy.bytes.to_origin"])).toBeLessThanOrEqual(2);
    // the tunnel's client connection ends as its tunnel did
    const carrier = records.find((r) => r.attributes["network.proxy.connection.kind"] === "connection" && r.attributes["client.address"] === tunnelClient);
    expect(carrier?.attributes["network.proxy.close_reason"]).toBe("client_closed");
    const connections = records.filter((r) => r.attributes["network.proxy.connection.kind"] === "connection");
    expect(connections.length).toBeGreaterThanOrEqual(2); // the tunnel's client connection and curl's
    for (const r of connections) {
      expect(r.attributes).toMatchObject({ "network.transport.protocol": "http", "server.address": "127.0.0.1", "server.port": proxy.port });
      expect(Number(r.attributes["network.proxy.bytes.to_origin"])).toBeGreaterThan(0);
      expect(["client_closed", "origin_closed", "proxy_closed"]).toContain(r.attributes["network.proxy.close_reason"]);
    }
    expect(JSON.stringify(records)).not.toContain("secret-path");
    expect(JSON.stringify(records)).not.toContain("token=abc");
  });
});
