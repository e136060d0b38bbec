/**
 * HTTP served on connections accepted by the adapter (src/runtimes/shared/conn-http.ts, the
 * Deno adapter's admin server): real `node:http` and `@hono/node-server` over in-memory
 * connections. Keep-alive, request bodies, half-close by the client, closing every connection,
 * and the idle timeout.
 */
import { describe, expect, it } from "vitest";
import type { Conn } from "../../src/core/net/contract.ts";
import { connHttpServer } from "../../src/runtimes/shared/conn-http.ts";
import { connPair, readAllText } from "../helpers/memory-net.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** Read from `conn` until `text` holds `count` complete responses (Content-Length bodies). */
async function readResponses(conn: Conn, count: number, timeoutMs = 5_000): Promise<string> {
  let text = "";
  const deadline = Date.now() + timeoutMs;
  const complete = (): number => {
    let n = 0;
    let at = 0;
    for (;;) {
      const end = text.indexOf("\r\n\r\n", at);
      if (end < 0) return n;
      const len = Number(/content-length: (\d+)/i.exec(text.slice(at, end))?.[1] ?? 0);
      if (text.length < end + 4 + len) return n;
      n++;
      at = end + 4 + len;
    }
  };
  while (complete() < count) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} responses; got:\n${text}`);
    const chunk = await Promise.race([conn.read(), new Promise<"wait">((r) => setTimeout(() => r("wait"), 50))]);
    if (chunk === "wait") continue;
    if (chunk === null) break;
    text += new TextDecoder().decode(chunk);
  }
  return text;
}

const app = async (request: Request): Promise<Response> => {
  const url = new URL(request.url);
  if (request.method === "POST") return new Response(`got ${(await request.text()).length} bytes`);
  return new Response(`${request.method} ${url.pathname} host=${request.headers.get("host")}`);
};

describe("connHttpServer", () => {
  it("serves several requests on one kept-alive connection", async () => {
    const [client, server] = connPair();
    connHttpServer(app).serve(server);
    await client.write(enc("GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\nGET /blocked HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"));
    const text = await readResponses(client, 2);
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain("GET /health host=127.0.0.1:8080");
    expect(text).toContain("GET /blocked host=127.0.0.1:8080");
    client.close();
  });

  it("passes request bodies to the handler", async () => {
    const [client, server] = connPair();
    connHttpServer(app).serve(server);
    const body = "x".repeat(20_000);
    await client.write(enc(`POST /mode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    expect(await readResponses(client, 1)).toContain("got 20000 bytes");
    client.close();
  });

  it("answers and closes when the client half-closes after its request", async () => {
    const [client, server] = connPair();
    connHttpServer(app).serve(server);
    await client.write(enc("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
    await client.closeWrite();
    const text = await readAllText(client); // ends: the server closed its side
    expect(text).toContain("GET /health");
  });

  it("closeAll closes every connection being served", async () => {
    const [client, server] = connPair();
    const http = connHttpServer(app);
    http.serve(server);
    await client.write(enc("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    await readResponses(client, 1);
    http.closeAll();
    expect(await readAllText(client)).toBe(""); // nothing more, then FIN from the closed server side
  });

  it("closes a connection that stays silent past the idle timeout", async () => {
    const [client, server] = connPair();
    connHttpServer(app, 50).serve(server);
    expect(await readAllText(client)).toBe("");
  });
});
