/** Request targets (`core/http/target.ts`): absolute-form, origin-form with Host, and their checks. */
import { describe, expect, it } from "vitest";
import { latin1Bytes } from "../../src/core/net/bytes.ts";
import { parseRequestHead } from "../../src/core/http/parser.ts";
import { requestTarget } from "../../src/core/http/target.ts";

function target(line: string, ...fields: string[]) {
  const r = parseRequestHead(latin1Bytes(`${line}\r\n${fields.map((f) => `${f}\r\n`).join("")}\r\n`));
  if (r.kind !== "ok") throw new Error(`test head did not parse: ${line}`);
  return requestTarget(r.head);
}

describe("request targets", () => {
  it.each([
    ["GET http://a.example/x HTTP/1.1", ["Host: a.example"], { host: "a.example", port: 80, path: "/x", authority: "a.example", tls: false }],
    ["GET HTTPS://a.example/x?q HTTP/1.1", [], { host: "a.example", port: 443, path: "/x?q", authority: "a.example", tls: true }],
    ["GET HtTp://a.example:8080 HTTP/1.1", ["Host: a.example:8080"], { host: "a.example", port: 8080, path: "/", authority: "a.example:8080", tls: false }],
    ["GET http://a.example/ HTTP/1.1", ["Host: A.EXAMPLE:80"], { host: "a.example", port: 80, path: "/", authority: "A.EXAMPLE:80", tls: false }],
    ["GET http://[::1]:81/ HTTP/1.1", ["Host: [::1]:81"], { host: "::1", port: 81, path: "/", authority: "[::1]:81", tls: false }],
    ["GET /p HTTP/1.1", ["Host: a.example:81"], { host: "a.example", port: 81, path: "/p", authority: "a.example:81" }],
  ])("%s %j", (line, fields, expected) => {
    expect(target(line, ...fields)).toEqual(expected);
  });

  it.each([
    ["GET http://a.example/ HTTP/1.1", ["Host: b.example"], "Host header does not match request target"],
    ["GET http://a.example/ HTTP/1.1", ["Host: a.example:81"], "Host header does not match request target"],
    ["GET http://a.example/ HTTP/1.1", ["Host: "], "Host header does not match request target"],
    ["GET http://bad_host!/ HTTP/1.1", ["Host: bad_host!"], "Host header does not match request target"],
    ["GET httpx://a.example/ HTTP/1.1", [], 'unsupported scheme "httpx"'],
    ["GET HTTPX://a.example/ HTTP/1.1", [], 'unsupported scheme "httpx"'],
    ["GET ftp://a.example/ HTTP/1.1", [], 'unsupported scheme "ftp"'],
    ["GET htt://a.example/ HTTP/1.1", [], 'unsupported scheme "htt"'],
    ["GET http://a.example/ HTTP/1.1", ["Host: a.example", "Host: a.example"], "multiple Host headers"],
  ])("%s %j → 400", (line, fields, message) => {
    expect(target(line, ...fields)).toEqual({ status: 400, message });
  });
});
