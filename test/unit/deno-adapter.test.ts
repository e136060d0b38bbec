/**
 * The Deno adapter's connection over a fake `Deno.TcpConn`: partial writes, serialised writes,
 * half-close after pending writes, end of stream and early close. (Excluded from `tsc`: the
 * adapter uses Deno's types, which `deno check` verifies; vitest strips types to run it.)
 */
import { describe, expect, it } from "vitest";
import { DenoConn, denoNet } from "../../src/runtimes/deno/net.ts";
import { READ_BUFFER_FIT_LIMIT_BYTES, READ_BUFFER_MAX_BYTES, READ_BUFFER_MIN_BYTES, RELAY_BUFFER_MAX_BYTES } from "../../src/runtimes/deno/read-size.ts";

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

/** A TCP conn whose reads return what `script` says (undefined: fill the buffer); records each read's buffer size. */
class SizedReadConn extends FakeTcpConn {
  sizes: number[] = [];
  /** Bytes each successive read returns at most (the socket's backlog); undefined: the buffer is filled. */
  script: (number | undefined)[] = [];
  override async read(buf: Uint8Array): Promise<number | null> {
    this.sizes.push(buf.length);
    const n = this.script.shift();
    const take = Math.min(buf.length, n ?? buf.length);
    buf.fill(7, 0, take);
    return take;
  }
}

describe("DenoConn read buffers adapt to the traffic", () => {
  function sized(script: (number | undefined)[]): { fake: SizedReadConn; c: DenoConn } {
    const fake = new SizedReadConn();
    fake.script = script;
    return { fake, c: new DenoConn(fake as unknown as Deno.TcpConn) };
  }

  /** Sizes of `n` successive reads that all fill their buffer. */
  const growing = (n: number): number[] => Array.from({ length: n }, (_, i) => Math.min(READ_BUFFER_MIN_BYTES * 2 ** i, READ_BUFFER_MAX_BYTES));

  it("starts small, doubles while reads fill the buffer, up to 64 KiB", async () => {
    const { fake, c } = sized(Array(10).fill(undefined));
    for (let i = 0; i < 10; i++) await c.read();
    expect(fake.sizes).toEqual(growing(10));
    expect(fake.sizes[0]).toBeLessThanOrEqual(4 * 1024);
    expect(fake.sizes.at(-1)).toBe(64 * 1024);
  });

  it("drops back to the small buffer after a bulk transfer, so a connection waiting for data holds little", async () => {
    const { fake, c } = sized([undefined, undefined, undefined, undefined, 100, undefined]);
    for (let i = 0; i < 6; i++) await c.read();
    expect(fake.sizes).toEqual([...growing(5), READ_BUFFER_MIN_BYTES]);
  });

  it("fits the next read to a small message that just ended, so the next one like it takes one read", async () => {
    // A 1,300-byte response: 1 KiB (full), then 276 bytes; the next read holds 2 KiB.
    // Then a 100-byte one (back to 1 KiB), a 5,000-byte one in three reads (1 + 2 KiB full, then
    // 1,928 bytes: the next read holds 8 KiB), and the next 5,000 bytes in one read.
    const { fake, c } = sized([undefined, 276, 1300, 1300, 100, undefined, undefined, 1928, 5000, undefined]);
    for (let i = 0; i < 10; i++) await c.read();
    expect(fake.sizes).toEqual([1024, 2048, 2048, 2048, 2048, 1024, 2048, 4096, 8192, 8192]);
    expect(READ_BUFFER_FIT_LIMIT_BYTES).toBe(8 * 1024);
    expect(fake.sizes.every((n) => n <= READ_BUFFER_FIT_LIMIT_BYTES)).toBe(true);
  });

  it("a small chunk from a large buffer is copied out, not a view pinning the buffer", async () => {
    const { c } = sized([undefined, undefined, undefined, 100]);
    for (let i = 0; i < 3; i++) await c.read();
    const chunk = (await c.read())!;
    expect(chunk.length).toBe(100);
    expect(chunk.buffer.byteLength).toBe(100);
  });
});

/** A conn whose reads come from a queue (fed while the relay runs) and record each buffer they got. */
class QueuedConn extends FakeTcpConn {
  buffers: Uint8Array[] = [];
  private queue: (Uint8Array | null | Error)[] = [];
  private waiting: ((v: Uint8Array | null | Error) => void) | undefined;
  feed(item: Uint8Array | string | null | Error): void {
    const v = typeof item === "string" ? enc(item) : item;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      w(v);
    } else this.queue.push(v);
  }
  override async read(buf: Uint8Array): Promise<number | null> {
    this.buffers.push(buf);
    const next = this.queue.length > 0 ? this.queue.shift()! : await new Promise<Uint8Array | null | Error>((r) => (this.waiting = r));
    if (next === null) return null;
    if (next instanceof Error) throw next;
    if (next.length > buf.length) {
      this.queue.unshift(next.subarray(buf.length)); // the rest waits for the next read
      buf.set(next.subarray(0, buf.length));
      return buf.length;
    }
    buf.set(next);
    return next.length;
  }
}

