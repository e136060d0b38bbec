import { describe, expect, it } from "vitest";
import { MAX_HOST_LENGTH, MAX_LABEL_LENGTH, normalizeHost, splitHostPort } from "../../src/core/policy/host.ts";

type Expected = { name: string; kind: "name" | "ipv4" | "ipv6"; ip?: string };

const v4 = (ip: string): Expected => ({ name: ip, kind: "ipv4", ip });
const v6 = (ip: string, zone?: string): Expected => ({ name: zone ? `${ip}%${zone}` : ip, kind: "ipv6", ip });
const dn = (name: string): Expected => ({ name, kind: "name" });

describe("normalizeHost: IPv4 spellings", () => {
  it.each<[string, Expected]>([
    ["127.0.0.1", v4("127.0.0.1")],
    ["2130706433", v4("127.0.0.1")],
    ["0x7f000001", v4("127.0.0.1")],
    ["0x7f.1", v4("127.0.0.1")],
    ["0X7F.0.0.1", v4("127.0.0.1")],
    ["0177.0.0.1", v4("127.0.0.1")],
    ["017700000001", v4("127.0.0.1")],
    ["127.1", v4("127.0.0.1")],
    ["127.0.1", v4("127.0.0.1")],
    ["10.1", v4("10.0.0.1")],
    ["0", v4("0.0.0.0")],
    ["0x0", v4("0.0.0.0")],
    ["192.168.0.1.", v4("192.168.0.1")],
    ["8.8.8.8:53", v4("8.8.8.8")],
    [" 1.2.3.4 ", v4("1.2.3.4")],
    ["255.255.255.255", v4("255.255.255.255")],
    ["0xa9.0xfe.0xa9.0xfe", v4("169.254.169.254")],
  ])("%j → %j", (raw, expected) => {
    expect(normalizeHost(raw)).toEqual(expected);
  });

  it.each(["256.0.0.1", "1.2.3.4.5", "4294967296", "0x1g.0.0.1", "1..2.3", "127.0.0.1:99999"])(
    "rejects %j",
    (raw) => {
      expect(normalizeHost(raw)).toBeNull();
    },
  );
});

describe("normalizeHost: IPv6", () => {
  it.each<[string, Expected]>([
    ["::1", v6("::1")],
    ["[::1]", v6("::1")],
    ["[::1]:443", v6("::1")],
    ["0:0:0:0:0:0:0:1", v6("::1")],
    ["[0000:0000:0000:0000:0000:0000:0000:0001]", v6("::1")],
    ["::", v6("::")],
    ["[::ffff:127.0.0.1]", v6("::ffff:7f00:1")],
    ["::FFFF:7F00:1", v6("::ffff:7f00:1")],
    ["2001:DB8:0:0:1:0:0:1", v6("2001:db8::1:0:0:1")],
    ["[2001:db8::1]:8080", v6("2001:db8::1")],
    ["fe80::1%lo0", v6("fe80::1", "lo0")],
    ["[fe80::1%25lo0]", v6("fe80::1", "lo0")],
    ["[fe80::1%25eth0]:80", v6("fe80::1", "eth0")],
    ["[fe80::1%lo0]", v6("fe80::1", "lo0")],
    ["FE80::0001%ETH0", v6("fe80::1", "eth0")],
  ])("%j → %j", (raw, expected) => {
    expect(normalizeHost(raw)).toEqual(expected);
  });

  it.each([
    "[::1",
    "::1]",
    "[::1]x",
    "[::1]:",
    "[::1]:http",
    "1::2::3",
    "[::ffff:0x7f.0.0.1]",
    "[::ffff:127.1]",
    "fe80::1%",
    "[fe80::1%25]x",
    "fe80::1%lo 0",
    "fe80::1%lo%300",
    "fe80::1%lo/0",
    "[example.com]",
    "[127.0.0.1]",
    "[]",
    "gggg::1",
  ])("rejects %j", (raw) => {
    expect(normalizeHost(raw)).toBeNull();
  });
});

