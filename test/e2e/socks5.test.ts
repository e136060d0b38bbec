/**
 * SOCKS5 listener (docs/behaviour.md §3, §6; RFC 1928): curl --socks5 / --socks5-hostname through to
 * a loopback origin, policy refusals as reply 0x02 (`05 02`, curl exit 97), limited mode
 * refusing every request, a 50 MB download, raw-socket protocol cases (method negotiation,
 * BIND, bad address type, refused upstream, BND.ADDR/BND.PORT, byte-by-byte framing, malformed
 * input) and UDP ASSOCIATE (relay, per-datagram decisions, fragments, end of association).
 *
 * Every target is loopback; refused names are under `.example` and are never resolved.
 */
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  curl,
  curlHttp,
  deadPort,
  delay,
  type EchoReply,
  makeTempDir,
  networkConfig,
  type Origin,
  patternBytes,
  type PeerRecordingServer,
  pollUntil,
  type ProxyProcess,
  RawClient,
  readSocksReply,
  sha256,
  SOCKS_CMD,
  SOCKS_GREETING,
  SOCKS_REP,
  Socks5UdpClient,
  socksAddress,
  socksOpen,
  socksRequest,
  socksZeroReply,
  startEchoServer,
  startOrigin,
  startPeerRecordingServer,
  startProxy,
  startUdpEcho,
  type TcpServer,
  type UdpEchoServer,
  withDeadline,
} from "./helpers/index.ts";

/** curl's exit code for a proxy handshake error (CURLE_PROXY, e.g. SOCKS5 reply 0x02). */
const CURLE_PROXY = 97;

let origin: Origin;
let echo: TcpServer;
let recorder: PeerRecordingServer;
let udpEcho: UdpEchoServer;
/** A UDP echo server on 127.0.0.2 when the OS lets us bind there (Linux), else undefined. */
let udpEcho2: UdpEchoServer | undefined;
/** Full mode, UDP on; allowlist 127.0.0.1 (+ a denied name that the denylist wins over). */
let proxy: ProxyProcess;
/** Full mode, UDP off; allowlist 127.0.0.1 and localhost. */
let proxyLocal: ProxyProcess;
/** Limited mode, UDP on; allowlist 127.0.0.1. */
let proxyLimited: ProxyProcess;

const udpClients = new Set<Socks5UdpClient>();
const rawClients = new Set<RawClient>();

function socksPortOf(p: ProxyProcess): number {
  if (p.socksPort === undefined) throw new Error(`no SOCKS5 listening line; stderr:\n${p.stderr()}`);
  return p.socksPort;
}

beforeAll(async () => {
  [origin, echo, recorder, udpEcho] = await Promise.all([startOrigin(), startEchoServer(), startPeerRecordingServer(), startUdpEcho()]);
  udpEcho2 = await startUdpEcho("127.0.0.2").catch(() => undefined);
  const socks = { enable_socks5: true, socks_url: "127.0.0.1:0" };
  [proxy, proxyLocal, proxyLimited] = await Promise.all([
    startProxy(
      networkConfig({
        ...socks,
        enable_socks5_udp: true,
        allowed_domains: ["127.0.0.1", "denied.example"],
        denied_domains: ["denied.example"],
      }),
    ),
    startProxy(networkConfig({ ...socks, allowed_domains: ["127.0.0.1", "localhost"] })),
    startProxy(networkConfig({ ...socks, enable_socks5_udp: true, mode: "limited", allowed_domains: ["127.0.0.1"] })),
  ]);
});

afterAll(async () => {
  for (const u of udpClients) u.close();
  for (const c of rawClients) c.destroy();
  await Promise.allSettled([proxy?.stop(), proxyLocal?.stop(), proxyLimited?.stop()]);
  await Promise.allSettled([origin?.close(), echo?.close(), recorder?.close(), udpEcho?.close(), udpEcho2?.close()]);
});