describe("the Deno tunnel relay (denoNet.relay, runtimes/deno/relay.ts)", () => {
  function pair(): { fa: QueuedConn; fb: QueuedConn; a: DenoConn; b: DenoConn } {
    const fa = new QueuedConn();
    const fb = new QueuedConn();
    return { fa, fb, a: new DenoConn(fa as unknown as Deno.TcpConn), b: new DenoConn(fb as unknown as Deno.TcpConn) };
  }

  it("is offered only for two Deno connections", () => {
    const { a } = pair();
    expect(denoNet.relay!(a, {} as never)).toBeUndefined();
  });

  it("copies both ways through partial writes, carries each half-close, and ends when both ended", async () => {
    const { fa, fb, a, b } = pair();
    fa.perWrite = 5;
    fb.perWrite = 7;
    const done = denoNet.relay!(a, b)!;
    fa.feed("client says hello, ");
    fa.feed("twice");
    fb.feed("origin answers");
    fa.feed(null); // the client's FIN: the origin's write half closes, the answer keeps flowing
    await new Promise((r) => setTimeout(r, 20));
    expect(fb.calls).toEqual(["closeWrite after 24 bytes"]);
    fb.feed(" and more");
    fb.feed(null);
    expect(await done).toBe("a"); // the side whose direction ended first
    expect(fb.out).toBe("client says hello, twice");
    expect(fa.out).toBe("origin answers and more");
    expect(fa.calls).toEqual(["closeWrite after 23 bytes"]);
  });

  it("resolves with the side whose direction ended first: b's FIN before a's gives b", async () => {
    const { fa, fb, a, b } = pair();
    const done = denoNet.relay!(a, b)!;
    fb.feed(null);
    await new Promise((r) => setTimeout(r, 10));
    expect(fa.calls).toEqual(["closeWrite after 0 bytes"]);
    fa.feed(null);
    expect(await done).toBe("b");
  });

  it("what a connection already read, or was reading, for its user goes first, in order", async () => {
    const { fa, fb, a, b } = pair();
    // a read started and withdrawn: its bytes are kept for the next read, so the relay takes them first
    const withdrawn = a.read();
    a.cancelRead(new Error("withdrawn"));
    await expect(withdrawn).rejects.toThrow("withdrawn");
    fa.feed("kept ");
    await new Promise((r) => setTimeout(r, 0));
    const done = denoNet.relay!(a, b)!;
    fa.feed("then direct");
    fa.feed(null);
    fb.feed(null);
    await done;
    expect(fb.out).toBe("kept then direct");
  });

  it("reuses a direction's buffer while its size stays, and grows it while reads fill it", async () => {
    const { fa, fb, a, b } = pair();
    const done = denoNet.relay!(a, b)!;
    fa.feed("x".repeat(10));
    fa.feed("y".repeat(10));
    fa.feed("z".repeat(READ_BUFFER_MIN_BYTES * 3)); // fills 1 KiB, then 2 KiB
    fa.feed(null);
    fb.feed(null);
    await done;
    const [first, second, third, fourth] = fa.buffers;
    expect(second).toBe(first); // a short read: the same buffer again
    expect(third).toBe(first);
    expect(fourth!.length).toBe(READ_BUFFER_MIN_BYTES * 2); // a full read doubles it
    expect(fb.out).toBe("x".repeat(10) + "y".repeat(10) + "z".repeat(READ_BUFFER_MIN_BYTES * 3));
  });

  it("grows a direction's buffer up to 256 KiB while reads keep filling it, and back to 1 KiB after a short one", async () => {
    const { fa, fb, a, b } = pair();
    const done = denoNet.relay!(a, b)!;
    const bulk = new Uint8Array(1024 * 1024).fill(9);
    fa.feed(bulk);
    await new Promise((r) => setTimeout(r, 20));
    fa.feed("tail");
    fa.feed(null);
    fb.feed(null);
    await done;
    const sizes = fa.buffers.map((x) => x.length);
    expect(Math.max(...sizes)).toBe(RELAY_BUFFER_MAX_BYTES);
    expect(RELAY_BUFFER_MAX_BYTES).toBe(256 * 1024);
    expect(sizes.slice(0, 9)).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256].map((k) => k * 1024));
    expect(sizes.at(-1)).toBe(READ_BUFFER_MIN_BYTES); // the read after the short one ("tail")
    expect(fb.out.length).toBe(bulk.length + 4);
  });

  it("a failed read fails the relay, while the other direction still waits", async () => {
    const { fa, a, b } = pair();
    const done = denoNet.relay!(a, b)!;
    fa.feed(new Error("connection reset"));
    await expect(done).rejects.toThrow("connection reset");
  });

  it("after one direction failed, the other finishing (or failing too) changes nothing and leaves no stray rejection", async () => {
    const { fa, fb, a, b } = pair();
    fa.perWrite = 3; // b → a goes in several writes: that direction is mid-write when a's read fails
    const done = denoNet.relay!(a, b)!;
    const settled = done.then(
      () => "resolved",
      (e: Error) => e.message,
    );
    fb.feed("a long answer");
    await new Promise((r) => setTimeout(r, 0));
    fa.feed(new Error("connection reset"));
    fb.feed(" and its end");
    fb.feed(new Error("reset as well"));
    // the other direction runs on until its own failure: wait for its last bytes (bounded)
    for (let i = 0; i < 500 && fa.out !== "a long answer and its end"; i++) await new Promise((r) => setTimeout(r, 2));
    expect(fa.out).toBe("a long answer and its end");
    await new Promise((r) => setTimeout(r, 0)); // its failure settles after its last write
    expect(await settled).toBe("connection reset"); // the first failure, once
  });

  it("a failed write fails the relay", async () => {
    const { fa, fb, a, b } = pair();
    fb.write = async () => {
      throw new Error("broken pipe");
    };
    const done = denoNet.relay!(a, b)!;
    fa.feed("lost");
    await expect(done).rejects.toThrow("broken pipe");
  });

  it("a read still in flight when the relay starts (a withdrawn one) is taken first, data and then end alike", async () => {
    const { fa, fb, a, b } = pair();
    const withdrawn = a.read(); // in flight: the fake waits for a feed
    a.cancelRead(new Error("withdrawn"));
    await expect(withdrawn).rejects.toThrow("withdrawn");
    const done = denoNet.relay!(a, b)!;
    fa.feed("first ");
    fa.feed("second");
    fa.feed(null);
    fb.feed(null);
    await done;
    expect(fb.out).toBe("first second");
    expect(fb.calls).toEqual(["closeWrite after 12 bytes"]);
  });

  it("an end of stream in the withdrawn read half-closes the other side", async () => {
    const { fa, fb, a, b } = pair();
    const withdrawn = a.read();
    a.cancelRead(new Error("withdrawn"));
    await expect(withdrawn).rejects.toThrow("withdrawn");
    const done = denoNet.relay!(a, b)!;
    fa.feed(null);
    fb.feed(null);
    await done;
    expect(fb.calls).toEqual(["closeWrite after 0 bytes"]);
  });

  it("a write still queued on the other side before the relay goes out first, whole", async () => {
    const { fa, fb, a, b } = pair();
    fb.perWrite = 2; // the queued write takes several turns
    void b.write(enc("queued before the relay, "));
    const done = denoNet.relay!(a, b)!;
    fa.feed("then relayed");
    fa.feed(null);
    fb.feed(null);
    await done;
    expect(fb.out).toBe("queued before the relay, then relayed");
  });

  it("does not grow a direction's buffer while the other side's reader is behind (partial writes)", async () => {
    const { fa, fb, a, b } = pair();
    fb.perWrite = 300; // every chunk needs several writes
    const done = denoNet.relay!(a, b)!;
    fa.feed(new Uint8Array(64 * 1024).fill(7));
    await new Promise((r) => setTimeout(r, 50));
    fa.feed(null);
    fb.feed(null);
    await done;
    expect(Math.max(...fa.buffers.map((x) => x.length))).toBe(READ_BUFFER_MIN_BYTES);
    expect(fb.out.length).toBe(64 * 1024);
  });

  it("reads nothing itself while a direction waits on a read of the connection's (the withdrawn one)", async () => {
    const { fa, fb, a, b } = pair();
    const withdrawn = a.read();
    a.cancelRead(new Error("withdrawn"));
    await expect(withdrawn).rejects.toThrow("withdrawn");
    const done = denoNet.relay!(a, b)!;
    await new Promise((r) => setTimeout(r, 10));
    expect(fa.buffers).toHaveLength(1); // only the withdrawn read's own buffer: the relay waits on it
    fa.feed(null);
    fb.feed(null);
    await done;
  });
});
