import { describe, expect, it } from "vitest";
import { normalizeHost } from "../../src/core/policy/host.ts";
import { compilePatterns, PatternError } from "../../src/core/policy/patterns.ts";

/** Normalise like the decision engine does before asking `matches`. */
function name(host: string): string {
  const n = normalizeHost(host);
  if (!n) throw new Error(`test host ${host} does not normalise`);
  return n.name;
}

describe("compilePatterns: matching table (docs/behaviour.md §2)", () => {
  it.each<[string, string, boolean]>([
    // `*`
    ["*", "example.com", true],
    ["*", "a.b.c.d", true],
    ["*", "127.0.0.1", true],
    ["*", "::1", true],
    ["*:443", "example.com", true],
    // exact
    ["example.com", "example.com", true],
    ["example.com", "www.example.com", false],
    ["example.com", "evilexample.com", false],
    ["example.com", "example.com.evil.net", false],
    ["example.com", "com", false],
    // `*.` any depth, not apex, never evil prefix
    ["*.example.com", "a.example.com", true],
    ["*.example.com", "a.b.example.com", true],
    ["*.example.com", "x.y.z.example.com", true],
    ["*.example.com", "example.com", false],
    ["*.example.com", "evilexample.com", false],
    ["*.example.com", "a.evilexample.com", false],
    ["*.example.com", "example.com.evil.net", false],
    // `**.` apex and any depth
    ["**.example.com", "example.com", true],
    ["**.example.com", "a.example.com", true],
    ["**.example.com", "a.b.example.com", true],
    ["**.example.com", "evilexample.com", false],
    ["**.example.com", "other.com", false],
    // mid-label
    ["region*.v2.example.com", "region1.v2.example.com", true],
    ["region*.v2.example.com", "region-eu-west.v2.example.com", true],
    ["region*.v2.example.com", "region.v2.example.com", true],
    ["region*.v2.example.com", "xregion1.v2.example.com", false],
    ["region*.v2.example.com", "region1.x.v2.example.com", false],
    ["region*.v2.example.com", "a.region1.v2.example.com", false],
    ["region*.v2.example.com", "region1.v3.example.com", false],
    ["region*.v2.example.com", "region1.v2example.com", false],
    ["*-api.example.com", "eu-api.example.com", true],
    ["*-api.example.com", "eu.x-api.example.com", false],
    ["a*b*c.example.com", "abc.example.com", true],
    ["a*b*c.example.com", "a123b456c.example.com", true],
    ["a*b*c.example.com", "a123c.example.com", false],
    ["cdn*", "cdn1", true],
    ["cdn*", "cdn1.com", false],
    // `*` label in a non-leading position: exactly one label
    ["api.*.example.com", "api.eu.example.com", true],
    ["api.*.example.com", "api.example.com", false],
    ["api.*.example.com", "api.a.b.example.com", false],
    ["*.*.example.com", "a.b.example.com", true],
    ["*.*.example.com", "a.b.c.example.com", true],
    ["*.*.example.com", "a.example.com", false],
    ["**.*.example.com", "a.example.com", true],
    ["**.*.example.com", "example.com", false],
    ["*.region*.example.com", "x.region1.example.com", true],
    ["*.region*.example.com", "region1.example.com", false],
    ["**.region*.example.com", "region1.example.com", true],
    ["*.*", "a.b", true],
    ["*.*", "a", false],
    // case-insensitive, trailing dots
    ["EXAMPLE.COM", "example.com", true],
    ["*.Example.Com.", "WWW.EXAMPLE.COM", true],
    ["example.com.", "example.com", true],
    // IP literals in any spelling, canonicalised
    ["127.1", "127.0.0.1", true],
    ["2130706433", "127.0.0.1", true],
    ["0x7f.0.0.1", "127.0.0.1", true],
    ["[::ffff:127.0.0.1]", "::ffff:7f00:1", true],
    ["0:0:0:0:0:0:0:1", "::1", true],
    ["::1", "::1", true],
    ["::1", "::2", false],
    // zones: an entry without zone covers any zone; a zoned entry only its zone
    ["fe80::1", "fe80::1%lo0", true],
    ["[fe80::1%25lo0]", "fe80::1%lo0", true],
    ["fe80::1%lo0", "fe80::1%eth0", false],
    ["fe80::1%lo0", "fe80::1", false],
    // IDN
    ["bücher.de", "xn--bcher-kva.de", true],
    ["*.bücher.de", "shop.xn--bcher-kva.de", true],
    ["**.BÜCHER.de", "xn--bcher-kva.de", true],
  ])("%j matches %j: %s", (pattern, host, expected) => {
    expect(compilePatterns([pattern]).matches(name(host), 443)).toBe(expected);
  });

  it("does not let a name wildcard match an IP literal host", () => {
    const p = compilePatterns(["*.0.0.1.example", "**.example.com"]);
    expect(p.matches("127.0.0.1", 443)).toBe(false);
    expect(p.matches("::1", 443)).toBe(false);
  });

  it("combines many patterns of every kind", () => {
    const p = compilePatterns(["example.com", "*.corp.net", "**.internal", "build*.ci.dev", "api.*.svc"]);
    const table: Array<[string, boolean]> = [
      ["example.com", true],
      ["x.example.com", false],
      ["a.corp.net", true],
      ["corp.net", false],
      ["internal", true],
      ["x.y.internal", true],
      ["build42.ci.dev", true],
      ["test42.ci.dev", false],
      ["api.eu.svc", true],
      ["api.svc", false],
      ["unrelated.org", false],
    ];
    for (const [host, expected] of table) expect(p.matches(host, 443), host).toBe(expected);
  });

  it("matches nothing when empty", () => {
    const p = compilePatterns([]);
    expect(p.matches("example.com", 443)).toBe(false);
    expect(p.hasExact("example.com", 80)).toBe(false);
    expect(p.source).toEqual([]);
  });
});

