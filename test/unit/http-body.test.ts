/**
 * Body limits: the chunk-size bound, the idle limit inside a body, and the graceful close that
 * drains what a client still sends after the last response.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { BodyError, BodyIdleError, copyBody, COPY_STOPPED, HEAD_COALESCE_BYTES, MAX_CHUNK_SIZE, parseChunkSize } from "../../src/core/http/body.ts";
import { closeGracefully, LINGER_IDLE_MS, LINGER_MAX_BYTES, LINGER_MAX_MS } from "../../src/core/http/linger.ts";
import { BufferedReader } from "../../src/core/net/reader.ts";
import { latin1Bytes } from "../../src/core/net/bytes.ts";
import { connPair, readAllText } from "../helpers/memory-net.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("parseChunkSize", () => {
  it.each([
    ["0", 0],
    ["a", 10],
    ["FF", 255],
    ["10 ; name=value", 16],
    ["1f\t", 31],
    ["0000000000000001", 1], // 16 digits: still a 64-bit length
    ["1fffffffffffff", MAX_CHUNK_SIZE],
    ["5;", 5],
    ["c0FfEe;ext=\"quoted; more\"", 0xc0ffee],
  ])("%j is %d", (line, size) => {
    expect(parseChunkSize(line)).toBe(size);
  });

  it.each([
    ["20000000000000", "larger than"], // 2^53
    ["fffffffffffffff", "larger than"], // 15 digits
    ["ffffffffffffffff", "larger than"], // 16 digits, 2^64 - 1
    ["00000000000000001", "larger than"], // 17 digits, even of leading zeros
    ["", "malformed"],
    ["-1", "malformed"],
    ["0x10", "malformed"],
    ["g", "malformed"],
    [" 1", "malformed"],
    ["1 x", "malformed"],
    ["1;a\nb", "malformed"],
    ["1 ;a\rb", "malformed"],
  ])("%j is refused (%s)", (line, why) => {
    expect(() => parseChunkSize(line)).toThrow(BodyError);
    expect(() => parseChunkSize(line)).toThrow(why);
  });
});

describe("copyBody with a head: one write for a small response already received", () => {
  const HEAD = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  /** A sink that records each write as one string. */
  const recorder = () => {
    const writes: string[] = [];
    return { writes, sink: { write: async (b: Uint8Array) => void writes.push(new TextDecoder("latin1").decode(b)) } };
  };

  it("joins the head and a body already buffered into one write", async () => {
    const [client, server] = connPair();
    const reader = new BufferedReader(server);
    await client.write(latin1Bytes("hello"));
    await reader.fill();
    const { writes, sink } = recorder();
    await copyBody(reader, { kind: "length", length: 5 }, sink, "raw", { head: latin1Bytes(HEAD) });
    expect(writes).toEqual([HEAD + "hello"]);
  });

  it("sends the head at once, alone, when no body byte has arrived yet (a slow or streamed body)", async () => {
    const [client, server] = connPair();
    const reader = new BufferedReader(server);
    const { writes, sink } = recorder();
    const copying = copyBody(reader, { kind: "length", length: 5 }, sink, "raw", { head: latin1Bytes(HEAD) });
    await vi.waitFor(() => expect(writes).toEqual([HEAD])); // before any body byte was sent
    await client.write(latin1Bytes("hello"));
    await copying;
    expect(writes).toEqual([HEAD, "hello"]);
  });

  it("sends the head alone when the received body is larger than HEAD_COALESCE_BYTES", async () => {
    const [client, server] = connPair();
    const reader = new BufferedReader(server);
    const body = "x".repeat(HEAD_COALESCE_BYTES + 1);
    await client.write(latin1Bytes(body));
    await reader.fill();
    const { writes, sink } = recorder();
    await copyBody(reader, { kind: "length", length: body.length }, sink, "raw", { head: latin1Bytes(HEAD) });
    expect(writes[0]).toBe(HEAD);
    expect(writes.join("")).toBe(HEAD + body);
  });

  it("sends the head of a bodiless response, and keeps a chunked body's head first and alone", async () => {
    const [, server] = connPair();
    const none = recorder();
    await copyBody(new BufferedReader(server), { kind: "none" }, none.sink, "raw", { head: latin1Bytes(HEAD) });
    expect(none.writes).toEqual([HEAD]);

    const [client2, server2] = connPair();
    const reader = new BufferedReader(server2);
    await client2.write(latin1Bytes("5\r\nhello\r\n0\r\n\r\n"));
    await reader.fill();
    const chunked = recorder();
    await copyBody(reader, { kind: "chunked" }, chunked.sink, "chunked", { head: latin1Bytes(HEAD) });
    expect(chunked.writes).toEqual([HEAD, "5\r\nhello\r\n", "0\r\n\r\n"]);
  });

  it("joins the head to the first chunk a close-delimited body is re-framed into", async () => {
    const [client, server] = connPair();
    const reader = new BufferedReader(server);
    await client.write(latin1Bytes("hello"));
    await client.closeWrite();
    await reader.fill();
    const { writes, sink } = recorder();
    await copyBody(reader, { kind: "close" }, sink, "chunked", { head: latin1Bytes(HEAD) });
    expect(writes).toEqual([HEAD + "5\r\nhello\r\n", "0\r\n\r\n"]);
  });
});