describe("normalizeHost: names", () => {
  it.each<[string, Expected]>([
    ["example.com", dn("example.com")],
    ["EXAMPLE.Com", dn("example.com")],
    ["example.com.", dn("example.com")],
    ["example.com..", dn("example.com")],
    ["example.com:443", dn("example.com")],
    ["Example.COM.:8080", dn("example.com")],
    ["  example.com\t", dn("example.com")],
    ["localhost", dn("localhost")],
    ["LOCALHOST.", dn("localhost")],
    ["bücher.de", dn("xn--bcher-kva.de")],
    ["BÜCHER.de", dn("xn--bcher-kva.de")],
    ["xn--bcher-kva.de", dn("xn--bcher-kva.de")],
    ["例え.テスト", dn("xn--r8jz45g.xn--zckzah")],
    ["a\u3002b", dn("a.b")],
    ["_dmarc.example.com", dn("_dmarc.example.com")],
    ["a-b.example-1.com", dn("a-b.example-1.com")],
  ])("%j → %j", (raw, expected) => {
    expect(normalizeHost(raw)).toEqual(expected);
  });

  it.each([
    ["empty", ""],
    ["blank", "   "],
    ["only dots", "..."],
    ["NUL", "exa\u0000mple.com"],
    ["CR", "example.com\r.evil"],
    ["LF", "exa\nmple.com"],
    ["space", "exa mple.com"],
    ["tab", "exa\tmple.com"],
    ["slash", "example.com/path"],
    ["backslash", "example.com\\evil"],
    ["at", "user@example.com"],
    ["question", "example.com?x"],
    ["hash", "example.com#x"],
    ["percent", "exa%6dple.com"],
    ["percent-encoded dot", "evil%2ecom"],
    ["empty middle label", "a..b"],
    ["leading dot", ".example.com"],
    ["asterisk", "*.example.com"],
    ["other punctuation", "a!b.com"],
    ["fullwidth slash", "example.com\uff0fx"],
    ["DEL", "exa\u007fmple.com"],
    ["bad port", "example.com:abc"],
    ["port zero", "example.com:0"],
    ["port too big", "example.com:65536"],
    ["empty port", "example.com:"],
    ["two ports", "a:1:2"],
    ["bad punycode", "xn--zz.com"],
    ["numeric last label", "foo.0x"],
  ])("rejects %s (%j)", (_label, raw) => {
    expect(normalizeHost(raw)).toBeNull();
  });

  it("enforces the label length limit", () => {
    const ok = `${"a".repeat(MAX_LABEL_LENGTH)}.com`;
    expect(normalizeHost(ok)?.name).toBe(ok);
    expect(normalizeHost(`${"a".repeat(MAX_LABEL_LENGTH + 1)}.com`)).toBeNull();
  });

  it("enforces the total length limit after punycode", () => {
    const label = "a".repeat(61);
    const ok = [label, label, label, label.slice(0, 59)].join("."); // 61*3 + 59 + 3 = 245
    expect(ok.length).toBeLessThanOrEqual(MAX_HOST_LENGTH);
    expect(normalizeHost(ok)?.name).toBe(ok);
    const exact = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`;
    expect(exact.length).toBe(MAX_HOST_LENGTH);
    expect(normalizeHost(exact)?.name).toBe(exact);
    expect(normalizeHost(`${exact}e`)).toBeNull();
    expect(normalizeHost(`${exact}.`)?.name).toBe(exact);
    // Short in Unicode, too long once punycoded.
    expect(normalizeHost(`${"ü".repeat(60)}.de`)).toBeNull();
  });
});

describe("splitHostPort", () => {
  it.each<[string, { host: string; port: number | undefined } | null]>([
    ["example.com:80", { host: "example.com", port: 80 }],
    ["example.com", { host: "example.com", port: undefined }],
    ["[::1]:80", { host: "::1", port: 80 }],
    ["[::1]", { host: "::1", port: undefined }],
    ["::1", { host: "::1", port: undefined }],
    ["2001:db8::1", { host: "2001:db8::1", port: undefined }],
    ["[fe80::1%25lo0]:443", { host: "fe80::1%lo0", port: 443 }],
    ["1.2.3.4:65535", { host: "1.2.3.4", port: 65535 }],
    ["h:00080", { host: "h", port: 80 }],
    [" h:1 ", { host: "h", port: 1 }],
    ["h:", null],
    ["h:0", null],
    ["h:65536", null],
    ["h:+80", null],
    ["h:8 0", null],
    ["h:0x50", null],
    ["h:800000", null],
    [":80", null],
    ["", null],
    ["[::1]:", null],
    ["[::1]80", null],
    ["[::1", null],
    ["[example.com]:80", null],
  ])("%j → %j", (raw, expected) => {
    expect(splitHostPort(raw)).toEqual(expected);
  });
});