describe("compilePatterns: hasExact", () => {
  const p = compilePatterns(["127.0.0.1", "localhost", "*.example.com", "**.corp", "[::1]:80", "fe80::1%lo0", "Example.ORG"]);
  it.each<[string, boolean]>([
    ["127.0.0.1", true],
    ["localhost", true],
    ["::1", true],
    ["example.org", true],
    ["fe80::1%lo0", true],
    ["fe80::1", false],
    ["a.example.com", false],
    ["corp", false],
    ["127.0.0.2", false],
  ])("%j: %s", (host, expected) => {
    expect(p.hasExact(host, 80)).toBe(expected);
  });

  it("does not count `*` as exact", () => {
    expect(compilePatterns(["*"]).hasExact("127.0.0.1", 80)).toBe(false);
  });
});

describe("compilePatterns: source", () => {
  it("keeps the patterns as written (trimmed), in order", () => {
    const p = compilePatterns([" B.com ", "*.a.com", "127.1"]);
    expect(p.source).toEqual(["B.com", "*.a.com", "127.1"]);
  });
});

describe("compilePatterns: errors", () => {
  it.each([
    ["[", "example[1].com"],
    ["]", "example].com"],
    ["{", "{a,b}.example.com"],
    ["}", "a}.example.com"],
    ["?", "exampl?.com"],
    ["[ non-IPv6", "[example.com]"],
    ["[ IPv4", "[127.0.0.1]"],
    ["bracket with glob", "[::1]*"],
    ["empty", ""],
    ["blank", "   "],
    ["`**` not leading", "a.**.example.com"],
    ["`**` inside a label", "a**.example.com"],
    ["`***`", "***.example.com"],
    ["empty label", "a..example.com"],
    ["wildcard empty label", "*..example.com"],
    ["leading dot", ".example.com"],
    ["slash", "example.com/x"],
    ["at", "user@example.com"],
    ["space", "exa mple.com"],
    ["percent", "exa%6dple.com"],
    ["bad port", "example.com:http"],
    ["wildcard bad port", "*.example.com:http"],
    ["wildcard with colons", "*.a:b:c"],
    ["non-ASCII in a glob label", "bü*.de"],
    ["punctuation in a glob label", "a!*.example.com"],
    ["wildcard over an IPv4", "192.168.*.*"],
    ["wildcard over an IPv4 suffix", "*.0.0.1"],
    ["wildcard over a hex suffix", "*.0x7f"],
    ["label too long", `${"a".repeat(64)}.com`],
    ["glob label too long", `${"a".repeat(63)}*.com`],
  ])("rejects %s (%j)", (_label, pattern) => {
    expect(() => compilePatterns(["ok.example.com", pattern])).toThrow(PatternError);
  });

  it("names the bad pattern", () => {
    let caught: unknown;
    try {
      compilePatterns(["good.com", "  bad{x}.com "]);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PatternError);
    expect(caught).toBeInstanceOf(TypeError);
    const error = caught as PatternError;
    expect(error.pattern).toBe("bad{x}.com");
    expect(error.message).toContain("bad{x}.com");
    expect(error.name).toBe("PatternError");
  });

  it("names the index of an empty pattern", () => {
    expect(() => compilePatterns(["a.com", ""])).toThrow(/index 1/);
  });
});