describe("copyBody idle limit", () => {
  it("throws BodyIdleError when no byte arrives within idleMs, naming the limit", async () => {
    const [client, server] = connPair();
    const [up] = connPair();
    await client.write(latin1Bytes("abc"));
    const err = await copyBody(new BufferedReader(server), { kind: "length", length: 10 }, up, "raw", { idleMs: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BodyIdleError);
    expect((err as Error).message).toBe("no body byte within 20 ms");
  });

  it("a stopped copy rejects with COPY_STOPPED and leaves later bytes to the next reader", async () => {
    const [client, server] = connPair();
    const [up] = connPair();
    const reader = new BufferedReader(server);
    const stop = { stopped: false };
    const copying = copyBody(reader, { kind: "chunked" }, up, "raw", { stop });
    stop.stopped = true;
    server.cancelRead(COPY_STOPPED);
    await expect(copying).rejects.toBe(COPY_STOPPED);
    await client.write(latin1Bytes("5\r\nhello"));
    expect(await reader.fill()).toBe(true);
    expect(new TextDecoder().decode(reader.buffered)).toBe("5\r\nhello");
  });

  it("a copy stopped between reads starts no further read", async () => {
    const [client, server] = connPair();
    const [up] = connPair();
    const reader = new BufferedReader(server);
    await client.write(latin1Bytes("abc"));
    const stop = { stopped: true };
    await expect(copyBody(reader, { kind: "length", length: 10 }, up, "raw", { stop })).rejects.toBe(COPY_STOPPED);
    expect(new TextDecoder().decode((await reader.readUpTo(10))!)).toBe("abc");
  });
});

describe("closeGracefully", () => {
  it("half-closes, then discards what the client sends until it closes too", async () => {
    const [client, server] = connPair();
    const reader = new BufferedReader(server);
    const closing = closeGracefully(reader);
    await client.write(latin1Bytes("rest of an upload"));
    await client.write(new Uint8Array(300_000));
    await client.closeWrite();
    await closing;
    expect(await readAllText(client)).toBe(""); // our FIN came first, nothing else
  });

  it(`gives up after ${LINGER_IDLE_MS} ms without a byte`, async () => {
    vi.useFakeTimers();
    const [client, server] = connPair();
    let done = false;
    void closeGracefully(new BufferedReader(server)).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(LINGER_IDLE_MS - 100);
    expect(done).toBe(false);
    await client.write(latin1Bytes("still sending"));
    await vi.advanceTimersByTimeAsync(LINGER_IDLE_MS - 100);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(200);
    expect(done).toBe(true);
  });

  it(`gives up after ${LINGER_MAX_MS} ms in all, however the client trickles`, async () => {
    vi.useFakeTimers();
    const [client, server] = connPair();
    let done = false;
    void closeGracefully(new BufferedReader(server)).then(() => (done = true));
    for (let t = 0; t < LINGER_MAX_MS; t += 1000) {
      expect(done).toBe(false);
      await client.write(latin1Bytes("."));
      await vi.advanceTimersByTimeAsync(1000);
    }
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).toBe(true);
  });

  it(`stops after discarding ${LINGER_MAX_BYTES} bytes, with no time passing`, async () => {
    vi.useFakeTimers();
    const [client, server] = connPair();
    let done = false;
    void closeGracefully(new BufferedReader(server)).then(() => (done = true));
    const mib = new Uint8Array(1024 * 1024);
    for (let sent = 0; sent <= LINGER_MAX_BYTES && !done; sent += mib.length) {
      await client.write(mib);
      await vi.advanceTimersByTimeAsync(0);
    }
    expect(done).toBe(true);
  });
});
