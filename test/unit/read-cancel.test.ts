/**
 * `Conn.cancelRead` on every adapter: a withdrawn read rejects with the given reason and takes
 * nothing, so the next read gets the bytes that arrive afterwards.
 * Node over real loopback sockets; Bun over a fake of its socket type (Deno: deno-read-cancel.test.ts).
 */
import { once } from "node:events";
import { createServer, connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { PendingRead } from "../../src/runtimes/shared/pending-read.ts";
import { NodeConn } from "../../src/runtimes/shared/node-conn.ts";
import { BunConn } from "../../src/runtimes/bun/net.ts";
import type { BunSocket } from "../../src/runtimes/bun/bun-types.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

describe("PendingRead", () => {
  it("hands a chunk to the waiting read, and says when none waits", async () => {
    const p = new PendingRead();
    expect(p.resolve(enc("nobody"))).toBe(false);
    const read = p.wait();
    expect(p.resolve(enc("x"))).toBe(true);
    expect(dec(await read)).toBe("x");
    expect(p.resolve(enc("y"))).toBe(false); // the read is served: nobody waits any more
  });

  it("a withdrawn wait rejects with the reason and no longer takes chunks", async () => {
    const p = new PendingRead();
    const read = p.wait();
    expect(p.reject(new Error("withdrawn"))).toBe(true);
    await expect(read).rejects.toThrow("withdrawn");
    expect(p.resolve(enc("later"))).toBe(false);
    expect(p.reject(new Error("nobody waits"))).toBe(false);
  });

  it("refuses a second concurrent wait", async () => {
    const p = new PendingRead();
    void p.wait().catch(() => {});
    await expect(p.wait()).rejects.toThrow("concurrent read on one connection");
    p.reject(new Error("end"));
  });
});

describe("NodeConn.cancelRead over loopback", () => {
  it("a withdrawn read loses nothing", async () => {
    const server = createServer({ allowHalfOpen: true });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, "connection") as Promise<[Socket]>;
    const raw = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    await once(raw, "connect");
    const [serverSide] = await accepted;
    const c = new NodeConn(serverSide);
    try {
      const read = c.read();
      c.cancelRead(new Error("withdrawn"));
      await expect(read).rejects.toThrow("withdrawn");
      raw.write("after the withdrawal");
      expect(dec(await c.read())).toBe("after the withdrawal");
    } finally {
      c.close();
      raw.destroy();
      server.close();
    }
  });
});

/** A Bun socket that records nothing but what the connection needs. */
class FakeBunSocket implements BunSocket {
  data: BunConn | undefined;
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 50000;
  readonly localAddress = "127.0.0.1";
  readonly localPort = 3128;
  write(data: Uint8Array | string): number {
    return typeof data === "string" ? data.length : data.length;
  }
  shutdown(): void {}
  end(): void {}
  terminate(): void {}
  pause(): void {}
  resume(): void {}
}

describe("BunConn.cancelRead", () => {
  it("a withdrawn read loses nothing", async () => {
    const c = new BunConn(new FakeBunSocket());
    const read = c.read();
    c.cancelRead(new Error("withdrawn"));
    await expect(read).rejects.toThrow("withdrawn");
    c.onData(enc("queued"));
    expect(dec(await c.read())).toBe("queued");
  });
});