/** A raw connection to `socksPort`, destroyed in afterAll at the latest. */
async function raw(socksPort: number, opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(socksPort, "127.0.0.1", opts);
  rawClients.add(c);
  return c;
}

/** Greeting (asserting `05 00`), then `request`; everything the proxy sends until it closes. */
async function requestToClose(socksPort: number, request: Uint8Array): Promise<Buffer> {
  const c = await raw(socksPort);
  try {
    await c.write(SOCKS_GREETING);
    expect((await c.readBytes(2)).toString("hex")).toBe("0500");
    await c.write(request);
    return await c.readToEnd(5_000);
  } finally {
    c.destroy();
  }
}

/** Associate, tracked for cleanup. */
async function associate(socksPort: number): Promise<Socks5UdpClient> {
  const u = await Socks5UdpClient.associate(socksPort);
  udpClients.add(u);
  return u;
}

/** The proxy still opens a working CONNECT tunnel (to the TCP echo server). */
async function expectStillServing(socksPort: number): Promise<void> {
  const { client, reply } = await socksOpen(socksPort, SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
  try {
    expect(reply.rep, reply.raw.toString("hex")).toBe(SOCKS_REP.SUCCEEDED);
    await client.write("still alive");
    expect((await client.readBytes(11)).toString()).toBe("still alive");
  } finally {
    client.destroy();
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await withDeadline(
    new Promise<void>((resolve, reject) => {
      createReadStream(path)
        .on("data", (c) => hash.update(c))
        .on("end", () => resolve())
        .on("error", reject);
    }),
    10_000,
    `hash ${path}`,
  );
  return hash.digest("hex");
}

describe("curl through the SOCKS5 listener", () => {
  it("--socks5-hostname to an allowlisted 127.0.0.1 origin → 200", async () => {
    const r = await curlHttp(["--socks5-hostname", `127.0.0.1:${socksPortOf(proxy)}`, `${origin.url}/socks5h?x=1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    const e = JSON.parse(r.text) as EchoReply;
    expect(e.url).toBe("/socks5h?x=1");
    expect(e.headers.host).toBe(`127.0.0.1:${origin.port}`);
  });

  it("--socks5 (client-side resolution) to 127.0.0.1 → 200", async () => {
    const r = await curlHttp(["--socks5", `127.0.0.1:${socksPortOf(proxy)}`, `${origin.url}/socks5`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/socks5");
  });

  it("--socks5-hostname with a localhost URL sends the name: refused (exit 97) when only 127.0.0.1 is allowlisted", async () => {
    const before = origin.connections();
    const r = await curl(["--socks5-hostname", `127.0.0.1:${socksPortOf(proxy)}`, `http://localhost:${origin.port}/socks5h-localhost`]);
    expect(r.code, r.stderr).toBe(CURLE_PROXY);
    expect(origin.connections()).toBe(before);
  });

  it("--socks5-hostname with a localhost URL → 200 when localhost is allowlisted", async () => {
    const r = await curlHttp(["--socks5-hostname", `127.0.0.1:${socksPortOf(proxyLocal)}`, `http://localhost:${origin.port}/socks5h-localhost-ok`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as EchoReply).url).toBe("/socks5h-localhost-ok");
  });

  it.each([
    ["127.0.0.2 (non-public, not allowlisted exactly)", "--socks5", "127.0.0.2"],
    ["denied.example (denylist wins over the allowlist)", "--socks5-hostname", "denied.example"],
    ["not-listed.example (not in the allowlist)", "--socks5-hostname", "not-listed.example"],
  ])("%s → curl exit 97, origin not reached", async (_name, flag, host) => {
    const before = origin.connections();
    const r = await curl([flag, `127.0.0.1:${socksPortOf(proxy)}`, `http://${host}:${origin.port}/refused`]);
    expect(r.code, r.stderr).toBe(CURLE_PROXY);
    expect(origin.connections()).toBe(before);
  });

  it("a 50 MB download arrives complete (length and sha256)", async () => {
    const n = 50 * 1024 * 1024;
    const tmp = makeTempDir("cnp-e2e-socks5-");
    try {
      const file = join(tmp.dir, "big.bin");
      const r = await curl(["--socks5-hostname", `127.0.0.1:${socksPortOf(proxy)}`, "-o", file, "-w", "%{http_code}", `${origin.url}/bytes?n=${n}`], {
        timeoutMs: 20_000,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toBe("200");
      expect(statSync(file).size).toBe(n);
      expect(await sha256File(file)).toBe(sha256(patternBytes(n)));
    } finally {
      tmp.remove();
    }
  });

  it("decisions appear in the info log (allowed and blocked socks5_tcp)", async () => {
    await pollUntil(() => proxy.stderr().includes(`socks5_tcp 127.0.0.1:${origin.port} allowed`), 5_000, "allowed socks5_tcp log line");
    await pollUntil(() => /blocked socks5_tcp 127\.0\.0\.2:\d+ \(not_allowed_local\)/.test(proxy.stderr()), 5_000, "blocked socks5_tcp log line");
    await pollUntil(() => /blocked socks5_tcp denied\.example:\d+ \(denied\)/.test(proxy.stderr()), 5_000, "denied log line");
  });
});

describe("policy refusals over a raw socket: exactly 05 02 00 01 00 00 00 00 00 00, then close", () => {
  it.each([
    ["IPv4 127.0.0.2", "127.0.0.2"],
    ["domain localhost (only 127.0.0.1 allowlisted)", "localhost"],
    ["domain denied.example", "denied.example"],
    ["domain not-listed.example", "not-listed.example"],
    ["IPv6 ::1", "::1"],
  ])("%s", async (_name, host) => {
    const before = origin.connections();
    const got = await requestToClose(socksPortOf(proxy), socksRequest(SOCKS_CMD.CONNECT, host, origin.port));
    expect(got.subarray(0, 2).toString("hex")).toBe("0502");
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.NOT_ALLOWED).toString("hex"));
    expect(origin.connections()).toBe(before);
  });

  it("127.0.0.1 sent as a domain name is judged like the IPv4 literal (allowed)", async () => {
    const { client, reply } = await socksOpen(socksPortOf(proxy), SOCKS_CMD.CONNECT, "127.0.0.1", echo.port);
    client.destroy();
    expect(reply.rep).toBe(SOCKS_REP.SUCCEEDED);
    const c = await raw(socksPortOf(proxy));
    try {
      await c.write(SOCKS_GREETING);
      await c.readBytes(2);
      const name = Buffer.from("127.0.0.1");
      await c.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, name.length]), name, Buffer.from([echo.port >> 8, echo.port & 0xff])]));
      const r = await readSocksReply(c);
      expect(r.rep, r.raw.toString("hex")).toBe(SOCKS_REP.SUCCEEDED);
      await c.write("by name");
      expect((await c.readBytes(7)).toString()).toBe("by name");
    } finally {
      c.destroy();
    }
  });
});

