/**
 * The same decision cases through every protocol front (plain HTTP, CONNECT, SOCKS5 CONNECT,
 * SOCKS5 UDP datagrams): each front reaches the same reason and makes the same records, in the
 * one order of the gate (docs/behaviour.md §3). The only differences are the documented ones:
 * SOCKS5 carries no method, so limited mode refuses it before the host is looked at, and a
 * SOCKS5 UDP association is refused as a whole when the proxy's state or mode refuses it.
 * Over in-memory connections; the tripwire resolver and dialer fail on anything unexpected.
 */
import { describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { silentLogger } from "../../src/core/log.ts";
import { latin1, latin1Bytes } from "../../src/core/net/bytes.ts";
import type { Conn, DatagramHandler, NetAddr } from "../../src/core/net/contract.ts";
import type { PolicyDecider } from "../../src/core/policy/decide.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { serveSocks5Connection } from "../../src/core/socks5/session.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, readAllText, tripwireNet } from "../helpers/memory-net.ts";

/** The loopback origin every allowed case reaches. */
const ORIGIN_PORT = 8000;
/** The port the proxy pretends to listen on (the proxy-loop case targets it). */
const PROXY_PORT = 3128;

type Front = "http" | "connect" | "socks5_tcp" | "socks5_udp";
const FRONTS: readonly Front[] = ["http", "connect", "socks5_tcp", "socks5_udp"];

interface Case {
  readonly name: string;
  readonly host: string;
  readonly port?: number;
  readonly config: Partial<NetworkConfig>;
  readonly decider?: PolicyDecider;
  /** The records every front makes, as `scope decision reason`, in order. */
  readonly records: readonly string[];
  /** Whether the request gets through. */
  readonly allowed: boolean;
}

const CASES: readonly Case[] = [
  { name: "allowed (an exactly listed local literal)", host: "127.0.0.1", config: { allowed_domains: ["127.0.0.1"] }, records: ["domain_rule allow allowed"], allowed: true },
  { name: "denied", host: "denied.example", config: { allowed_domains: ["*"], denied_domains: ["denied.example"] }, records: ["domain_rule deny denied"], allowed: false },
  { name: "not allowlisted", host: "other.example", config: { allowed_domains: ["allowed.example"] }, records: ["domain_rule deny not_allowed"], allowed: false },
  { name: "a local literal", host: "127.0.0.2", config: { allowed_domains: ["*"] }, records: ["domain_rule deny not_allowed_local"], allowed: false },
  { name: "a name resolving to a local address", host: "local.example", config: { allowed_domains: ["local.example"] }, records: ["domain_rule deny not_allowed_local"], allowed: false },
  { name: "the proxy disabled", host: "127.0.0.1", config: { enabled: false, allowed_domains: ["127.0.0.1"] }, records: ["proxy_state deny proxy_disabled"], allowed: false },
  {
    name: "the proxy itself (proxy loop)",
    host: "127.0.0.1",
    port: PROXY_PORT,
    config: { allowed_domains: ["127.0.0.1"] },
    records: ["domain_rule allow allowed", "proxy_state deny proxy_loop"],
    allowed: false,
  },
  {
    name: "a decider allow (local binding allowed, so the name is not vetted)",
    host: "decided.example",
    config: { allowed_domains: [], allow_local_binding: true },
    decider: () => ({ decision: "allow" }),
    records: ["domain_rule allow allowed"],
    allowed: true,
  },
  { name: "a decider deny", host: "decided.example", config: { allowed_domains: [] }, decider: () => ({ decision: "deny", reason: "policy_denied" }), records: ["domain_rule deny policy_denied"], allowed: false },
  { name: "a decider ask", host: "decided.example", config: { allowed_domains: [] }, decider: () => ({ decision: "ask", reason: "needs_ok" }), records: ["domain_rule ask needs_ok"], allowed: false },
];

