/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 §7): a relay socket on the listener's host. Datagrams from
 * the client that owns the association are parsed and each one decided on its own; refused
 * or fragmented ones are dropped without ending the association. Only replies from targets
 * this association sent to are wrapped and returned, and only to that client. The association
 * and its socket end when the TCP control connection closes.
 *
 * @module
 */
import { TARGET } from "../log.ts";
import { formatAddr, type Conn, type DatagramSocket, type NetAddr } from "../net/contract.ts";
import { isUnspecifiedIp, unmapIpv4 } from "../net/ip.ts";
import type { BufferedReader } from "../net/reader.ts";
import { noteTunnelEnd, tunnelRecord, type ConnectionEnd } from "../audit/connection.ts";
import { writeQuietly } from "../net/write.ts";
import { passGate, refuseLoopAtDial } from "../gate/gate.ts";
import { ProxyLoopError, vettedAddresses } from "../net/dial.ts";
import type { SessionContext } from "../session-context.ts";
import { Reply } from "./constants.ts";
import { encodeDatagramHeader, encodeReply, parseDatagram, type Socks5Address } from "./parser.ts";

/** Datagrams from the client being decided at once; more are dropped until some finish. */
export const MAX_PENDING_DATAGRAMS = 256;
/** Distinct targets one association remembers as allowed to answer (oldest forgotten first). */
export const MAX_REPLY_PEERS = 1024;
/** Bytes read from the control connection at a time while waiting for it to close. */
const CONTROL_READ_BYTES = 4096;

/** Run one association until its control connection closes. */
export async function runUdpAssociation(
  client: Conn,
  reader: BufferedReader,
  declared: Socks5Address,
  ctx: SessionContext,
  credential?: string,
): Promise<void> {
  const who = formatAddr(client.remote);
  /** Datagram payload bytes relayed each way (the association's record). */
  const datagrams = { read: 0, written: 0 };
  const clientIp = unmapIpv4(client.remote.host);
  // RFC 1928 §7: DST.ADDR/PORT name where the client will send from; zeros mean "not known yet".
  let clientPort = declared.port !== 0 && (isUnspecifiedIp(declared.host) || unmapIpv4(declared.host) === clientIp) ? declared.port : undefined;
  const peers = new Set<string>();
  let pending = 0;
  let socket: DatagramSocket | undefined;

  const fromClient = async (bytes: Uint8Array): Promise<void> => {
    const parsed = parseDatagram(bytes);
    if (parsed.kind === "error") {
      ctx.log.log("debug", TARGET.socks5, `udp from ${who}: dropped: ${parsed.message}`);
      return;
    }
    const { frag, target, data } = parsed.value;
    if (frag !== 0) {
      ctx.log.log("debug", TARGET.socks5, `udp from ${who}: dropped fragment ${frag} (fragmentation is not supported)`);
      return;
    }
    // Each datagram is decided on its own; a refused one is dropped (the gate records it).
    const ask = { protocol: "socks5_udp" as const, host: target.host, port: target.port, client: who, credential };
    const verdict = await passGate(ctx, ask);
    if (verdict.kind !== "allowed" || verdict.plan.kind !== "direct") return;
    let ip: string | undefined;
    try {
      ip = (await vettedAddresses(ctx, verdict.host, target.port, verdict.plan.addresses))[0];
    } catch (e) {
      if (e instanceof ProxyLoopError) refuseLoopAtDial(ctx, ask, verdict.host);
      else ctx.log.log("debug", TARGET.socks5, `udp from ${who}: dropped: ${(e as Error).message}`);
      return;
    }
    if (ip === undefined) return;
    const to = { host: ip, port: target.port };
    remember(peers, peerKey(to));
    await socket!.send(data, to);
    ctx.state.metrics.bytes("socks5", "to_origin", data.length);
    datagrams.written += data.length;
  };

  const onMessage = (bytes: Uint8Array, from: NetAddr): void => {
    const fromIp = unmapIpv4(from.host);
    if (fromIp === clientIp && (clientPort === undefined || clientPort === from.port)) {
      clientPort ??= from.port;
      if (pending >= MAX_PENDING_DATAGRAMS) return;
      pending++;
      void fromClient(bytes)
        .catch((e) => ctx.log.log("debug", TARGET.socks5, `udp from ${who}: ${(e as Error).message}`))
        .finally(() => pending--);
      return;
    }
    if (clientPort === undefined || !peers.has(peerKey({ host: fromIp, port: from.port }))) return;
    const header = encodeDatagramHeader({ host: fromIp, port: from.port });
    const out = new Uint8Array(header.length + bytes.length);
    out.set(header, 0);
    out.set(bytes, header.length);
    socket?.send(out, { host: client.remote.host, port: clientPort }).catch(() => {});
    ctx.state.metrics.bytes("socks5", "to_client", bytes.length);
    datagrams.read += bytes.length;
  };

  try {
    socket = await ctx.net.bindUdp!({ host: client.local.host, port: 0 }, onMessage);
  } catch (e) {
    ctx.log.log("info", TARGET.socks5, `udp relay for ${who} could not bind: ${(e as Error).message}`);
    await writeQuietly(client, encodeReply(Reply.GENERAL_FAILURE));
    return;
  }
  const opened = Date.now();
  let ended: ConnectionEnd = "client_closed";
  try {
    await client.write(encodeReply(Reply.SUCCEEDED, socket.addr));
    ctx.log.log("info", TARGET.socks5, `udp association for ${who} on ${socket.addr.host}:${socket.addr.port}`);
    // The association lives exactly as long as the control connection.
    while ((await reader.readUpTo(CONTROL_READ_BYTES)) !== null) {
      // Clients send nothing more on the control connection; anything they do send is ignored.
    }
  } catch {
    // A reset control connection ends the association like a close.
    ended = "error";
  } finally {
    socket.close();
    ctx.log.log("debug", TARGET.socks5, `udp association for ${who} ended`);
    if (ctx.closing?.aborted === true) ended = "shutdown";
    noteTunnelEnd(client, ended);
    // the datagrams' payloads each way (the client's address is the association's)
    const upstream = { bytesRead: () => datagrams.read, bytesWritten: () => datagrams.written };
    ctx.state.recordConnection(tunnelRecord({ protocol: "socks5_udp", host: socket.addr.host, port: socket.addr.port, client: who, upstream, opened, ended }));
  }
}

function peerKey(a: NetAddr): string {
  return `${unmapIpv4(a.host)}|${a.port}`;
}

/** Add to a bounded insertion-ordered set, forgetting the oldest entry past the bound. */
function remember(set: Set<string>, key: string): void {
  set.delete(key);
  set.add(key);
  if (set.size > MAX_REPLY_PEERS) set.delete(set.values().next().value!);
}