describe("limited mode: every SOCKS5 request refused with 05 02", () => {
  it("CONNECT to an allowlisted target → 05 02, origin not reached", async () => {
    const before = origin.connections();
    const got = await requestToClose(socksPortOf(proxyLimited), socksRequest(SOCKS_CMD.CONNECT, "127.0.0.1", origin.port));
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.NOT_ALLOWED).toString("hex"));
    expect(origin.connections()).toBe(before);
  });

  it("UDP ASSOCIATE (UDP enabled) → 05 02", async () => {
    const got = await requestToClose(socksPortOf(proxyLimited), socksRequest(SOCKS_CMD.UDP_ASSOCIATE, "0.0.0.0", 0));
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.NOT_ALLOWED).toString("hex"));
  });

  it("BIND → 05 02 (checked before the command)", async () => {
    const got = await requestToClose(socksPortOf(proxyLimited), socksRequest(SOCKS_CMD.BIND, "127.0.0.1", origin.port));
    expect(got.subarray(0, 2).toString("hex")).toBe("0502");
  });

  it("a refused target is refused the same way", async () => {
    const got = await requestToClose(socksPortOf(proxyLimited), socksRequest(SOCKS_CMD.CONNECT, "not-listed.example", 80));
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.NOT_ALLOWED).toString("hex"));
  });

  it("curl --socks5-hostname to the allowlisted origin → exit 97", async () => {
    const before = origin.connections();
    const r = await curl(["--socks5-hostname", `127.0.0.1:${socksPortOf(proxyLimited)}`, `${origin.url}/limited`]);
    expect(r.code, r.stderr).toBe(CURLE_PROXY);
    expect(origin.connections()).toBe(before);
    await pollUntil(() => /blocked socks5_tcp 127\.0\.0\.1:\d+ \(method_not_allowed/.test(proxyLimited.stderr()), 5_000, "limited-mode log line");
  });
});