describe("compilePatterns: scale", () => {
  it("answers correctly over 50,000 patterns (index lookups, not a list scan)", () => {
    const patterns: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      switch (i % 5) {
        case 0:
          patterns.push(`host${i}.example.com`);
          break;
        case 1:
          patterns.push(`*.sub${i}.example.net`);
          break;
        case 2:
          patterns.push(`**.apex${i}.example.org`);
          break;
        case 3:
          patterns.push(`node${i}-*.cluster${i}.example.io`);
          break;
        default:
          patterns.push(`api.*.svc${i}.example.dev`);
      }
    }
    const p = compilePatterns(patterns);
    expect(p.source).toHaveLength(50_000);
    const table: Array<[string, boolean]> = [
      ["host0.example.com", true],
      ["host49995.example.com", true],
      ["host1.example.com", false],
      ["a.sub1.example.net", true],
      ["a.b.sub49996.example.net", true],
      ["sub1.example.net", false],
      ["apex2.example.org", true],
      ["x.apex49997.example.org", true],
      ["apex3.example.org", false],
      ["node3-a.cluster3.example.io", true],
      ["node49998-zz.cluster49998.example.io", true],
      ["node3-a.cluster8.example.io", false],
      ["api.eu.svc4.example.dev", true],
      ["api.eu.svc49999.example.dev", true],
      ["api.svc4.example.dev", false],
      ["nothing.example.com", false],
    ];
    for (const [host, expected] of table) expect(p.matches(host, 443), host).toBe(expected);
    for (let i = 0; i < 50_000; i += 5) expect(p.hasExact(`host${i}.example.com`, 80)).toBe(true);
  });

  it("handles adversarial mid-label globs without blowing up", () => {
    const p = compilePatterns([`${"*a".repeat(30)}*b.example.com`]);
    expect(p.matches(`${"a".repeat(63)}.example.com`, 443)).toBe(false);
    expect(p.matches(`${"a".repeat(62)}b.example.com`, 443)).toBe(true);
  });
});

