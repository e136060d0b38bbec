import { describe, expect, it } from "vitest";
import { latin1Bytes } from "../../src/core/net/bytes.ts";
import { MAX_HEAD_BYTES, MAX_HEADER_COUNT, parseRequestHead, parseResponseHead } from "../../src/core/http/parser.ts";
import { requestFraming, responseFraming } from "../../src/core/http/framing.ts";

const req = (s: string) => parseRequestHead(latin1Bytes(s));

describe("request head parser", () => {
  it("parses a request and reports the bytes used", () => {
    const text = "GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\nX-Y:  v  \r\n\r\nBODY";
    const r = req(text);
    expect(r).toEqual({
      kind: "ok",
      size: text.length - 4,
      head: { method: "GET", target: "http://a.example/x?y", version: "1.1", headers: [{ name: "Host", value: "a.example", lower: "host" }, { name: "X-Y", value: "v", lower: "x-y" }] },
    });
  });

  it("skips leading empty lines and keeps obs-text bytes", () => {
    const r = req("\r\n\r\nGET / HTTP/1.0\r\nX: caf\xe9\r\n\r\n");
    expect(r.kind).toBe("ok");
    if (r.kind === "ok") {
      expect(r.head.version).toBe("1.0");
      expect(r.head.headers[0]!.value).toBe("caf\xe9");
    }
  });

  it("says incomplete for every strict prefix of a valid head", () => {
    const text = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    for (let i = 0; i < text.length; i++) expect(req(text.slice(0, i)).kind, `prefix ${i}`).toBe("incomplete");
    expect(req(text).kind).toBe("ok");
  });

  it.each([
    ["obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, /obs-fold/],
    ["NUL in a header", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400, /NUL/],
    ["bare CR", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, /bare CR/],
    ["bare LF", "GET / HTTP/1.1\nHost: h\n\n", 400, /bare LF/],
    ["control character", "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, /control character/],
    ["space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, /header name/],
    ["no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", 400, /malformed header line/],
    ["garbage request line", "HELLO\r\n\r\n", 400, /request line/],
    ["two spaces", "GET  / HTTP/1.1\r\n\r\n", 400, /request line/],
    ["bad method", "G(T / HTTP/1.1\r\n\r\n", 400, /method/],
    ["bad version", "GET / HTTX/1.1\r\n\r\n", 400, /version/],
    ["HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505, /unsupported/],
    ["non-ASCII target", "GET /caf\xe9 HTTP/1.1\r\n\r\n", 400, /target/],
  ])("%s → %i", (_name, text, status, message) => {
    const r = req(text);
    expect(r.kind).toBe("error");
    if (r.kind === "error") {
      expect(r.status).toBe(status);
      expect(r.message).toMatch(message);
    }
  });

  it("answers 431 past the head size limit, complete or not", () => {
    const big = "GET / HTTP/1.1\r\nX: " + "a".repeat(MAX_HEAD_BYTES) + "\r\n\r\n";
    expect(req(big)).toMatchObject({ kind: "error", status: 431 });
    expect(req(big.slice(0, MAX_HEAD_BYTES + 10))).toMatchObject({ kind: "error", status: 431 });
    const justFits = "GET / HTTP/1.1\r\nX: " + "a".repeat(MAX_HEAD_BYTES - 25) + "\r\n\r\n";
    expect(justFits.length).toBeLessThanOrEqual(MAX_HEAD_BYTES);
    expect(req(justFits).kind).toBe("ok");
  });

  it("answers 431 past the header count limit", () => {
    const many = "GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(MAX_HEADER_COUNT + 1) + "\r\n";
    expect(req(many)).toMatchObject({ kind: "error", status: 431 });
    const ok = "GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(MAX_HEADER_COUNT) + "\r\n";
    expect(req(ok).kind).toBe("ok");
  });
});

describe("header lines: the byte scan and the string checks agree", () => {
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  /** The rules of RFC 9110 §5 / RFC 9112 §5 for one header line, written plainly: the expected answer. */
  function reference(line: string): { name: string; value: string; lower: string } | string {
    if (line.startsWith(" ") || line.startsWith("\t")) return "obs-fold (header line starting with whitespace) is not allowed";
    const colon = line.indexOf(":");
    if (colon <= 0) return `malformed header line ${JSON.stringify(line.slice(0, 64))}`;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return `malformed header name ${JSON.stringify(name.slice(0, 64))}`;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (value.includes("\0")) return `NUL in header ${name}`;
    if (/[\x01-\x08\x0a-\x1f\x7f]/.test(value)) return `control character in header ${name}`;
    return { name, value, lower: name.toLowerCase() };
  }

  // Bytes that sit on every rule's edge: token and non-token, blanks, `:`, controls, obs-text.
  const ALPHABET = ["a", "Z", "-", "_", "~", "1", ":", ":", " ", "\t", "\0", "\x01", "\x1f", "\x7f", "\x80", "\xe9", "\xff", "(", "@", ",", '"', "/"];
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 16) % n; // the high bits: an LCG's low bits repeat with a short period
  };
  const randomLine = () => {
    let line = "";
    const length = 1 + random(8); // an empty line would end the head
    for (let i = 0; i < length; i++) line += ALPHABET[random(ALPHABET.length)];
    return line;
  };

  it("gives the reference answer for 20,000 random heads, requests and responses", () => {
    for (let n = 0; n < 20_000; n++) {
      const lines = Array.from({ length: 1 + random(4) }, () => (random(3) === 0 ? randomLine() : `X-${random(10)}: ${randomLine()}`));
      const expected: { name: string; value: string; lower: string }[] = [];
      let error: string | undefined;
      for (const line of lines) {
        const r = reference(line);
        if (typeof r === "string") {
          error = r;
          break;
        }
        expected.push(r);
      }
      const tail = lines.map((l) => `${l}\r\n`).join("") + "\r\n";
      for (const start of ["GET / HTTP/1.1\r\n", "HTTP/1.1 200 OK\r\n"]) {
        const bytes = latin1Bytes(start + tail);
        const r = start.startsWith("GET") ? parseRequestHead(bytes) : parseResponseHead(bytes);
        const what = JSON.stringify(start + tail);
        if (error === undefined) {
          expect(r.kind, what).toBe("ok");
          if (r.kind === "ok") expect(r.head.headers, what).toEqual(expected);
        } else {
          expect(r, what).toEqual({ kind: "error", status: 400, message: error });
        }
      }
    }
  });
});

describe("response head parser", () => {
  it("parses status lines with and without a reason", () => {
    expect(parseResponseHead(latin1Bytes("HTTP/1.1 200 OK\r\nA: b\r\n\r\n"))).toMatchObject({ kind: "ok", head: { status: 200, reason: "OK", version: "1.1" } });
    expect(parseResponseHead(latin1Bytes("HTTP/1.0 204\r\n\r\n"))).toMatchObject({ kind: "ok", head: { status: 204, reason: "" } });
    expect(parseResponseHead(latin1Bytes("HTTP/1.1 2000 OK\r\n\r\n")).kind).toBe("error");
  });
});

function framingOf(text: string) {
  const r = req(text);
  if (r.kind !== "ok") throw new Error("test head did not parse");
  return requestFraming(r.head);
}

describe("request framing", () => {
  it.each([
    ["no body", "GET / HTTP/1.1\r\n\r\n", { kind: "none" }],
    ["content-length", "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", { kind: "length", length: 12 }],
    ["zero length (kept, so the origin sees it)", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", { kind: "length", length: 0 }],
    ["repeated identical lengths", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 005\r\n\r\n", { kind: "length", length: 5 }],
    ["chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", { kind: "chunked" }],
    ["chunked, any case", "POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n", { kind: "chunked" }],
    ["CL with TE", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", { status: 400 }],
    ["conflicting CL", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", { status: 400 }],
    ["conflicting CL list", "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", { status: 400 }],
    ["negative CL", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", { status: 400 }],
    ["hex CL", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", { status: 400 }],
    ["TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", { status: 400 }],
    ["gzip, chunked (valid, not supported)", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", { status: 501 }],
    ["chunked twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", { status: 400 }],
    ["empty TE", "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", { status: 400 }],
    ["TE not ending in chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", { status: 400 }],
    ["TE without chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", { status: 400, message: 'Transfer-Encoding "gzip" does not end in chunked: the body length cannot be determined' }],
  ])("%s", (_name, text, expected) => {
    expect(framingOf(text)).toMatchObject(expected);
  });
});

describe("response framing", () => {
  const res = (text: string) => {
    const r = parseResponseHead(latin1Bytes(text));
    if (r.kind !== "ok") throw new Error("test head did not parse");
    return r.head;
  };
  it("follows RFC 9112 §6.3", () => {
    expect(responseFraming(res("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), "HEAD")).toEqual({ kind: "none" });
    expect(responseFraming(res("HTTP/1.1 204 No Content\r\n\r\n"), "GET")).toEqual({ kind: "none" });
    expect(responseFraming(res("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"), "GET")).toEqual({ kind: "none" });
    expect(responseFraming(res("HTTP/1.1 100 Continue\r\n\r\n"), "POST")).toEqual({ kind: "none" });
    expect(responseFraming(res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), "GET")).toEqual({ kind: "chunked" });
    expect(responseFraming(res("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"), "GET")).toEqual({ kind: "length", length: 9 });
    expect(responseFraming(res("HTTP/1.1 200 OK\r\n\r\n"), "GET")).toEqual({ kind: "close" });
    expect(responseFraming(res("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), "GET")).toMatchObject({ status: 502 });
  });
});
