/**
 * The Node adapter's own read buffers (runtimes/shared/own-reads.ts): memory a consumer still
 * refers to is never read into again. A relay target that queues every chunk (as a socket that
 * could not write at once does) and a read queue that keeps chunks must both see exactly the
 * bytes that were sent, whatever the reads after them did. Real loopback sockets.
 */
import { once } from "node:events";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LARGE_READ_BYTES, OwnReads, SMALL_READ_BYTES } from "../../src/runtimes/shared/own-reads.ts";

const sockets: net.Socket[] = [];
const servers: net.Server[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A server that sends `pieces`, each after the previous was read (small writes, one per read). */
async function sender(pieces: Buffer[]): Promise<number> {
  const server = net.createServer(async (s) => {
    sockets.push(s);
    for (const p of pieces) {
      s.write(p);
      await new Promise((r) => setTimeout(r, 2));
    }
    s.end();
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as net.AddressInfo).port;
}

const piece = (i: number, n: number) => Buffer.alloc(n, i % 256);

describe("OwnReads", () => {
  it("never reads into a buffer a relay target still holds (kept as a view, or copied behind a queue)", async () => {
    const pieces = Array.from({ length: 40 }, (_, i) => piece(i, 1000));
    const port = await sender(pieces);
    const held: Buffer[] = [];
    // A target that keeps every chunk as given (a view) and reports it queued until the next
    // turn of the event loop: a chunk written to an empty queue is kept as a view (its buffer
    // must then never be read into again), one written behind a queue is given as a copy.
    let queued = 0;
    const target = {
      get writableLength() {
        return queued;
      },
      write: (c: Buffer) => {
        held.push(c);
        queued += c.length;
        setImmediate(() => (queued = 0));
        return true;
      },
      once: () => target,
    } as unknown as net.Socket;
    const reads = new OwnReads();
    const s = net.connect({ port, host: "127.0.0.1", onread: reads.option });
    sockets.push(s);
    reads.attach(s, () => {
      throw new Error("no chunk may reach the queue once relaying");
    });
    reads.relayTo(target);
    await once(s, "end");
    expect(Buffer.concat(held)).toEqual(Buffer.concat(pieces));
  });

  it("never pins a buffer much larger than the chunk the read queue keeps", async () => {
    // After a full 2 KiB read the buffer is 64 KiB; the 3 KiB read into it must not keep all of it.
    const pieces = Array.from({ length: 30 }, (_, i) => piece(i, 5000));
    const port = await sender(pieces);
    const kept: Uint8Array[] = [];
    const reads = new OwnReads();
    const s = net.connect({ port, host: "127.0.0.1", onread: reads.option });
    sockets.push(s);
    reads.attach(s, (c) => kept.push(c));
    await once(s, "end");
    expect(Buffer.concat(kept)).toEqual(Buffer.concat(pieces));
    for (const c of kept) expect(c.buffer.byteLength, `a ${c.length}-byte chunk`).toBeLessThanOrEqual(Math.max(8192, 2 * c.length));
  });

  it("hands the read queue chunks it may keep, small and large", async () => {
    const pieces = [piece(1, 100), piece(2, SMALL_READ_BYTES), piece(3, 3 * LARGE_READ_BYTES), piece(4, 10)];
    const port = await sender(pieces);
    const kept: Uint8Array[] = [];
    const reads = new OwnReads();
    const s = net.connect({ port, host: "127.0.0.1", onread: reads.option });
    sockets.push(s);
    s.on("data", () => {}); // flowing, as NodeConn keeps it, so `end` is emitted
    reads.attach(s, (c) => kept.push(c));
    await once(s, "end");
    expect(Buffer.concat(kept)).toEqual(Buffer.concat(pieces));
  });
});
