/**
 * The Deno adapter's connection over a fake `Deno.TcpConn`: partial writes, serialised writes,
 * half-close after pending writes, end of stream and early close. (Excluded from `tsc`: the
 * adapter uses Deno's types, which `deno check` verifies; vitest strips types to run it.)
 */
import { describe, expect, it } from "vitest";
import { DenoConn } from "../../src/runtimes/deno/net.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** A TCP conn that takes at most `perWrite` bytes per write and serves scripted reads. */
class FakeTcpConn {
  remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 50000 };
  localAddr = { transport: "tcp", hostname: "127.0.0.1", port: 3128 };
  out = "";
  writes = 0;
  perWrite = Infinity;
  calls: string[] = [];
  reads: (string | null | Error)[] = [];
  setNoDelay(): void {}
  async read(buf: Uint8Array): Promise<number | null> {
    const next = this.reads.shift();
    if (next === undefined || next === null) return null;
    if (next instanceof Error) throw next;
    const bytes = enc(next);
    buf.set(bytes);
    return bytes.length;
  }
  async write(bytes: Uint8Array): Promise<number> {
    await new Promise((r) => setTimeout(r, 0)); // a real write is asynchronous
    const n = Math.min(bytes.length, this.perWrite);
    this.writes++;
    this.out += dec(bytes.subarray(0, n));
    return n;
  }
  async closeWrite(): Promise<void> {
    this.calls.push(`closeWrite after ${this.out.length} bytes`);
  }
  close(): void {
    this.calls.push("close");
  }
}

function conn(): { fake: FakeTcpConn; c: DenoConn } {
  const fake = new FakeTcpConn();
  return { fake, c: new DenoConn(fake as unknown as Deno.TcpConn) };
}

describe("DenoConn", () => {
  it("loops over partial writes until every byte is taken", async () => {
    const { fake, c } = conn();
    fake.perWrite = 3;
    await c.write(enc("0123456789"));
    expect(fake.out).toBe("0123456789");
    expect(fake.writes).toBe(4);
  });

  it("serialises concurrent writes: a partial one finishes before the next starts", async () => {
    const { fake, c } = conn();
    fake.perWrite = 2;
    await Promise.all([c.write(enc("aaaa")), c.write(enc("bbbb")), c.write(enc("cc"))]);
    expect(fake.out).toBe("aaaabbbbcc");
  });

  it("closeWrite waits for pending writes, then half-closes; later writes fail", async () => {
    const { fake, c } = conn();
    fake.perWrite = 1;
    const w = c.write(enc("abc"));
    await c.closeWrite();
    await w;
    expect(fake.calls).toEqual(["closeWrite after 3 bytes"]);
    await expect(c.write(enc("late"))).rejects.toThrow();
  });

  it("reads chunks until end of stream, while writing stays possible", async () => {
    const { fake, c } = conn();
    fake.reads = ["one", "two", null];
    expect(dec(await c.read())).toBe("one");
    expect(dec(await c.read())).toBe("two");
    expect(await c.read()).toBeNull();
    await c.write(enc("reply"));
    expect(fake.out).toBe("reply");
  });

  it("an early reset surfaces as a failed read", async () => {
    const { fake, c } = conn();
    fake.reads = [new Error("connection reset")];
    await expect(c.read()).rejects.toThrow("connection reset");
  });

  it("close is idempotent and stops further reads and writes", async () => {
    const { fake, c } = conn();
    c.close();
    c.close();
    expect(fake.calls).toEqual(["close"]);
    await expect(c.read()).rejects.toThrow();
    await expect(c.write(enc("x"))).rejects.toThrow();
  });
});
