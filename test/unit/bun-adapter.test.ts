/**
 * The Bun adapter's connection over a fake `Bun.Socket`: the awkward paths that real sockets
 * rarely show on loopback — partial writes, drain ordering, half-close both ways, early close,
 * buffer reuse and read backpressure.
 */
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BunConn, READ_QUEUE_HIGH_WATER } from "../../src/runtimes/bun/net.ts";
import type { BunSocket } from "../../src/runtimes/bun/bun-types.ts";

/** The Bun that `npm ci` installed (a devDependency). */
const BUN = fileURLToPath(new URL("../../node_modules/.bin/bun", import.meta.url));

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

/** A socket that takes at most `capacity` bytes until more room is granted. */
class FakeSocket implements BunSocket {
  data: BunConn | undefined;
  readonly remoteAddress = "::ffff:127.0.0.1";
  readonly remotePort = 50000;
  readonly localAddress = "127.0.0.1";
  readonly localPort = 3128;
  out = "";
  capacity = Infinity;
  calls: string[] = [];
  write(data: Uint8Array | string): number {
    const bytes = typeof data === "string" ? enc(data) : data;
    const n = Math.min(bytes.length, this.capacity);
    this.capacity -= n;
    this.out += dec(bytes.subarray(0, n));
    return n;
  }
  shutdown(): void {
    this.calls.push("shutdown");
  }
  end(): void {
    this.calls.push("end");
  }
  terminate(): void {
    this.calls.push("terminate");
  }
  pause(): void {
    this.calls.push("pause");
  }
  resume(): void {
    this.calls.push("resume");
  }
}

function conn(): { socket: FakeSocket; c: BunConn } {
  const socket = new FakeSocket();
  const c = new BunConn(socket);
  socket.data = c;
  return { socket, c };
}