/** A session on `front` for one case: what it answered and what was recorded. */
async function through(front: Front, c: Case): Promise<{ allowed: boolean; records: string[] }> {
  const { net, log } = tripwireNet({
    hosts: { "local.example": ["127.0.0.1"], "decided.example": ["127.0.0.1"] },
    origins: { [ORIGIN_PORT]: (conn) => void answerOk(conn) },
  });
  const sent: NetAddr[] = [];
  let deliver: DatagramHandler | undefined;
  net.bindUdp = async (addr, onMessage) => {
    deliver = onMessage;
    return { addr: { host: addr.host, port: 40000 }, send: async (_bytes, to) => void sent.push(to), close() {} };
  };
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, enable_socks5_udp: true, ...c.config }, { resolve: (h) => net.resolve(h), decider: c.decider });
  const records: DecisionRecord[] = [];
  state.addSink((r) => records.push(r));
  const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: (a) => a.port === PROXY_PORT };
  const [client, server] = connPair({ host: "127.0.0.1", port: 50001 }, { host: "127.0.0.1", port: PROXY_PORT });
  const port = c.port ?? ORIGIN_PORT;
  const authority = `${c.host}:${port}`;
  let allowed: boolean;
  if (front === "http" || front === "connect") {
    const done = serveHttpConnection(server, ctx);
    const head = front === "http" ? `GET http://${authority}/ HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n` : `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
    await client.write(latin1Bytes(head));
    if (front === "connect") {
      const first = await readStatusLine(client);
      allowed = first.startsWith("HTTP/1.1 200");
      await client.closeWrite();
    } else {
      allowed = (await readAllText(client)).startsWith("HTTP/1.1 200");
      await client.closeWrite();
    }
    await readAllText(client);
    await done;
  } else {
    const done = serveSocks5Connection(server, ctx);
    await client.write(Uint8Array.of(5, 1, 0));
    await client.read();
    const name = latin1Bytes(c.host);
    const address = Uint8Array.of(3, name.length, ...name, port >> 8, port & 0xff);
    if (front === "socks5_tcp") {
      await client.write(Uint8Array.of(5, 1, 0, ...address));
      const reply = await client.read();
      allowed = reply![1] === 0;
      client.close();
    } else {
      await client.write(Uint8Array.of(5, 3, 0, 1, 0, 0, 0, 0, 0, 0));
      const reply = await client.read();
      if (reply![1] === 0) {
        deliver!(Uint8Array.of(0, 0, 0, ...address, 7), { host: "127.0.0.1", port: 50001 });
        await until(() => records.length >= c.records.length);
      }
      allowed = sent.length === 1;
      client.close();
    }
    await done;
  }
  expect(log.violations).toEqual([]);
  return { allowed, records: records.map((r) => `${r.scope} ${r.decision} ${r.reason}`) };
}

async function answerOk(conn: Conn): Promise<void> {
  let text = "";
  for (;;) {
    const chunk = await conn.read().catch(() => null);
    if (chunk === null) return conn.close(); // a tunnel's client went away: end our side too
    text += latin1(chunk);
    if (text.includes("\r\n\r\n") && text.startsWith("GET")) {
      await conn.write(latin1Bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"));
      await conn.closeWrite();
      return;
    }
  }
}

async function readStatusLine(conn: Conn): Promise<string> {
  let text = "";
  while (!text.includes("\r\n")) {
    const chunk = await conn.read();
    if (chunk === null) break;
    text += latin1(chunk);
  }
  return text.slice(0, text.indexOf("\r\n"));
}

async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("condition not reached within 5 s");
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe("one gate: the same case gives the same reason and records on every front", () => {
  for (const c of CASES) {
    for (const front of FRONTS) {
      it(`${c.name} via ${front}`, async () => {
        const r = await through(front, c);
        // A UDP association refused by the proxy's state carries no datagram: the same record.
        expect(r.records).toEqual(c.records);
        expect(r.allowed).toBe(c.allowed);
      });
    }
  }

  describe("limited mode", () => {
    const limited: Case = { name: "limited", host: "127.0.0.1", config: { mode: "limited", allowed_domains: ["127.0.0.1"] }, records: [], allowed: false };
    it.each<[Front, readonly string[]]>([
      // HTTP: the host is decided first, then the method (a plain GET would pass: see below); a
      // tunnel without TLS interception (mitm = false, the default) is refused as such.
      ["connect", ["domain_rule allow allowed", "mode_guard deny mitm_required"]],
      // SOCKS5 carries no method: refused before the host is looked at.
      ["socks5_tcp", ["mode_guard deny method_not_allowed"]],
      ["socks5_udp", ["mode_guard deny method_not_allowed"]],
    ])("refuses via %s (a CONNECT without interception: mitm_required; SOCKS5: method_not_allowed)", async (front, records) => {
      const r = await through(front, limited);
      expect(r.records).toEqual(records);
      expect(r.allowed).toBe(false);
    });

    it("with mitm = true the gate lets a CONNECT through to be intercepted (no mode-guard record), never SOCKS5", async () => {
      const mitm: Case = { ...limited, config: { ...limited.config, mitm: true } };
      // the in-memory net cannot terminate TLS, so the interception itself answers 501 here
      expect((await through("connect", mitm)).records).toEqual(["domain_rule allow allowed"]);
      expect((await through("socks5_tcp", mitm)).records).toEqual(["mode_guard deny method_not_allowed"]);
    });

    it("lets a plain GET through", async () => {
      const r = await through("http", { ...limited, allowed: true });
      expect(r).toEqual({ allowed: true, records: ["domain_rule allow allowed"] });
    });
  });
});
