/**
 * Response fields read in place (`core/http/fields.ts`) and the relayed head written from them as
 * bytes (`core/http/head-bytes.ts`) against the string path they replace: `headerValues`,
 * `headerTokens` and `endToEndHeaders` over the same head's fields as strings, written plainly.
 */
import { describe, expect, it } from "vitest";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import { FieldNames } from "../../src/core/http/fields.ts";
import { requestFraming, responseFraming } from "../../src/core/http/framing.ts";
import { headBytes, responseHeadBytes } from "../../src/core/http/head-bytes.ts";
import { endToEndHeaders, HOP_BY_HOP } from "../../src/core/http/headers.ts";
import { HEAD_BUFFER_KEPT_BYTES, headerTokens, headerValues, parseRequestHead, parseResponseHead, type HttpHeader, type ResponseHead } from "../../src/core/http/parser.ts";

function response(text: string): ResponseHead {
  const r = parseResponseHead(latin1Bytes(text));
  if (r.kind !== "ok") throw new Error(`test head did not parse: ${JSON.stringify(text)}`);
  return r.head;
}

/** A head written plainly: the start line, `name: value` lines, the blank line. */
function plainHead(startLine: string, headers: readonly HttpHeader[]): string {
  return `${startLine}\r\n${headers.map((h) => `${h.name}: ${h.value}\r\n`).join("")}\r\n`;
}

/**
 * A valid response head cut plainly from its text: status, reason, and fields with their values
 * trimmed of SP and HTAB. The reference the in-place reads are checked against.
 */
function plainResponse(text: string): { status: number; reason: string; headers: HttpHeader[] } {
  const lines = text.replace(/^(\r\n)+/, "").split("\r\n").slice(0, -2);
  const start = lines[0]!;
  const headers = lines.slice(1).map((line) => {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    return { name, value: line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ""), lower: name.toLowerCase() };
  });
  return { status: Number(start.slice(9, 12)), reason: start.slice(13), headers };
}

/** What the proxy wrote for a relayed response before its fields were read in place. */
function stringPath(text: string, extra: readonly HttpHeader[]): string {
  const plain = plainResponse(text);
  return plainHead(`HTTP/1.1 ${plain.status} ${plain.reason}`, [...endToEndHeaders(plain.headers), ...extra]);
}

let seed = 4242;
const random = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return (seed >>> 16) % n;
};
const pick = <T>(items: readonly T[]): T => items[random(items.length)]!;

