/**
 * SOCKS5 (RFC 1928) test clients over plain sockets: message encoders, a reply reader, a CONNECT
 * opener, a UDP ASSOCIATE client (node:net control connection + node:dgram), and the loopback
 * servers the SOCKS5 tests talk to (a TCP echo server that records the peer address of every
 * accepted connection, a UDP echo server).
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer as createNetServer, isIPv4, isIPv6, type Server as NetServer, type Socket } from "node:net";
import ipaddr from "ipaddr.js";
import { RawClient } from "./raw.ts";
import { delay, withDeadline } from "./util.ts";

/** Commands (RFC 1928 §4). */
export const SOCKS_CMD = { CONNECT: 0x01, BIND: 0x02, UDP_ASSOCIATE: 0x03 } as const;

/** Reply codes (RFC 1928 §6). */
export const SOCKS_REP = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** `05 01 00`: offer "no authentication" only. */
export const SOCKS_GREETING = Buffer.from([0x05, 0x01, 0x00]);

/** The full 10-byte reply carrying `rep` and an all-zero IPv4 BND.ADDR/BND.PORT. */
export function socksZeroReply(rep: number): Buffer {
  return Buffer.from([0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/** `ATYP ADDR PORT`: IPv4/IPv6 literals as such, anything else as a domain name. */
export function socksAddress(host: string, port: number): Buffer {
  const p = [(port >> 8) & 0xff, port & 0xff];
  if (isIPv4(host)) return Buffer.from([0x01, ...ipaddr.IPv4.parse(host).toByteArray(), ...p]);
  if (isIPv6(host)) return Buffer.from([0x04, ...ipaddr.IPv6.parse(host).toByteArray(), ...p]);
  const name = Buffer.from(host, "utf8");
  if (name.length === 0 || name.length > 255) throw new Error(`domain of ${name.length} bytes cannot be encoded`);
  return Buffer.concat([Buffer.from([0x03, name.length]), name, Buffer.from(p)]);
}

/** A request `05 CMD 00 ATYP ADDR PORT`. */
export function socksRequest(command: number, host: string, port: number): Buffer {
  return Buffer.concat([Buffer.from([0x05, command, 0x00]), socksAddress(host, port)]);
}

/** A UDP relay datagram `00 00 FRAG ATYP ADDR PORT DATA`. */
export function socksDatagram(host: string, port: number, data: Uint8Array, frag = 0): Buffer {
  return Buffer.concat([Buffer.from([0x00, 0x00, frag]), socksAddress(host, port), data]);
}

/** A parsed reply. */
export interface SocksReply {
  readonly rep: number;
  readonly atyp: number;
  /** BND.ADDR as text (IPv6 compressed). */
  readonly host: string;
  readonly port: number;
  /** Every byte of the reply. */
  readonly raw: Buffer;
}

/** `ATYP ADDR PORT` at `at` of `b`; null when `b` is too short. */
function decodeAddress(b: Buffer, at: number): { host: string; port: number; end: number } | null {
  if (b.length < at + 1) return null;
  const atyp = b[at]!;
  let host: string;
  let end: number;
  if (atyp === 0x01) {
    end = at + 5;
    if (b.length < end + 2) return null;
    host = [...b.subarray(at + 1, end)].join(".");
  } else if (atyp === 0x04) {
    end = at + 17;
    if (b.length < end + 2) return null;
    host = ipaddr.fromByteArray([...b.subarray(at + 1, end)]).toString();
  } else if (atyp === 0x03) {
    if (b.length < at + 2) return null;
    end = at + 2 + b[at + 1]!;
    if (b.length < end + 2) return null;
    host = b.subarray(at + 2, end).toString("utf8");
  } else {
    throw new Error(`unknown address type 0x${atyp.toString(16)}`);
  }
  return { host, port: b.readUInt16BE(end), end: end + 2 };
}

/** Read and consume one reply `VER REP RSV ATYP BND.ADDR BND.PORT`. */
export async function readSocksReply(c: RawClient, timeoutMs = 5_000): Promise<SocksReply> {
  const head = await c.readBytes(4, timeoutMs);
  const atyp = head[3]!;
  const rest =
    atyp === 0x01 ? await c.readBytes(6, timeoutMs)
    : atyp === 0x04 ? await c.readBytes(18, timeoutMs)
    : atyp === 0x03 ? await (async () => {
        const len = await c.readBytes(1, timeoutMs);
        return Buffer.concat([len, await c.readBytes(len[0]! + 2, timeoutMs)]);
      })()
    : Buffer.alloc(0);
  const raw = Buffer.concat([head, rest]);
  const addr = atyp === 0x01 || atyp === 0x03 || atyp === 0x04 ? decodeAddress(raw, 3) : null;
  return { rep: head[1]!, atyp, host: addr?.host ?? "", port: addr?.port ?? 0, raw };
}

/**
 * Connect to the SOCKS5 listener, negotiate "no authentication" (asserting `05 00`), send the
 * request and read the reply. The client is positioned after the reply (a tunnel on success).
 */
export async function socksOpen(
  socksPort: number,
  command: number,
  host: string,
  port: number,
  opts: { allowHalfOpen?: boolean } = {},
): Promise<{ client: RawClient; reply: SocksReply }> {
  const client = await RawClient.connect(socksPort, "127.0.0.1", { allowHalfOpen: opts.allowHalfOpen });
  try {
    await client.write(SOCKS_GREETING);
    const method = await client.readBytes(2);
    if (method[0] !== 0x05 || method[1] !== 0x00) throw new Error(`method selection answered ${method.toString("hex")}, expected 0500`);
    await client.write(socksRequest(command, host, port));
    return { client, reply: await readSocksReply(client) };
  } catch (e) {
    client.destroy();
    throw e;
  }
}

/** A datagram received from the relay, unwrapped. */
export interface RelayedDatagram {
  readonly frag: number;
  /** The address in the SOCKS header (who answered). */
  readonly host: string;
  readonly port: number;
  readonly data: Buffer;
  /** Where the datagram came from (the relay). */
  readonly relay: { host: string; port: number };
}

/** A UDP association: its control connection, its local UDP socket, and the relay address. */
export class Socks5UdpClient {
  private queue: RelayedDatagram[] = [];
  private wake: (() => void)[] = [];
  /** Datagrams the client socket could not parse (kept for assertions). */
  readonly garbage: Buffer[] = [];

  private constructor(
    readonly control: RawClient,
    readonly udp: UdpSocket,
    readonly relay: { host: string; port: number },
    readonly reply: SocksReply,
  ) {
    udp.on("message", (msg, rinfo) => {
      let parsed: ReturnType<typeof decodeAddress> = null;
      try {
        if (msg.length >= 4 && msg[0] === 0 && msg[1] === 0) parsed = decodeAddress(msg, 3);
      } catch {
        parsed = null;
      }
      if (!parsed) {
        this.garbage.push(msg);
        return;
      }
      this.queue.push({ frag: msg[2]!, host: parsed.host, port: parsed.port, data: msg.subarray(parsed.end), relay: { host: rinfo.address, port: rinfo.port } });
      const w = this.wake;
      this.wake = [];
      for (const f of w) f();
    });
  }

  /**
   * UDP ASSOCIATE with DST `declared` (default 0.0.0.0:0). Resolves with the client when the
   * reply is a success; otherwise rejects with the reply code in the message — use
   * {@link socksOpen} directly to assert refusals.
   */
  static async associate(socksPort: number, declared: { host: string; port: number } = { host: "0.0.0.0", port: 0 }): Promise<Socks5UdpClient> {
    const udp = createSocket("udp4");
    udp.on("error", () => undefined); // an ICMP error on a closed relay port must not crash the test
    await withDeadline(new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r())), 5_000, "bind UDP client");
    let opened: { client: RawClient; reply: SocksReply };
    try {
      opened = await socksOpen(socksPort, SOCKS_CMD.UDP_ASSOCIATE, declared.host, declared.port);
    } catch (e) {
      udp.close();
      throw e;
    }
    if (opened.reply.rep !== SOCKS_REP.SUCCEEDED) {
      opened.client.destroy();
      udp.close();
      throw new Error(`UDP ASSOCIATE answered 0x${opened.reply.rep.toString(16)} (${opened.reply.raw.toString("hex")})`);
    }
    return new Socks5UdpClient(opened.client, udp, { host: opened.reply.host, port: opened.reply.port }, opened.reply);
  }

  /** Send one wrapped datagram to the relay. */
  send(host: string, port: number, data: Uint8Array | string, frag = 0): Promise<void> {
    return this.sendRaw(socksDatagram(host, port, typeof data === "string" ? Buffer.from(data) : data, frag));
  }

  /** Send bytes as they are to the relay. */
  sendRaw(bytes: Uint8Array): Promise<void> {
    return withDeadline(
      new Promise<void>((resolve, reject) => this.udp.send(bytes, this.relay.port, this.relay.host, (e) => (e ? reject(e) : resolve()))),
      5_000,
      "UDP send",
    );
  }

  /** The next datagram from the relay (rejects after `timeoutMs`). */
  async next(timeoutMs = 3_000): Promise<RelayedDatagram> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms: a datagram from the UDP relay`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.queue.shift()!;
  }

  /** True when no datagram arrived within `ms` (a negative check). */
  async nothingWithin(ms: number): Promise<boolean> {
    if (this.queue.length > 0) return false;
    await delay(ms);
    return this.queue.length === 0;
  }

  /** Datagrams received and not consumed yet. */
  get pending(): readonly RelayedDatagram[] {
    return this.queue;
  }

  /** Close the control connection and the UDP socket. Idempotent. */
  close(): void {
    this.control.destroy();
    try {
      this.udp.close();
    } catch {
      // already closed
    }
  }
}

/** A TCP echo server that records the peer address of every connection it accepts. */
export interface PeerRecordingServer {
  readonly port: number;
  /** remoteAddress/remotePort of each accepted socket, in order. */
  readonly peers: { address: string; port: number }[];
  close(): Promise<void>;
}

/** Start a {@link PeerRecordingServer} on 127.0.0.1. */
export async function startPeerRecordingServer(): Promise<PeerRecordingServer> {
  const peers: { address: string; port: number }[] = [];
  const sockets = new Set<Socket>();
  const server: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    peers.push({ address: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 });
    socket.on("data", (c: Buffer) => socket.write(c));
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  const port = await withDeadline(
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const a = server.address();
        if (a === null || typeof a === "string") reject(new Error("no address"));
        else resolve(a.port);
      });
    }),
    5_000,
    "recording server listen",
  );
  return {
    port,
    peers,
    async close() {
      for (const s of sockets) s.destroy();
      await withDeadline(new Promise<void>((r) => server.close(() => r())), 5_000, "recording server close");
    },
  };
}

/** A UDP echo server: answers every datagram with the same bytes, to the sender. */
export interface UdpEchoServer {
  readonly host: string;
  readonly port: number;
  /** Every datagram received, with its sender. */
  readonly received: { data: Buffer; from: { host: string; port: number } }[];
  close(): Promise<void>;
}

/** Start a {@link UdpEchoServer} on `host` (a loopback address; default 127.0.0.1). */
export async function startUdpEcho(host = "127.0.0.1"): Promise<UdpEchoServer> {
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  const received: { data: Buffer; from: { host: string; port: number } }[] = [];
  socket.on("message", (msg, rinfo) => {
    received.push({ data: Buffer.from(msg), from: { host: rinfo.address, port: rinfo.port } });
    socket.send(msg, rinfo.port, rinfo.address);
  });
  await withDeadline(
    new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, host, () => {
        socket.off("error", reject);
        resolve();
      });
    }),
    5_000,
    `UDP echo bind on ${host}`,
  );
  socket.on("error", () => undefined);
  return {
    host,
    port: socket.address().port,
    received,
    async close() {
      await withDeadline(
        new Promise<void>((r) => {
          try {
            socket.close(() => r());
          } catch {
            r();
          }
        }),
        5_000,
        "UDP echo close",
      );
    },
  };
}