describe("port-scoped patterns (issue 14 item 1)", () => {
  /** Every pattern form, a host its host part matches, and the port it names. */
  const FORMS: [string, string, number][] = [
    ["github.com", "github.com", 443],
    ["*.example.com", "a.b.example.com", 22],
    ["**.example.com", "example.com", 8443],
    ["**.example.com", "x.example.com", 8443],
    ["region*.v2.example.com", "region7.v2.example.com", 9000],
    ["api.*.svc", "api.eu.svc", 7000],
    ["*", "anything.example", 443],
    ["127.0.0.1", "127.0.0.1", 3000],
    ["localhost", "localhost", 5173],
    ["[::1]", "::1", 8080],
    ["[fe80::1%25lo0]", "fe80::1%lo0", 53],
  ];

  it.each(FORMS)("%s:PORT matches %s on PORT (%i) only; without a port it matches every port", (form, host, port) => {
    const scoped = compilePatterns([`${form}:${port}`]);
    expect(scoped.matches(host, port)).toBe(true);
    expect(scoped.matches(host, port + 1)).toBe(false);
    expect(scoped.matches(host, 1)).toBe(false);
    const unscoped = compilePatterns([form]);
    expect(unscoped.matches(host, port)).toBe(true);
    expect(unscoped.matches(host, port + 1)).toBe(true);
    // exact entries: the explicit-local-literal check is port-scoped the same way
    const exact = !form.includes("*");
    expect(scoped.hasExact(host, port)).toBe(exact);
    expect(scoped.hasExact(host, port + 1)).toBe(false);
    expect(unscoped.hasExact(host, port + 1)).toBe(exact);
  });

  it("an entry for every port and one for a port of the same host combine; other hosts are untouched", () => {
    const p = compilePatterns(["a.example:22", "b.example", "*.c.example:443", "*.c.example:8443"]);
    expect(p.matches("a.example", 22)).toBe(true);
    expect(p.matches("a.example", 443)).toBe(false);
    expect(p.matches("b.example", 22)).toBe(true);
    expect(p.matches("x.c.example", 443)).toBe(true);
    expect(p.matches("x.c.example", 8443)).toBe(true);
    expect(p.matches("x.c.example", 80)).toBe(false);
    expect(p.matches("b.example.evil", 22)).toBe(false);
    expect(p.source).toEqual(["a.example:22", "b.example", "*.c.example:443", "*.c.example:8443"]);
  });

  it("an IPv6 literal with several colons takes no port unless bracketed", () => {
    for (const v6 of ["::1", "fe80::1", "2001:db8:0:0:0:0:0:1", "::ffff:127.0.0.1", "fe80::1%lo0"]) {
      expect(compilePatterns([v6]).matches(v6 === "2001:db8:0:0:0:0:0:1" ? "2001:db8::1" : v6 === "::ffff:127.0.0.1" ? "::ffff:7f00:1" : v6, 1)).toBe(true);
    }
  });

  it.each([
    ["2001:db8::1:443", `an IPv6 address with a port must be bracketed, as "[2001:db8::1]:443" (or "[2001:db8::1:443]" for the address alone on every port)`],
    ["::1:80", `must be bracketed, as "[::1]:80"`],
    ["example.com:0", `bad port "0" (a number from 1 to 65535, no leading zero, right after the ":")`],
    ["example.com:0443", `bad port "0443"`],
    ["example.com: 443", `bad port " 443"`],
    ["example.com :443", `space before ":443"`],
    ["::ffff:127.0.0.1:22", `must be bracketed, as "[::ffff:127.0.0.1]:22"`],
    ["example.com:65536", `bad port "65536"`],
    ["example.com:", `bad port ""`],
    ["example.com:http", `bad port "http"`],
    ["*.example.com:http", `bad port "http"`],
    ["[::1]:x", `bad port "x"`],
    [":443", `no host before ":443"`],
    ["*.a:b:c", `misplaced ":"`],
  ])("%j is refused: %s", (pattern, message) => {
    expect(() => compilePatterns([pattern])).toThrow(PatternError);
    expect(() => compilePatterns([pattern])).toThrow(message);
  });

  it("offers the bracketed whole only when it is an address", () => {
    expect(() => compilePatterns(["::ffff:127.0.0.1:22"])).toThrow(/bracketed, as "\[::ffff:127\.0\.0\.1\]:22"$/);
  });
});