// Names on every edge the writer and the matcher have: hop-by-hop ones in any case, names a
// `Connection` field lists, names one byte off a hop-by-hop one, and ordinary ones.
const NAMES = ["Connection", "CONNECTION", "keep-alive", "Keep-Alive", "Proxy-Connection", "TE", "te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "content-length", "Proxy-Authorization", "X-Drop", "x-drop", "X-Keep", "Server", "Date", "ETag", "Connectio", "Connections", "Te-", "A", "Content-Type", "WWW-Authenticate"];
// Values with the blanks, commas, cases, obs-text (NBSP is 0xA0, which String.trim() removes) and emptiness that trimming and list parsing see.
const VALUES = ["", " ", "\t", "keep-alive", "Keep-Alive", "close", " CLOSE ", "x-drop", "X-Drop, keep-alive", "upgrade", "chunked", "gzip, chunked", ",,close,,", "\xa0close", "close\xa0", "caf\xe9", "12", "012", "1024", " 5 , 5", "a, b", "x-keep ,\tx-drop", "\xe9,close", "v  w"];
const BLANKS = ["", " ", "  ", "\t", " \t"];

function randomHead(): string {
  const status = pick(["HTTP/1.1 200 OK", "HTTP/1.0 404 Not Found", "HTTP/1.1 204", "HTTP/1.1 200 ", "HTTP/1.1 500 caf\xe9 \t x", "HTTP/1.1 099 Odd"]);
  const lines: string[] = [];
  const count = random(9);
  for (let i = 0; i < count; i++) lines.push(`${pick(NAMES)}:${pick(BLANKS)}${pick(VALUES)}${pick(BLANKS)}`);
  // Empty lines before the start line are skipped (RFC 9112 §2.2): every offset moves with them.
  return `${"\r\n".repeat(random(3))}${status}\r\n${lines.map((l) => `${l}\r\n`).join("")}\r\n`;
}

describe("response fields read in place", () => {
  it("give the values and list items of the string path, for 5,000 random heads", () => {
    for (let n = 0; n < 5_000; n++) {
      const text = randomHead();
      const head = response(text);
      const plain = plainResponse(text);
      const what = JSON.stringify(text);
      expect(head.headers, what).toEqual(plain.headers);
      expect([head.status, head.reason], what).toEqual([plain.status, plain.reason]);
      for (const name of ["connection", "proxy-connection", "content-length", "transfer-encoding", "x-drop", "www-authenticate", "connectio"]) {
        expect(head.fields.values(name), `${what} values ${name}`).toEqual(headerValues(plain.headers, name));
        expect(head.fields.tokens(name), `${what} tokens ${name}`).toEqual(headerTokens(plain.headers, name));
      }
    }
  });

  it("write the relayed head byte for byte as the string path did, for 5,000 random heads", () => {
    const extras: HttpHeader[][] = [[], [{ name: "Connection", value: "keep-alive" }], [{ name: "Content-Length", value: "1024" }, { name: "Connection", value: "close" }], [{ name: "Transfer-Encoding", value: "chunked" }]];
    for (let n = 0; n < 5_000; n++) {
      const text = randomHead();
      const head = response(text);
      const extra = pick(extras);
      const written = responseHeadBytes(head, head.fields.tokens("connection"), extra);
      expect(latin1(written), JSON.stringify(text)).toBe(stringPath(text, extra));
    }
  });

  it("copy a field written `name: value` as it came and rewrite any other that way", () => {
    const head = response("HTTP/1.1 200 OK\r\nServer: s\r\nX-Pad:   v  \r\nConnection: close, X-Drop\r\nX-Drop: gone\r\nETag: \"e\"\r\nEmpty:\r\n\r\n");
    const written = latin1(responseHeadBytes(head, head.fields.tokens("connection"), [{ name: "Connection", value: "close" }]));
    expect(written).toBe("HTTP/1.1 200 OK\r\nServer: s\r\nX-Pad: v\r\nETag: \"e\"\r\nEmpty: \r\nConnection: close\r\n\r\n");
  });

  it("keep the reason phrase's bytes and give it as a string only when asked", () => {
    const head = response("HTTP/1.0 503 Service \xe9 Unavailable\r\n\r\n");
    expect(head.reason).toBe("Service \xe9 Unavailable");
    expect(latin1(responseHeadBytes(head, [], []))).toBe("HTTP/1.1 503 Service \xe9 Unavailable\r\n\r\n");
    expect(response("HTTP/1.1 204\r\n\r\n").reason).toBe("");
  });

  it("match names against a set by length and bytes, in any case", () => {
    const head = response("HTTP/1.1 200 OK\r\nTE: x\r\nTrailer: y\r\nTRANSFER-ENCODING: chunked\r\nTf: z\r\nTrailers: w\r\n\r\n");
    const hop = new FieldNames(HOP_BY_HOP);
    expect([0, 1, 2, 3, 4].map((i) => hop.matches(head.fields, i))).toEqual([true, true, true, false, false]);
  });
});

describe("a response head's bytes", () => {
  it("are copied out of a large read buffer, so a long response does not keep the buffer", () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    const big = new Uint8Array(64 * 1024);
    big.set(latin1Bytes(head));
    const r = parseResponseHead(big);
    if (r.kind !== "ok") throw new Error("did not parse");
    expect(r.head.fields.bytes.buffer.byteLength).toBeLessThanOrEqual(HEAD_BUFFER_KEPT_BYTES);
    big.fill(0x41); // the reader's buffer is done with; the head still reads as it came
    expect(r.head.headers).toEqual([{ name: "Content-Type", value: "text/plain", lower: "content-type" }]);
    expect(latin1(responseHeadBytes(r.head, [], []))).toBe(head);
  });

  it("are read in place in a small one", () => {
    const bytes = latin1Bytes("HTTP/1.1 200 OK\r\nA: b\r\n\r\n");
    const r = parseResponseHead(bytes);
    if (r.kind !== "ok") throw new Error("did not parse");
    expect(r.head.fields.bytes).toBe(bytes);
  });
});