describe("raw-socket protocol cases", () => {
  it("method negotiation offering only unsupported methods (GSSAPI 0x01, 0x80) → 05 FF, then closed", async () => {
    const c = await raw(socksPortOf(proxy));
    try {
      await c.write(Buffer.from([0x05, 0x02, 0x01, 0x80]));
      expect((await c.readToEnd(5_000)).toString("hex")).toBe("05ff");
    } finally {
      c.destroy();
    }
    await expectStillServing(socksPortOf(proxy));
  });

  it("offering 0x00 without 0x02 selects 0x00", async () => {
    const c = await raw(socksPortOf(proxy));
    try {
      await c.write(Buffer.from([0x05, 0x02, 0x80, 0x00]));
      expect((await c.readBytes(2)).toString("hex")).toBe("0500");
    } finally {
      c.destroy();
    }
  });

  it("offering 0x02 selects username/password (RFC 1929); any credential is accepted, and the request is still decided", async () => {
    const c = await raw(socksPortOf(proxy));
    try {
      await c.write(Buffer.from([0x05, 0x02, 0x00, 0x02]));
      expect((await c.readBytes(2)).toString("hex")).toBe("0502");
      // VER 1, ULEN 6 "nobody", PLEN 0: a credential no one issued (simply unattributed).
      await c.write(Buffer.from([0x01, 0x06, ...Buffer.from("nobody"), 0x00]));
      expect((await c.readBytes(2)).toString("hex")).toBe("0100");
      await c.write(socksRequest(SOCKS_CMD.CONNECT, "not-listed.example", 80));
      expect((await c.readBytes(2)).toString("hex")).toBe("0502");
    } finally {
      c.destroy();
    }
  });

  it("BIND → reply 0x07 (command not supported)", async () => {
    const got = await requestToClose(socksPortOf(proxy), socksRequest(SOCKS_CMD.BIND, "127.0.0.1", echo.port));
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.COMMAND_NOT_SUPPORTED).toString("hex"));
    await expectStillServing(socksPortOf(proxy));
  });

  it("an unknown command (0x09) → reply 0x07", async () => {
    const got = await requestToClose(socksPortOf(proxy), socksRequest(0x09, "127.0.0.1", echo.port));
    expect(got.subarray(0, 2).toString("hex")).toBe("0507");
    await expectStillServing(socksPortOf(proxy));
  });

  it("unknown address type 0x05 → reply 0x08", async () => {
    const got = await requestToClose(socksPortOf(proxy), Buffer.from([0x05, 0x01, 0x00, 0x05, 127, 0, 0, 1, 0, 80]));
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.ADDRESS_TYPE_NOT_SUPPORTED).toString("hex"));
    await expectStillServing(socksPortOf(proxy));
  });

  it("UDP ASSOCIATE without enable_socks5_udp → reply 0x07", async () => {
    const got = await requestToClose(socksPortOf(proxyLocal), socksRequest(SOCKS_CMD.UDP_ASSOCIATE, "0.0.0.0", 0));
    expect(got.toString("hex")).toBe(socksZeroReply(SOCKS_REP.COMMAND_NOT_SUPPORTED).toString("hex"));
    await expectStillServing(socksPortOf(proxyLocal));
  });

  it("an allowed target where nothing listens → reply 0x05 (connection refused)", async () => {
    const port = await deadPort();
    const got = await requestToClose(socksPortOf(proxy), socksRequest(SOCKS_CMD.CONNECT, "127.0.0.1", port));
    expect(got.subarray(0, 2).toString("hex")).toBe("0505");
    expect(got.length).toBe(10);
    await expectStillServing(socksPortOf(proxy));
  });

  it("success reply: BND.ADDR is 127.0.0.1 and BND.PORT is the upstream socket's local port (the port the origin sees)", async () => {
    const before = recorder.peers.length;
    const { client, reply } = await socksOpen(socksPortOf(proxy), SOCKS_CMD.CONNECT, "127.0.0.1", recorder.port);
    try {
      expect(reply.rep, reply.raw.toString("hex")).toBe(SOCKS_REP.SUCCEEDED);
      expect(reply.atyp).toBe(0x01);
      expect(reply.host).toBe("127.0.0.1");
      expect(reply.port).not.toBe(0);
      await client.write("x");
      expect((await client.readBytes(1)).toString()).toBe("x");
      expect(recorder.peers.length).toBe(before + 1);
      const peer = recorder.peers[before]!;
      expect(peer.address.replace(/^::ffff:/, "")).toBe("127.0.0.1");
      expect(reply.port).toBe(peer.port);
    } finally {
      client.destroy();
    }
  });

  it("greeting and request split byte by byte across writes still work", async () => {
    const c = await raw(socksPortOf(proxy));
    try {
      c.socket.setNoDelay(true);
      for (const b of SOCKS_GREETING) {
        await c.write(Buffer.from([b]));
        await delay(3);
      }
      expect((await c.readBytes(2)).toString("hex")).toBe("0500");
      for (const b of socksRequest(SOCKS_CMD.CONNECT, "127.0.0.1", echo.port)) {
        await c.write(Buffer.from([b]));
        await delay(3);
      }
      const r = await readSocksReply(c);
      expect(r.rep, r.raw.toString("hex")).toBe(SOCKS_REP.SUCCEEDED);
      await c.write("split ok");
      expect((await c.readBytes(8)).toString()).toBe("split ok");
    } finally {
      c.destroy();
    }
  });

  it("a domain-name request split byte by byte also works", async () => {
    const c = await raw(socksPortOf(proxyLocal));
    try {
      c.socket.setNoDelay(true);
      for (const b of Buffer.concat([SOCKS_GREETING, socksRequest(SOCKS_CMD.CONNECT, "localhost", echo.port)])) {
        await c.write(Buffer.from([b]));
        await delay(2);
      }
      expect((await c.readBytes(2)).toString("hex")).toBe("0500");
      const r = await readSocksReply(c);
      expect(r.rep, r.raw.toString("hex")).toBe(SOCKS_REP.SUCCEEDED);
      await c.write("name ok");
      expect((await c.readBytes(7)).toString()).toBe("name ok");
    } finally {
      c.destroy();
    }
  });

  it("greeting, request and the first payload bytes in one write: the payload is tunnelled", async () => {
    const c = await raw(socksPortOf(proxy));
    try {
      await c.write(Buffer.concat([SOCKS_GREETING, socksRequest(SOCKS_CMD.CONNECT, "127.0.0.1", echo.port), Buffer.from("early")]));
      expect((await c.readBytes(2)).toString("hex")).toBe("0500");
      const r = await readSocksReply(c);
      expect(r.rep).toBe(SOCKS_REP.SUCCEEDED);
      expect((await c.readBytes(5)).toString()).toBe("early");
    } finally {
      c.destroy();
    }
  });

  it("tunnel carries half-close: client FIN → echo server finishes and closes, client gets everything", async () => {
    const { client, reply } = await socksOpen(socksPortOf(proxy), SOCKS_CMD.CONNECT, "127.0.0.1", echo.port, { allowHalfOpen: true });
    try {
      expect(reply.rep).toBe(SOCKS_REP.SUCCEEDED);
      const data = Buffer.alloc(256 * 1024, 0xab);
      await client.write(data);
      client.endWrite();
      const back = await client.readToEnd(10_000);
      expect(back.length).toBe(data.length);
      expect(sha256(back)).toBe(sha256(data));
    } finally {
      client.destroy();
    }
  });

  describe("malformed input: the connection ends and the proxy keeps serving", () => {
    it.each([
      ["SOCKS4 version byte in the greeting", Buffer.from([0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0])],
      ["greeting with zero methods", Buffer.from([0x05, 0x00])],
      ["an HTTP request on the SOCKS5 port", Buffer.from("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")],
    ])("%s → closed without a method selection", async (_name, bytes) => {
      const c = await raw(socksPortOf(proxy));
      try {
        await c.write(bytes).catch(() => undefined);
        const got = await c.readToEnd(5_000);
        expect(got.subarray(0, 2).toString("hex")).not.toBe("0500");
      } finally {
        c.destroy();
      }
      await expectStillServing(socksPortOf(proxy));
    });

    it.each([
      ["request with version byte 0x04", Buffer.from([0x04, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80])],
      ["request with a nonzero reserved byte", Buffer.from([0x05, 0x01, 0x01, 0x01, 127, 0, 0, 1, 0, 80])],
    ])("%s → a failure reply (not 0x00), then closed", async (_name, bytes) => {
      const got = await requestToClose(socksPortOf(proxy), bytes);
      if (got.length > 0) {
        expect(got[0]).toBe(0x05);
        expect(got[1]).not.toBe(SOCKS_REP.SUCCEEDED);
      }
      await expectStillServing(socksPortOf(proxy));
    });

    it("client disconnects in the middle of the request", async () => {
      const c = await raw(socksPortOf(proxy));
      await c.write(SOCKS_GREETING);
      await c.readBytes(2);
      await c.write(Buffer.from([0x05, 0x01, 0x00, 0x03, 0x20, 0x61, 0x62]));
      c.destroy();
      await expectStillServing(socksPortOf(proxy));
    });

    it("an empty domain name is refused like any unusable host (05 02)", async () => {
      const got = await requestToClose(socksPortOf(proxy), Buffer.from([0x05, 0x01, 0x00, 0x03, 0x00, 0, 80]));
      expect(got.subarray(0, 2).toString("hex")).toBe("0502");
      await expectStillServing(socksPortOf(proxy));
    });

    it("a domain name with invalid UTF-8 is refused (05 02) without crashing", async () => {
      const got = await requestToClose(socksPortOf(proxy), Buffer.from([0x05, 0x01, 0x00, 0x03, 0x03, 0xff, 0xfe, 0x00, 0, 80]));
      expect(got.subarray(0, 2).toString("hex")).toBe("0502");
      await expectStillServing(socksPortOf(proxy));
    });
  });
});

