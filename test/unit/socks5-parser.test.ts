import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AddressType, Command, Reply } from "../../src/core/socks5/constants.ts";
import { encodeDatagramHeader, encodeReply, parseDatagram, parseGreeting, parseRequest, type Parsed } from "../../src/core/socks5/parser.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);
const port = (p: number) => [p >> 8, p & 0xff];
const ascii = (s: string) => [...new TextEncoder().encode(s)];

/** Feed `msg` to `parse` cut into two reads at every position, as a socket might deliver it. */
function everySplit<T>(parse: (b: Uint8Array) => Parsed<T>, msg: Uint8Array): Parsed<T>[] {
  const results: Parsed<T>[] = [];
  for (let cut = 0; cut <= msg.length; cut++) {
    const first = parse(msg.subarray(0, cut));
    if (cut < msg.length) expect(first, `prefix of ${cut} bytes`).toEqual({ kind: "more" });
    results.push(parse(msg)); // the second read brings the rest: the buffer is the whole message
  }
  return results;
}

describe("SOCKS5 greeting", () => {
  it("parses at every split and reports the bytes used", () => {
    const msg = bytes(5, 2, 0x00, 0x02, 0xaa); // trailing byte belongs to the next message
    for (const r of everySplit(parseGreeting, msg.subarray(0, 4))) expect(r).toEqual({ kind: "ok", value: { methods: [0, 2] }, size: 4 });
    expect(parseGreeting(msg)).toEqual({ kind: "ok", value: { methods: [0, 2] }, size: 4 });
  });

  it("rejects other versions and empty method lists", () => {
    expect(parseGreeting(bytes(4, 1, 0))).toMatchObject({ kind: "error", message: expect.stringContaining("0x04") });
    expect(parseGreeting(bytes(5, 0))).toMatchObject({ kind: "error" });
  });
});

describe("SOCKS5 request", () => {
  const cases: [string, number[], unknown][] = [
    ["IPv4 CONNECT", [5, Command.CONNECT, 0, AddressType.IPV4, 127, 0, 0, 1, ...port(8080)], { command: 1, target: { type: "ipv4", host: "127.0.0.1", port: 8080 } }],
    ["IPv6 CONNECT", [5, Command.CONNECT, 0, AddressType.IPV6, ...Array(15).fill(0), 1, ...port(443)], { command: 1, target: { type: "ipv6", host: "::1", port: 443 } }],
    ["domain CONNECT", [5, Command.CONNECT, 0, AddressType.DOMAIN, 9, ...ascii("localhost"), ...port(80)], { command: 1, target: { type: "domain", host: "localhost", port: 80 } }],
    ["UDP ASSOCIATE", [5, Command.UDP_ASSOCIATE, 0, AddressType.IPV4, 0, 0, 0, 0, 0, 0], { command: 3, target: { type: "ipv4", host: "0.0.0.0", port: 0 } }],
    ["BIND", [5, Command.BIND, 0, AddressType.IPV4, 127, 0, 0, 1, ...port(1)], { command: 2, target: { type: "ipv4", host: "127.0.0.1", port: 1 } }],
  ];
  it.each(cases)("%s parses at every split", (_name, raw, value) => {
    for (const r of everySplit(parseRequest, Uint8Array.from(raw))) expect(r).toEqual({ kind: "ok", value, size: raw.length });
  });

  it("an unknown address type is reply 0x08", () => {
    expect(parseRequest(bytes(5, 1, 0, 0x05, 1, 2))).toMatchObject({ kind: "error", reply: Reply.ADDRESS_TYPE_NOT_SUPPORTED });
  });

  it("a bad reserved byte or version is a general failure", () => {
    expect(parseRequest(bytes(5, 1, 1, 1, 127, 0, 0, 1, 0, 80))).toMatchObject({ kind: "error", reply: Reply.GENERAL_FAILURE });
    expect(parseRequest(bytes(4, 1, 0, 1, 127, 0, 0, 1, 0, 80))).toMatchObject({ kind: "error", reply: Reply.GENERAL_FAILURE });
  });

  it("keeps a domain with bytes that cannot be in a hostname for the policy to refuse", () => {
    const r = parseRequest(bytes(5, 1, 0, 3, 4, 0x61, 0x00, 0x62, 0x0a, 0, 80));
    expect(r).toMatchObject({ kind: "ok", value: { target: { type: "domain", host: "a\0b\n" } } });
    const invalidUtf8 = parseRequest(bytes(5, 1, 0, 3, 2, 0xff, 0xfe, 0, 80));
    expect(invalidUtf8).toMatchObject({ kind: "ok", value: { target: { host: "\ufffd\ufffd" } } });
  });

  it("keeps an empty domain name for the policy to refuse, port and all", () => {
    for (const r of everySplit(parseRequest, bytes(5, 1, 0, 3, 0, 0, 80))) {
      expect(r).toEqual({ kind: "ok", value: { command: 1, target: { type: "domain", host: "", port: 80 } }, size: 7 });
    }
  });
});

