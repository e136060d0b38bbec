/**
 * `Conn.cancelRead` on the Deno adapter, over a fake `Deno.TcpConn`: a socket read cannot be
 * cancelled, so a withdrawn read leaves it in flight and the next read takes it over. (Excluded
 * from `tsc` like the other Deno adapter tests: it needs Deno's types.)
 */
import { describe, expect, it } from "vitest";
import { DenoConn } from "../../src/runtimes/deno/net.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** A Deno conn whose reads complete when the test feeds bytes. */
class FakeDenoConn {
  remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 50000 };
  localAddr = { transport: "tcp", hostname: "127.0.0.1", port: 3128 };
  reads = 0;
  private feed: ((bytes: Uint8Array | null) => void) | undefined;
  setNoDelay(): void {}
  read(buf: Uint8Array): Promise<number | null> {
    this.reads++;
    return new Promise((resolve) => {
      this.feed = (bytes) => {
        if (bytes === null) return resolve(null);
        buf.set(bytes);
        resolve(bytes.length);
      };
    });
  }
  give(bytes: Uint8Array | null): void {
    const f = this.feed;
    this.feed = undefined;
    f?.(bytes);
  }
  async write(bytes: Uint8Array): Promise<number> {
    return bytes.length;
  }
  async closeWrite(): Promise<void> {}
  close(): void {}
}

describe("DenoConn.cancelRead", () => {
  it("a withdrawn read leaves its operation in flight for the next read: no byte is lost", async () => {
    const fake = new FakeDenoConn();
    const c = new DenoConn(fake as unknown as Deno.TcpConn);
    const read = c.read();
    c.cancelRead(new Error("withdrawn"));
    await expect(read).rejects.toThrow("withdrawn");
    fake.give(enc("taken over"));
    expect(dec(await c.read())).toBe("taken over");
    expect(fake.reads).toBe(1); // one socket read served both calls
  });

  it("a withdrawn read that sees end of stream passes it on", async () => {
    const fake = new FakeDenoConn();
    const c = new DenoConn(fake as unknown as Deno.TcpConn);
    const read = c.read();
    c.cancelRead(new Error("withdrawn"));
    await expect(read).rejects.toThrow("withdrawn");
    fake.give(null);
    expect(await c.read()).toBeNull();
  });

  it("reads that were not withdrawn start a new socket read each time", async () => {
    const fake = new FakeDenoConn();
    const c = new DenoConn(fake as unknown as Deno.TcpConn);
    const first = c.read();
    fake.give(enc("one"));
    expect(dec(await first)).toBe("one");
    const second = c.read();
    fake.give(enc("two"));
    expect(dec(await second)).toBe("two");
    expect(fake.reads).toBe(2);
  });

  it("refuses a second concurrent read", async () => {
    const fake = new FakeDenoConn();
    const c = new DenoConn(fake as unknown as Deno.TcpConn);
    const first = c.read();
    await expect(c.read()).rejects.toThrow("concurrent read on one connection");
    fake.give(enc("one"));
    expect(dec(await first)).toBe("one");
  });
});
