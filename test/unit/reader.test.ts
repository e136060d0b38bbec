import { describe, expect, it } from "vitest";
import { BufferedReader } from "../../src/core/net/reader.ts";
import { connPair } from "../helpers/memory-net.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

describe("BufferedReader", () => {
  it("accumulates trickled bytes in order and consumes from the front", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const text = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50);
    for (const ch of text) await a.write(enc(ch));
    await a.closeWrite();
    while (await r.fill()) {
      // byte at a time
    }
    expect(dec(r.buffered)).toBe(text);
    r.consume(4);
    expect(dec(r.buffered)).toBe(text.slice(4));
    expect(dec(await r.readUpTo(10))).toBe(text.slice(4, 14));
    expect(dec(r.takeBuffered())).toBe(text.slice(14));
    expect(r.ended).toBe(true);
    expect(await r.readUpTo(10)).toBeNull();
  });

  it("never writes into a chunk it adopted or handed out", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    const first = enc("abc");
    await a.write(first);
    await r.fill();
    const view = r.buffered;
    await a.write(enc("def"));
    await r.fill();
    expect(dec(r.buffered)).toBe("abcdef");
    expect(dec(view)).toBe("abc");
    const handed = await r.readUpTo(2);
    await a.write(enc("ghi"));
    await r.fill();
    expect(dec(handed)).toBe("ab");
    expect(dec(r.buffered)).toBe("cdefghi");
  });

  it("readUpTo splits a large chunk and keeps the rest", async () => {
    const [a, b] = connPair();
    const r = new BufferedReader(b);
    await a.write(enc("0123456789"));
    expect(dec(await r.readUpTo(4))).toBe("0123");
    expect(dec(await r.readUpTo(100))).toBe("456789");
  });
});