describe("SOCKS5 UDP datagram", () => {
  it("parses header and payload", () => {
    const d = parseDatagram(bytes(0, 0, 0, 1, 127, 0, 0, 1, ...port(5353), 9, 8, 7));
    expect(d).toEqual({ kind: "ok", value: { frag: 0, target: { type: "ipv4", host: "127.0.0.1", port: 5353 }, data: bytes(9, 8, 7) } });
    expect(parseDatagram(bytes(0, 0, 2, 3, 1, 0x61, 0, 1))).toMatchObject({ kind: "ok", value: { frag: 2, target: { host: "a", port: 1 } } });
  });

  it("refuses truncated or malformed datagrams", () => {
    expect(parseDatagram(bytes(0, 0, 0))).toMatchObject({ kind: "error" });
    expect(parseDatagram(bytes(0, 0, 0, 1, 127, 0))).toMatchObject({ kind: "error", message: expect.stringContaining("inside its address") });
    expect(parseDatagram(bytes(1, 0, 0, 1, 127, 0, 0, 1, 0, 1))).toMatchObject({ kind: "error" });
    expect(parseDatagram(bytes(0, 0, 0, 9, 127, 0, 0, 1, 0, 1))).toMatchObject({ kind: "error" });
  });
});

describe("SOCKS5 encoding", () => {
  it("encodes replies with IPv4, IPv6 and unknown bound addresses", () => {
    expect(encodeReply(Reply.SUCCEEDED, { host: "127.0.0.1", port: 1080 })).toEqual(bytes(5, 0, 0, 1, 127, 0, 0, 1, 4, 56));
    expect(encodeReply(Reply.SUCCEEDED, { host: "::1", port: 2 })).toEqual(bytes(5, 0, 0, 4, ...Array(15).fill(0), 1, 0, 2));
    expect(encodeReply(Reply.NOT_ALLOWED)).toEqual(bytes(5, 2, 0, 1, 0, 0, 0, 0, 0, 0));
    expect(encodeDatagramHeader({ host: "127.0.0.1", port: 7 })).toEqual(bytes(0, 0, 0, 1, 127, 0, 0, 1, 0, 7));
  });

  it("a header it encodes parses back to the same address", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ maxLength: 64 }), (ip, p, payload) => {
        const header = encodeDatagramHeader({ host: ip, port: p });
        const d = new Uint8Array(header.length + payload.length);
        d.set(header);
        d.set(payload, header.length);
        const r = parseDatagram(d);
        expect(r.kind).toBe("ok");
        if (r.kind === "ok") {
          expect(r.value.target.port).toBe(p);
          expect(encodeDatagramHeader(r.value.target)).toEqual(header);
          expect(r.value.data).toEqual(payload);
        }
      }),
    );
  });
});

describe("SOCKS5 parsers never throw", () => {
  const arbitrary = fc.uint8Array({ maxLength: 300 });
  it.each([
    ["greeting", parseGreeting],
    ["request", parseRequest],
    ["datagram", parseDatagram],
  ] as const)("%s: random bytes give a result, never an exception", (_name, parse) => {
    fc.assert(
      fc.property(arbitrary, (b) => {
        const r = (parse as (b: Uint8Array) => { kind: string })(b);
        expect(["more", "ok", "error"]).toContain(r.kind);
      }),
      { numRuns: 2000 },
    );
  });

  it("request: random bytes after a valid prefix give a result, never an exception", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 3), fc.integer({ min: 0, max: 255 }), arbitrary, (cmd, atyp, rest) => {
        const b = Uint8Array.from([5, cmd, 0, atyp, ...rest]);
        const r = parseRequest(b);
        expect(["more", "ok", "error"]).toContain(r.kind);
        if (r.kind === "ok") expect(r.size).toBeLessThanOrEqual(b.length);
      }),
      { numRuns: 2000 },
    );
  });
});