describe("Content-Length read in place", () => {
  it("is digits only: NBSP around it is not OWS", () => {
    const request = parseRequestHead(latin1Bytes("POST / HTTP/1.1\r\nContent-Length: 5\xa0\r\n\r\n"));
    if (request.kind !== "ok") throw new Error("did not parse");
    expect(requestFraming(request.head)).toMatchObject({ status: 400 });
  });

  // Values a request and a response must frame alike: a request's 400 is a response's 502.
    // "\xd9\xa1" is the UTF-8 of ARABIC-INDIC DIGIT ONE, as bytes; NBSP (0xA0) is not OWS.
  const LENGTHS = ["0", "7", "1024", "007", "00", "999999999999999", "1000000000000000", "1 ", " 1", "1,1", "1, 2", "-1", "0x10", "+5", "1e3", "", "\xd9\xa1", "5\xa0", "5,\xa05"];
  it.each(LENGTHS.flatMap((a) => [[a, undefined], [a, "5"], [a, a]] as [string, string | undefined][]))("%j (and %j) frames a response as it frames a request", (value, second) => {
    const fields = `Content-Length: ${value}\r\n${second === undefined ? "" : `Content-Length: ${second}\r\n`}`;
    const request = parseRequestHead(latin1Bytes(`POST / HTTP/1.1\r\n${fields}\r\n`));
    if (request.kind !== "ok") throw new Error("test request did not parse");
    const asRequest = requestFraming(request.head);
    const asResponse = responseFraming(response(`HTTP/1.1 200 OK\r\n${fields}\r\n`), "GET");
    if ("status" in asRequest) {
      expect(asRequest.status).toBe(400);
      expect(asResponse).toEqual({ status: 502, message: `upstream sent ${asRequest.message}` });
    } else if (asRequest.kind === "length" && asRequest.length === 0) {
      expect(asResponse).toEqual({ kind: "none" });
    } else {
      expect(asResponse).toEqual(asRequest);
    }
  });
});

describe("heads written as bytes", () => {
  it("write the start line and fields as latin1, low byte of anything wider", () => {
    const headers = [{ name: "Host", value: "a.example" }, { name: "X-Caf\xe9", value: "\xe9t\xe9 \u0141" }, { name: "Empty", value: "" }];
    expect(latin1(headBytes("GET / HTTP/1.1", headers))).toBe("GET / HTTP/1.1\r\nHost: a.example\r\nX-Caf\xe9: \xe9t\xe9 A\r\nEmpty: \r\n\r\n");
    expect(latin1(headBytes("HTTP/1.1 204 ", []))).toBe("HTTP/1.1 204 \r\n\r\n");
  });
});

describe("request heads read with common methods and names as constants", () => {
  /** The fields of a valid head, cut plainly from its text. */
  function reference(text: string) {
    const lines = text.split("\r\n").slice(0, -2);
    const [method, target, proto] = lines[0]!.split(" ");
    const headers = lines.slice(1).map((line) => {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon);
      return { name, value: line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ""), lower: name.toLowerCase() };
    });
    return { method, target, version: proto!.slice(5), headers };
  }
  const METHODS = ["GET", "get", "POST", "PATCH", "PATCHY", "OPTIONS", "M-SEARCH", "HEAD", "TRACE", "CONNECT", "DELETE", "PUT", "PUTS"];
  const FIELD_NAMES = ["Host", "host", "HOST", "hOst", "User-Agent", "user-agent", "Accept", "TE", "te", "Te", "Via", "Vary", "X-Custom", "Cookie", "WWW-Authenticate", "www-authenticate", "Www-Authenticate", "Hos", "Hosts"];
  it("as the text says, for 3,000 random heads", () => {
    for (let n = 0; n < 3_000; n++) {
      const lines = Array.from({ length: random(6) }, () => `${pick(FIELD_NAMES)}:${pick(BLANKS)}${pick(VALUES)}${pick(BLANKS)}`);
      const text = `${pick(METHODS)} ${pick(["/", "/a?b=c", "http://h.example:8080/x", "*"])} HTTP/1.${random(2)}\r\n${lines.map((l) => `${l}\r\n`).join("")}\r\n`;
      const r = parseRequestHead(latin1Bytes(text));
      expect(r, JSON.stringify(text)).toEqual({ kind: "ok", size: text.length, head: reference(text) });
    }
  });

  it("give the constant only for the exact bytes", () => {
    const r = parseRequestHead(latin1Bytes("GET / HTTP/1.1\r\nhOST: h\r\nHost: h\r\n\r\n"));
    if (r.kind !== "ok") throw new Error("did not parse");
    expect(r.head.headers.map((h) => [h.name, h.lower])).toEqual([["hOST", "host"], ["Host", "host"]]);
  });
});
