/**
 * The SOCKS5 session over in-memory connections: reply codes for every dial failure, refused
 * names never resolved, and every decision recorded with its SOCKS5 protocol (TCP and UDP).
 */
import { describe, expect, it } from "vitest";
import { defaultNetworkConfig, type NetworkConfig } from "../../src/core/config/types.ts";
import { silentLogger } from "../../src/core/log.ts";
import { DialError, type Conn, type DatagramHandler, type DialFailure, type Net, type NetAddr } from "../../src/core/net/contract.ts";
import type { DecisionRecord } from "../../src/core/audit/events.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { serveSocks5Connection } from "../../src/core/socks5/session.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, readAllText, tripwireNet } from "../helpers/memory-net.ts";

const GREETING = Uint8Array.of(5, 1, 0);
const connectTo = (host: string, port: number) => {
  const name = new TextEncoder().encode(host);
  return Uint8Array.of(5, 1, 0, 3, name.length, ...name, port >> 8, port & 0xff);
};
const connectV4 = (a: number[], port: number) => Uint8Array.of(5, 1, 0, 1, ...a, port >> 8, port & 0xff);

function run(net: Net, overrides: Partial<NetworkConfig>) {
  const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, ...overrides }, { resolve: (h) => net.resolve(h) });
  const records: DecisionRecord[] = [];
  state.addSink((r) => records.push(r));
  const ctx: SessionContext = { net, state, log: silentLogger, track: () => {}, untrack: () => {}, isOwnListener: () => false };
  const [client, server] = connPair({ host: "127.0.0.1", port: 50001 }, { host: "127.0.0.1", port: 1080 });
  const done = serveSocks5Connection(server, ctx);
  return { client, done, state, records };
}

/** Read exactly `n` bytes. */
async function readN(conn: { read(): Promise<Uint8Array | null> }, n: number, carry: number[] = []): Promise<number[]> {
  while (carry.length < n) {
    const c = await conn.read();
    if (c === null) break;
    carry.push(...c);
  }
  return carry.splice(0, n);
}

/** Wait (at most 5 s) until `done()` holds: datagram decisions run asynchronously. */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("condition not reached within 5 s");
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe("SOCKS5 session", () => {
  it.each<[DialFailure, number]>([
    ["refused", 0x05],
    ["network_unreachable", 0x03],
    ["host_unreachable", 0x04],
    ["timeout", 0x04],
    ["other", 0x01],
  ])("a dial failing with %s is reply 0x%s", async (kind, reply) => {
    const { net } = tripwireNet({});
    net.connectTcp = async (addr: NetAddr) => {
      throw new DialError(kind, addr, "test");
    };
    const { client, done } = run(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(GREETING);
    expect(await readN(client, 2)).toEqual([5, 0]);
    await client.write(connectV4([127, 0, 0, 1], 9));
    expect(await readN(client, 10)).toEqual([5, reply, 0, 1, 0, 0, 0, 0, 0, 0]);
    await done;
  });

  it("refuses a denied, unlisted, unusable or empty name with 0x02 and never resolves it", async () => {
    for (const host of ["denied.example", "unlisted.example", "bad\u0000name.example", ""]) {
      const { net, log } = tripwireNet({});
      const { client, done, records } = run(net, { allowed_domains: ["**.allowed.example"], denied_domains: ["denied.example"] });
      await client.write(GREETING);
      await readN(client, 2);
      await client.write(connectTo(host, 443));
      expect(await readN(client, 2)).toEqual([5, 2]);
      await done;
      expect(log.resolves).toEqual([]);
      expect(log.dials).toEqual([]);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ protocol: "socks5_tcp", decision: "deny", port: 443, client: "127.0.0.1:50001" });
      expect(records[0]!.method).toBeUndefined();
    }
  });

  it("records allowed and refused CONNECTs as socks5_tcp, refusals in the blocked ring", async () => {
    // The origin ends its side once the client's FIN arrives through the tunnel.
    const origin = (conn: Conn) => void readAllText(conn).then(() => conn.closeWrite());
    const { net } = tripwireNet({ origins: { 7000: origin } });
    const { client, done, state, records } = run(net, { allowed_domains: ["127.0.0.1"] });
    await client.write(GREETING);
    await readN(client, 2);
    await client.write(connectV4([127, 0, 0, 1], 7000));
    expect((await readN(client, 10)).slice(0, 2)).toEqual([5, 0]);
    await client.closeWrite();
    await readAllText(client);
    await done;
    expect(records.map((r) => [r.protocol, r.decision, r.reason, r.host])).toEqual([["socks5_tcp", "allow", "allowed", "127.0.0.1"]]);
    expect(state.blocked.list()).toEqual([]);
  });

  it("limited mode refuses before the host check, as a mode_guard record", async () => {
    const { net, log } = tripwireNet({});
    const { client, done, state } = run(net, { allowed_domains: ["*"], mode: "limited" });
    await client.write(GREETING);
    await readN(client, 2);
    await client.write(connectTo("anything.example", 80));
    expect(await readN(client, 2)).toEqual([5, 2]);
    await done;
    expect(log.resolves).toEqual([]);
    expect(state.blocked.list()).toMatchObject([{ host: "anything.example", reason: "method_not_allowed", source: "mode_guard", protocol: "socks5_tcp", method: null }]);
  });

  it("decides each UDP datagram, records it as socks5_udp, and forwards only allowed ones", async () => {
    const { net } = tripwireNet({});
    const sent: { to: NetAddr; data: number[] }[] = [];
    let deliver: DatagramHandler | undefined;
    net.bindUdp = async (addr, onMessage) => {
      deliver = onMessage;
      return { addr: { host: addr.host, port: 40000 }, send: async (bytes, to) => void sent.push({ to, data: [...bytes] }), close() {} };
    };
    const { client, done, state, records } = run(net, { allowed_domains: ["127.0.0.1"], enable_socks5_udp: true });
    await client.write(GREETING);
    await readN(client, 2);
    await client.write(Uint8Array.of(5, 3, 0, 1, 0, 0, 0, 0, 0, 0));
    expect(await readN(client, 10)).toEqual([5, 0, 0, 1, 127, 0, 0, 1, 40000 >> 8, 40000 & 0xff]);
    const from = { host: "127.0.0.1", port: 50001 };
    deliver!(Uint8Array.of(0, 0, 0, 1, 127, 0, 0, 2, 0, 53, 1), from); // refused: not_allowed_local
    deliver!(Uint8Array.of(0, 0, 1, 1, 127, 0, 0, 1, 0, 53, 2), from); // fragment: dropped undecided
    deliver!(Uint8Array.of(0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 3), from); // allowed
    await until(() => records.length === 2 && sent.length === 1);
    expect(sent).toEqual([{ to: { host: "127.0.0.1", port: 53 }, data: [3] }]);
    expect(records.map((r) => [r.protocol, r.decision, r.reason, r.host])).toEqual([
      ["socks5_udp", "deny", "not_allowed_local", "127.0.0.2"],
      ["socks5_udp", "allow", "allowed", "127.0.0.1"],
    ]);
    expect(state.blocked.list()).toMatchObject([{ protocol: "socks5_udp", method: null, reason: "not_allowed_local" }]);
    client.close();
    await done;
  });
});