describe("UDP ASSOCIATE (enable_socks5_udp)", () => {
  it("relays a datagram to the UDP echo server and back, wrapped with the echo server's address", async () => {
    const u = await associate(socksPortOf(proxy));
    try {
      expect(u.reply.atyp).toBe(0x01);
      expect(u.relay.host).toBe("127.0.0.1");
      expect(u.relay.port).not.toBe(0);
      await u.send("127.0.0.1", udpEcho.port, "hello udp");
      const d = await u.next();
      expect(d).toMatchObject({ frag: 0, host: "127.0.0.1", port: udpEcho.port });
      expect(d.data.toString()).toBe("hello udp");
      expect(d.relay).toEqual(u.relay);
      expect(udpEcho.received.at(-1)?.data.toString()).toBe("hello udp");
      // the echo server saw the relay's own address, not the client's
      expect(udpEcho.received.at(-1)?.from.host).toBe("127.0.0.1");
      expect(udpEcho.received.at(-1)?.from.port).not.toBe(u.udp.address().port);
      // a second datagram on the same association
      await u.send("127.0.0.1", udpEcho.port, Buffer.from([0, 1, 2, 255]));
      expect([...(await u.next()).data]).toEqual([0, 1, 2, 255]);
    } finally {
      u.close();
    }
  });

  it("datagrams to refused targets are dropped; the next allowed one still arrives", async () => {
    const u = await associate(socksPortOf(proxy));
    try {
      const refused: [string, number][] = [
        ["127.0.0.2", udpEcho2?.port ?? udpEcho.port],
        ["localhost", udpEcho.port],
        ["::1", udpEcho.port],
        ["denied.example", udpEcho.port],
        ["not-listed.example", udpEcho.port],
      ];
      for (const [host, port] of refused) await u.send(host, port, `refused ${host}`);
      await u.send("127.0.0.1", udpEcho.port, "allowed after refusals");
      const d = await u.next();
      expect(d.host).toBe("127.0.0.1");
      expect(d.data.toString()).toBe("allowed after refusals");
      expect(await u.nothingWithin(200)).toBe(true);
      const seen = [...udpEcho.received, ...(udpEcho2?.received ?? [])].map((r) => r.data.toString());
      expect(seen.filter((s) => s.startsWith("refused "))).toEqual([]);
    } finally {
      u.close();
    }
  });

  it("a fragmented datagram (FRAG=1) is dropped; an unfragmented one after it arrives", async () => {
    const u = await associate(socksPortOf(proxy));
    try {
      await u.send("127.0.0.1", udpEcho.port, "fragment one", 1);
      await u.send("127.0.0.1", udpEcho.port, "whole datagram");
      const d = await u.next();
      expect(d.data.toString()).toBe("whole datagram");
      expect(await u.nothingWithin(200)).toBe(true);
      expect(udpEcho.received.map((r) => r.data.toString())).not.toContain("fragment one");
    } finally {
      u.close();
    }
  });

  it("garbage datagrams (too short, nonzero RSV, bad ATYP) are dropped without ending the association", async () => {
    const u = await associate(socksPortOf(proxy));
    try {
      await u.sendRaw(Buffer.from([0x00]));
      await u.sendRaw(Buffer.concat([Buffer.from([0x01, 0x00, 0x00]), socksAddress("127.0.0.1", udpEcho.port), Buffer.from("bad rsv")]));
      await u.sendRaw(Buffer.from([0x00, 0x00, 0x00, 0x05, 127, 0, 0, 1, 0, 80, 0x41]));
      await u.send("127.0.0.1", udpEcho.port, "after garbage");
      expect((await u.next()).data.toString()).toBe("after garbage");
      expect(udpEcho.received.map((r) => r.data.toString())).not.toContain("bad rsv");
    } finally {
      u.close();
    }
  });

  it("after the control TCP connection closes, the relay no longer answers", async () => {
    const u = await associate(socksPortOf(proxy));
    try {
      await u.send("127.0.0.1", udpEcho.port, "before close");
      expect((await u.next()).data.toString()).toBe("before close");
      // Half-close the control connection; the proxy ends the association (closing the relay
      // socket) before it closes its side, so once we see its close the relay is gone.
      u.control.endWrite();
      expect(await u.control.waitClosed(5_000)).toBe(true);
      const before = udpEcho.received.length;
      await u.send("127.0.0.1", udpEcho.port, "after close").catch(() => undefined);
      expect(await u.nothingWithin(300)).toBe(true);
      expect(udpEcho.received.length).toBe(before);
    } finally {
      u.close();
    }
  });

  it("the proxy keeps serving TCP and UDP after the UDP cases", async () => {
    await expectStillServing(socksPortOf(proxy));
    const u = await associate(socksPortOf(proxy));
    try {
      await u.send("127.0.0.1", udpEcho.port, "final");
      expect((await u.next()).data.toString()).toBe("final");
    } finally {
      u.close();
    }
  });
});
