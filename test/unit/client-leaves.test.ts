/**
 * Sessions over in-memory connections when the client leaves while the proxy waits on
 * something else: DNS vetting that never answers, a dial that never completes, an origin that
 * never responds. Every such wait ends as soon as the client is gone, a decision is recorded
 * only once the policy made it (and then always), and the upstream is closed at once. Also: an origin that answers an
 * upload early gets the client a complete response, `Connection: close`, and a graceful close.
 */
import { describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import { DialError, type Conn, type DialOptions, type Net, type NetAddr } from "../../src/core/net/contract.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { serveSocks5Connection } from "../../src/core/socks5/session.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, tripwireNet } from "../helpers/memory-net.ts";

const ORIGIN_PORT = 8000;

/** Run a session on an in-memory client connection; `records` collects every decision. */
function start(net: Net, overrides: Partial<NetworkConfig>, serve: (c: Conn, ctx: SessionContext) => Promise<unknown> = serveHttpConnection) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, ...overrides }, { resolve: (h) => net.resolve(h) });
  const records: DecisionRecord[] = [];
  state.addSink((r) => records.push(r));
  const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false };
  const [client, server] = connPair();
  return { client, server, done: serve(server, ctx), records };
}

/** Resolves once `p` settled; rejects after 2 s (the wait did not end). */
function settlesSoon(p: Promise<unknown>, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not end within 2 s`)), 2_000);
    p.then(
      () => (clearTimeout(t), resolve()),
      () => (clearTimeout(t), resolve()),
    );
  });
}

/** A resolver that never answers (and says when it was asked). */
function silentResolver(): { resolve: (host: string) => Promise<string[]>; asked: Promise<void> } {
  let asked!: () => void;
  const wasAsked = new Promise<void>((r) => (asked = r));
  return {
    resolve: () => {
      asked();
      return new Promise<string[]>(() => {});
    },
    asked: wasAsked,
  };
}

/** A dialler that never connects; it fails only when its signal aborts, and records that. */
function hangingDial(): { connectTcp: Net["connectTcp"]; dialling: Promise<void>; aborted: Promise<void> } {
  let dialling!: () => void;
  let aborted!: () => void;
  const started = new Promise<void>((r) => (dialling = r));
  const wasAborted = new Promise<void>((r) => (aborted = r));
  const connectTcp = (addr: NetAddr, options?: DialOptions): Promise<Conn> => {
    dialling();
    return new Promise<Conn>((_, reject) => {
      options?.signal?.addEventListener("abort", () => {
        aborted();
        reject(new DialError("timeout", addr, "aborted"));
      });
    });
  };
  return { connectTcp, dialling: started, aborted: wasAborted };
}

describe("HTTP: the client leaves while the proxy waits", () => {
  it("during DNS vetting that never answers: the session ends, nothing is dialled, nothing is recorded", async () => {
    const { net, log } = tripwireNet({});
    const dns = silentResolver();
    net.resolve = dns.resolve;
    const { client, done, records } = start(net, { allowed_domains: ["slow.example"] });
    await client.write(latin1Bytes("GET http://slow.example/ HTTP/1.1\r\nHost: slow.example\r\n\r\n"));
    await dns.asked;
    client.close();
    await settlesSoon(done, "the session");
    expect(log.dials).toEqual([]);
    expect(records).toEqual([]);
  });

  it("during DNS vetting that answers later: the decision is still recorded, nothing is dialled", async () => {
    const { net, log } = tripwireNet({});
    let answer!: (ips: string[]) => void;
    let asked!: () => void;
    const wasAsked = new Promise<void>((r) => (asked = r));
    net.resolve = () => {
      asked();
      return new Promise<string[]>((r) => (answer = r));
    };
    const { client, done, records } = start(net, { allowed_domains: ["probe.example"] });
    await client.write(latin1Bytes("GET http://probe.example/ HTTP/1.1\r\nHost: probe.example\r\n\r\n"));
    await wasAsked;
    client.close();
    await settlesSoon(done, "the session");
    answer(["127.0.0.1"]); // a name that resolves to loopback: refused
    await new Promise((r) => setTimeout(r, 10));
    expect(records.map((r) => [r.host, r.decision, r.reason])).toEqual([["probe.example", "deny", "not_allowed_local"]]);
    expect(log.dials).toEqual([]);
  });

  it("during the dial: the dial is aborted", async () => {
    const { net } = tripwireNet({});
    const dial = hangingDial();
    net.connectTcp = dial.connectTcp;
    const { client, done, records } = start(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    await dial.dialling;
    await client.closeWrite();
    await settlesSoon(dial.aborted, "the dial");
    await settlesSoon(done, "the session");
    expect(records.map((r) => r.decision)).toEqual(["allow"]);
  });

  it("while the origin is silent: the upstream connection is closed at once", async () => {
    let upstream: Conn | undefined;
    let gotHead!: () => void;
    const headSeen = new Promise<void>((r) => (gotHead = r));
    const { net } = tripwireNet({
      origins: {
        [ORIGIN_PORT]: (c) => {
          upstream = c;
          void c.read().then(gotHead);
        },
      },
    });
    const { client, done } = start(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`GET http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    await headSeen;
    client.close();
    await settlesSoon(done, "the session");
    // The origin's side sees the proxy's end of the connection go away.
    expect(await upstream!.read()).toBeNull();
  });

  it("a pipelined request read ahead while waiting is served next, byte for byte", async () => {
    const seen: string[] = [];
    const { net } = tripwireNet({
      origins: {
        [ORIGIN_PORT]: (c) => {
          void (async () => {
            let text = "";
            for (;;) {
              const chunk = await c.read();
              if (chunk === null) return;
              text += latin1(chunk);
              while (text.includes("\r\n\r\n")) {
                const end = text.indexOf("\r\n\r\n") + 4;
                seen.push(text.slice(0, end));
                text = text.slice(end);
                await new Promise((r) => setTimeout(r, 10)); // slow: the second request arrives meanwhile
                await c.write(latin1Bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
              }
            }
          })().catch(() => {});
        },
      },
    });
    const { client, done } = start(net, { allowed_domains: ["127.0.0.1"] });
    const req = (path: string, last = false) =>
      `GET http://127.0.0.1:${ORIGIN_PORT}${path} HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n${last ? "Connection: close\r\n" : ""}\r\n`;
    await client.write(latin1Bytes(req("/first") + req("/second", true)));
    let text = "";
    for (;;) {
      const c = await client.read();
      if (c === null) break;
      text += latin1(c);
    }
    await client.closeWrite();
    await done;
    expect(text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
    expect(seen.map((s) => s.split(" ")[1])).toEqual(["/first", "/second"]);
  });
});