/** Whether `p` has settled (after letting queued microtasks run). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

describe("BunConn", () => {
  it("reports the peer address without the IPv4-mapped prefix", () => {
    expect(conn().c.remote).toEqual({ host: "127.0.0.1", port: 50000 });
  });

  it("a partial write keeps the rest until drain, and resolves only then", async () => {
    const { socket, c } = conn();
    socket.capacity = 3;
    const w = c.write(enc("hello"));
    expect(socket.out).toBe("hel");
    expect(await settled(w)).toBe(false);
    socket.capacity = Infinity;
    c.onDrain();
    await w;
    expect(socket.out).toBe("hello");
  });

  it("writes issued while one is pending go out in order after it", async () => {
    const { socket, c } = conn();
    socket.capacity = 2;
    const a = c.write(enc("abc"));
    const b = c.write(enc("def"));
    expect(socket.out).toBe("ab");
    socket.capacity = 2;
    c.onDrain();
    expect(socket.out).toBe("abcd");
    socket.capacity = Infinity;
    c.onDrain();
    await Promise.all([a, b]);
    expect(socket.out).toBe("abcdef");
  });

  it("closeWrite flushes first, then sends FIN with shutdown() (not end(), which closes both)", async () => {
    const { socket, c } = conn();
    socket.capacity = 1;
    void c.write(enc("xy"));
    const fin = c.closeWrite();
    expect(socket.calls).toEqual([]);
    socket.capacity = Infinity;
    c.onDrain();
    await fin;
    expect(socket.out).toBe("xy");
    expect(socket.calls).toEqual(["shutdown"]);
    await expect(c.write(enc("late"))).rejects.toThrow();
  });

  it("after the peer's FIN, reads end while writing goes on (half-close)", async () => {
    const { socket, c } = conn();
    c.onData(enc("last words"));
    c.onEnd();
    expect(dec(await c.read())).toBe("last words");
    expect(await c.read()).toBeNull();
    await c.write(enc("still talking"));
    expect(socket.out).toBe("still talking");
  });

  it("a clean close by the peer without an end event is end of stream", async () => {
    const { c } = conn();
    const r = c.read();
    c.onClose();
    expect(await r).toBeNull();
  });

  it("an early close with an error fails the pending read and the pending write", async () => {
    const { socket, c } = conn();
    socket.capacity = 0;
    const w = c.write(enc("never sent"));
    const r = c.read();
    c.onClose(new Error("ECONNRESET"));
    await expect(r).rejects.toThrow("ECONNRESET");
    await expect(w).rejects.toThrow();
  });

  it("keeps a chunk intact when the view it came in is reused (a plain Uint8Array is copied)", async () => {
    const { c } = conn();
    const view = enc("original");
    c.onData(view);
    view.fill(0);
    expect(dec(await c.read())).toBe("original");
  });

  it("the installed Bun hands each data event a fresh Buffer of its own, which it never reuses", () => {
    // what keeping a data event's Buffer as it is relies on: checked on a real loopback socket
    const script = `
      const N = 4 * 1024 * 1024;
      const chunks = [];
      let total = 0;
      const expected = (k) => (k * 7) % 251;
      const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data(_s, d) {
        chunks.push(d);
        total += d.length;
        if (total < N + 2000) return;
        // the stream is 2,000 "x" then the data: every byte kept must still be what was sent
        let intact = true, g = 0;
        for (const c of chunks) for (let i = 0; i < c.length; i++, g++) if (c[i] !== (g < 2000 ? 120 : expected(g - 2000))) intact = false;
        const buffers = new Set(chunks.map((c) => c.buffer));
        console.log(JSON.stringify({
          events: chunks.length,
          allBuffers: chunks.every((c) => c instanceof Buffer),
          distinct: buffers.size === chunks.length,
          ownWhole: chunks.every((c) => c.byteOffset === 0 && c.buffer.byteLength === c.length),
          intact,
          bytes: g,
        }));
        process.exit(0);
      } } });
      const data = new Uint8Array(N).map((_, i) => expected(i));
      let small = 0, at = 0;
      const pump = (s) => {
        while (small < 2000) { if (s.write("x") <= 0) return; small++; }
        while (at < N) { const n = s.write(data.subarray(at, Math.min(N, at + 65536))); if (n <= 0) return; at += n; }
      };
      Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { open: pump, drain: pump, data() {} } });
      setTimeout(() => { console.log("timeout"); process.exit(1); }, 20000);
    `;
    const out = execFileSync(BUN, ["-e", script], { encoding: "utf8", timeout: 30_000 });
    expect(JSON.parse(out.trim())).toMatchObject({ allBuffers: true, distinct: true, ownWhole: true, intact: true, bytes: 4 * 1024 * 1024 + 2000 });
  });

  it("keeps a Buffer from a data event as it is: Bun hands each event a fresh one", async () => {
    const { c } = conn();
    const chunk = Buffer.from("fresh");
    c.onData(chunk);
    expect(await c.read()).toBe(chunk);
  });

  it("pauses the socket above the read high-water mark and resumes when drained", async () => {
    const { socket, c } = conn();
    const big = new Uint8Array(READ_QUEUE_HIGH_WATER / 2 + 1);
    c.onData(big);
    c.onData(big);
    expect(socket.calls).toContain("pause");
    await c.read();
    await c.read();
    expect(socket.calls.at(-1)).toBe("resume");
  });

  it("close() flushes what is unsent with end(), never a reset, and fails a pending read", async () => {
    const { socket, c } = conn();
    socket.capacity = 2;
    void c.write(enc("abcd")).catch(() => {});
    const r = c.read();
    socket.capacity = Infinity;
    c.close();
    await expect(r).rejects.toThrow();
    expect(socket.out).toBe("abcd");
    expect(socket.calls.filter((x) => x !== "resume")).toEqual(["end"]);
    c.close(); // idempotent
    expect(socket.calls.filter((x) => x !== "resume")).toEqual(["end"]);
  });
});
