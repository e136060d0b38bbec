/**
 * The runtime adapters' byte primitives (runtimes/shared/buffer-bytes.ts) give exactly what the
 * core's portable ones give: same latin1 encoding (obs-text and truncation above 0xFF included)
 * and same joins, so installing them changes speed only.
 */
import { afterAll, describe, expect, it } from "vitest";
import { concatBytes, installFastBytes, latin1Bytes } from "../../src/core/net/bytes.ts";
import { bufferBytes, encodeIntoBytes } from "../../src/runtimes/shared/buffer-bytes.ts";

afterAll(() => installFastBytes(bufferBytes)); // what the Node adapter installs

describe.each([
  ["bufferBytes (Node, Bun)", bufferBytes],
  ["encodeIntoBytes (Deno)", encodeIntoBytes],
] as const)("%s", (_name, impl) => {
  const texts = [
    "",
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "X: caf\xe9 \x80\xff",
    "over latin1: \u0100\u20ac\ud83d\ude00",
    "lone surrogate: \ud800 and \udfff",
    "\x7f\x80",
    "a".repeat(9000) + "\xe9",
  ];

  it.each(texts)("encodes %j exactly as the portable latin1 does", (text) => {
    installFastBytes(undefined); // the core's portable encoder
    const expected = Array.from(latin1Bytes(text));
    // Dirty the pool first: no byte of an earlier array may show through.
    for (let i = 0; i < 50; i++) impl.allocate(64).fill(0xee);
    installFastBytes(impl);
    const got = latin1Bytes(text);
    expect(got.length).toBe(text.length);
    expect(Array.from(got)).toEqual(expected);
  });

  it("joins chunks into a new array of exactly their bytes, whatever the pool held before", () => {
    installFastBytes(impl);
    // Dirty the pool, then join: every byte of the result must come from the chunks.
    for (let i = 0; i < 100; i++) impl.allocate(64).fill(0xee);
    const parts = [Uint8Array.of(1, 2, 3), new Uint8Array(0), Uint8Array.of(4), new Uint8Array(1000).fill(7)];
    const joined = concatBytes(parts);
    expect(joined.length).toBe(1004);
    expect(Array.from(joined.subarray(0, 4))).toEqual([1, 2, 3, 4]);
    expect(joined.subarray(4).every((b) => b === 7)).toBe(true);
  });
});