describe("CONNECT and SOCKS5: the client leaves while the proxy dials", () => {
  it("HTTP CONNECT: the dial is aborted and the session ends", async () => {
    const { net } = tripwireNet({});
    const dial = hangingDial();
    net.connectTcp = dial.connectTcp;
    const { client, done } = start(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`CONNECT 127.0.0.1:${ORIGIN_PORT} HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\n\r\n`));
    await dial.dialling;
    client.close();
    await settlesSoon(dial.aborted, "the dial");
    await settlesSoon(done, "the session");
  });

  it("HTTP CONNECT during DNS vetting: no dial, no decision", async () => {
    const { net, log } = tripwireNet({});
    const dns = silentResolver();
    net.resolve = dns.resolve;
    const { client, done, records } = start(net, { allowed_domains: ["slow.example"] });
    await client.write(latin1Bytes("CONNECT slow.example:443 HTTP/1.1\r\nHost: slow.example:443\r\n\r\n"));
    await dns.asked;
    await client.closeWrite();
    await settlesSoon(done, "the session");
    expect(log.dials).toEqual([]);
    expect(records).toEqual([]);
  });

  it("SOCKS5 CONNECT: the dial is aborted and the session ends", async () => {
    const { net } = tripwireNet({});
    const dial = hangingDial();
    net.connectTcp = dial.connectTcp;
    const { client, done } = start(net, { allowed_domains: ["127.0.0.1"] }, serveSocks5Connection);
    await client.write(Uint8Array.of(5, 1, 0));
    await client.read(); // method choice
    await client.write(Uint8Array.of(5, 1, 0, 1, 127, 0, 0, 1, ORIGIN_PORT >> 8, ORIGIN_PORT & 0xff));
    await dial.dialling;
    client.close();
    await settlesSoon(dial.aborted, "the dial");
    await settlesSoon(done, "the session");
  });

  it("SOCKS5 CONNECT during DNS vetting: no dial, no decision", async () => {
    const { net, log } = tripwireNet({});
    const dns = silentResolver();
    net.resolve = dns.resolve;
    const { client, done, records } = start(net, { allowed_domains: ["slow.example"] }, serveSocks5Connection);
    await client.write(Uint8Array.of(5, 1, 0));
    await client.read();
    const name = latin1Bytes("slow.example");
    await client.write(Uint8Array.of(5, 1, 0, 3, name.length, ...name, 1, 187));
    await dns.asked;
    client.close();
    await settlesSoon(done, "the session");
    expect(log.dials).toEqual([]);
    expect(records).toEqual([]);
  });
});

describe("HTTP: an origin that answers an upload early", () => {
  it("the client reads the whole response with Connection: close, then a FIN while it still sends", async () => {
    const { net } = tripwireNet({
      origins: {
        [ORIGIN_PORT]: (c) => {
          void c.read().then(() => c.write(latin1Bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")));
        },
      },
    });
    const { client, done } = start(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(latin1Bytes(`POST http://127.0.0.1:${ORIGIN_PORT}/ HTTP/1.1\r\nHost: 127.0.0.1:${ORIGIN_PORT}\r\nContent-Length: 1000000\r\n\r\n`));
    await client.write(new Uint8Array(1000));
    let text = "";
    for (;;) {
      const c = await client.read();
      if (c === null) break; // the proxy half-closed after the response
      text += latin1(c);
    }
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain("Connection: close\r\n");
    expect(text.endsWith("\r\n\r\nearly")).toBe(true);
    // The proxy still reads: the rest of the upload is taken, then the session ends on our FIN.
    await client.write(new Uint8Array(500_000));
    await client.closeWrite();
    await settlesSoon(done, "the session");
  });
});
