/**
 * One SOCKS5 client connection (RFC 1928): method negotiation (no authentication, or RFC 1929
 * username/password used only to read an attribution credential), one
 * request, then a CONNECT tunnel or a UDP association, every target decided by the same policy
 * as HTTP. Limited mode refuses every request before the host is even looked at.
 *
 * @module
 */
import { passGate, passStateGate, refuseLoopAtDial, refuseTunnel } from "../gate/gate.ts";
import type { GateRequest } from "../gate/types.ts";
import { writeQuietly } from "../net/write.ts";
import { TARGET } from "../log.ts";
import { DialError, formatAddr, type Conn } from "../net/contract.ts";
import { dialScope, ProxyLoopError } from "../net/dial.ts";
import { openPlannedTunnel } from "../net/dial-plan.ts";
import type { Tunnel } from "../net/upstream-proxy.ts";
import { BufferedReader, PeerLeftError, ReadTimeoutError, whileWatching, type LeaveWatch } from "../net/reader.ts";
import { relayOpenedTunnel, type TunnelFront } from "../net/opened-tunnel.ts";
import { tunnelEndOf } from "../audit/connection.ts";
import type { SessionContext } from "../session-context.ts";
import { Command, Method, Reply, SOCKS_VERSION, USER_PASS_VERSION } from "./constants.ts";
import { encodeReply, parseGreeting, parseRequest, parseUserPass, type Parsed, type Socks5Address } from "./parser.ts";
import { reportedHost } from "./report.ts";
import { runUdpAssociation } from "./udp.ts";
import type { ConnectionEnd } from "../audit/connection.ts";

/** How long a client may take for the greeting and the request together. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;
/** The same for a connection over `max_connections`, which is only answered `0x01`. */
export const REFUSED_HANDSHAKE_TIMEOUT_MS = 2_000;

/**
 * Serve one accepted SOCKS5 connection until it closes. Never throws. `refused`: the connection
 * came over `max_connections` (already recorded): its request is answered with reply `0x01`.
 */
export async function serveSocks5Connection(client: Conn, ctx: SessionContext, refused = false): Promise<ConnectionEnd> {
  /** How it ended: the client left during the handshake, or the proxy ended it after answering. */
  let ended: ConnectionEnd = "proxy_closed";
  ctx.track(client);
  const reader = new BufferedReader(client);
  const who = formatAddr(client.remote);
  try {
    // A refused connection gets a short deadline: it holds nothing longer than that.
    const deadline = Date.now() + (refused ? REFUSED_HANDSHAKE_TIMEOUT_MS : HANDSHAKE_TIMEOUT_MS);
    const greeting = await readMessage(reader, parseGreeting, deadline, ctx, who);
    if (greeting === undefined) return (ended = "client_closed");
    if (greeting.kind === "error") return ended;
    const methods = greeting.value.methods;
    let credential: string | undefined;
    if (methods.includes(Method.USER_PASS)) {
      // RFC 1929 only to read an attribution credential: every credential is accepted.
      await client.write(Uint8Array.of(SOCKS_VERSION, Method.USER_PASS));
      const auth = await readMessage(reader, parseUserPass, deadline, ctx, who);
      if (auth === undefined) return (ended = "client_closed");
      if (auth.kind === "error") return ended;
      credential = auth.value.user;
      await client.write(Uint8Array.of(USER_PASS_VERSION, 0x00));
    } else if (methods.includes(Method.NO_AUTH)) {
      await client.write(Uint8Array.of(SOCKS_VERSION, Method.NO_AUTH));
    } else {
      ctx.log.log("debug", TARGET.socks5, `client ${who} offers no acceptable method (${methods.join(",")})`);
      await writeQuietly(client, Uint8Array.of(SOCKS_VERSION, Method.NO_ACCEPTABLE));
      return ended;
    }
    const request = await readMessage(reader, parseRequest, deadline, ctx, who);
    if (request === undefined) return (ended = "client_closed");
    if (request.kind === "error") {
      await writeQuietly(client, encodeReply(request.reply));
      return ended;
    }
    if (refused) {
      await writeQuietly(client, encodeReply(Reply.GENERAL_FAILURE));
      return ended;
    }
    const { command, target } = request.value;
    const ask: GateRequest = {
      protocol: command === Command.UDP_ASSOCIATE ? "socks5_udp" : "socks5_tcp",
      host: target.host,
      port: target.port,
      client: who,
      credential,
    };
    // CONNECT goes through the whole gate; the other commands name no destination to decide
    // yet, so only the proxy's state and mode are checked for them.
    if (command === Command.CONNECT) {
      await connect(client, reader, target, ctx, who, ask);
      return tunnelEndOf(client) ?? ended;
    }
    if (passStateGate(ctx, ask)) {
      await writeQuietly(client, encodeReply(Reply.NOT_ALLOWED));
      return ended;
    }
    if (command === Command.UDP_ASSOCIATE && ctx.state.snapshot().network.enable_socks5_udp && ctx.net.bindUdp) {
      // an association relays like a tunnel: it holds a slot too
      await holdingTunnel(client, ctx, ask, (release) => runUdpAssociation(client, reader, target, ctx, credential).finally(release));
      return tunnelEndOf(client) ?? ended;
    }
    ctx.log.log("debug", TARGET.socks5, `client ${who}: command 0x${command.toString(16)} not supported`);
    await writeQuietly(client, encodeReply(Reply.COMMAND_NOT_SUPPORTED));
    return ended;
  } catch (e) {
    ctx.log.log("debug", TARGET.socks5, `client ${who}: ${(e as Error).message}`);
    return "error";
  } finally {
    client.close();
    ctx.untrack(client);
  }
}

/**
 * CONNECT: decide through the gate, dial the plan, reply with the real bound address, relay.
 * Deciding and dialling end as soon as the client leaves.
 */
function connect(client: Conn, reader: BufferedReader, target: Socks5Address, ctx: SessionContext, who: string, ask: GateRequest): Promise<unknown> {
  return holdingTunnel(client, ctx, ask, (release) => openAndRelay(client, reader, target, ctx, who, ask, release));
}

/** What frees a tunnel slot (nothing, when no slot was taken). */
type Release = () => void;
const NO_SLOT: Release = () => {};

/**
 * Run `use` holding a tunnel slot (`max_tunnels`), which `use` frees when it ends (it is handed
 * the release, and this function returns its promise rather than awaiting it: an open tunnel
 * keeps no frame of this one); without a slot, refuse (`too_many_tunnels`, reply `0x02`). A
 * disabled proxy is left to refuse it as such.
 */
function holdingTunnel(client: Conn, ctx: SessionContext, ask: GateRequest, use: (release: Release) => Promise<unknown>): Promise<unknown> {
  const network = ctx.state.snapshot().network;
  const release = network.enabled ? ctx.limits?.openTunnel(network.max_tunnels) : undefined;
  if (network.enabled && ctx.limits && !release) {
    refuseTunnel(ctx, ask);
    return writeQuietly(client, encodeReply(Reply.NOT_ALLOWED));
  }
  return use(release ?? NO_SLOT);
}

/** Decide, open and relay one CONNECT; then `release` its tunnel slot. */
async function openAndRelay(
  client: Conn,
  reader: BufferedReader,
  target: Socks5Address,
  ctx: SessionContext,
  who: string,
  ask: GateRequest,
  release: Release,
): Promise<unknown> {
  let handedOver = false;
  try {
    const opened = await whileWatching(reader, (presence) => decideAndOpen(client, target, ctx, ask, presence));
    if (opened instanceof PeerLeftError) {
      ctx.log.log("debug", TARGET.socks5, `client ${who} left before its CONNECT ${reportedHost(target)}:${target.port} was answered: ${opened.detail}`);
      return;
    }
    if (!opened) return;
    handedOver = true;
    // Not awaited: an open tunnel holds relayOpenedTunnel's frame only, not this one.
    const { conn, early } = opened.tunnel;
    return relayOpenedTunnel(ctx, reader, conn, early, encodeReply(Reply.SUCCEEDED, conn.local), SOCKS5_FRONT, opened.host, target.port, who, release);
  } finally {
    if (!handedOver) release();
  }
}

/** How SOCKS5 CONNECT tunnels are recorded and logged. */
const SOCKS5_FRONT: TunnelFront = { protocol: "socks5_tcp", target: TARGET.socks5, label: "socks5_tcp" };

/** Decide, then open the tunnel; a refusal or failure is answered here (`undefined`). */
async function decideAndOpen(
  client: Conn,
  target: Socks5Address,
  ctx: SessionContext,
  ask: GateRequest,
  presence: LeaveWatch,
): Promise<{ readonly tunnel: Tunnel; readonly host: string } | undefined> {
  const verdict = await passGate(ctx, ask, presence);
  if (verdict.kind === "refused") {
    await writeQuietly(client, encodeReply(Reply.NOT_ALLOWED));
    return undefined;
  }
  try {
    const tunnel = await openPlannedTunnel(dialScope(ctx, presence.signal), verdict.plan, verdict.host, target.port);
    if (presence.reason) tunnel.conn.close(); // the client left as the tunnel opened
    presence.throwIfLeft();
    return { tunnel, host: verdict.host };
  } catch (e) {
    presence.throwIfLeft();
    if (e instanceof ProxyLoopError) {
      refuseLoopAtDial(ctx, ask, verdict.host); // a name resolved when dialling reached us
      await writeQuietly(client, encodeReply(Reply.NOT_ALLOWED));
      return undefined;
    }
    ctx.log.log("info", TARGET.socks5, `socks5_tcp ${verdict.host}:${target.port} upstream failed: ${(e as Error).message}`);
    await writeQuietly(client, encodeReply(dialFailureReply(e)));
    return undefined;
  }
}

/** RFC 1928 §6 reply for a failed dial. */
function dialFailureReply(e: unknown): number {
  if (!(e instanceof DialError)) return Reply.GENERAL_FAILURE;
  switch (e.kind) {
    case "refused":
      return Reply.CONNECTION_REFUSED;
    case "network_unreachable":
      return Reply.NETWORK_UNREACHABLE;
    case "host_unreachable":
    case "timeout":
      return Reply.HOST_UNREACHABLE;
    default:
      return Reply.GENERAL_FAILURE;
  }
}

/**
 * Read until `parse` gives a result. `undefined` when the client closed or timed out; a parse
 * error is returned for the caller to answer.
 */
async function readMessage<T>(
  reader: BufferedReader,
  parse: (b: Uint8Array) => Parsed<T>,
  deadline: number,
  ctx: SessionContext,
  who: string,
): Promise<Exclude<Parsed<T>, { kind: "more" }> | undefined> {
  for (;;) {
    const r = parse(reader.buffered);
    if (r.kind === "ok") {
      reader.consume(r.size);
      return r;
    }
    if (r.kind === "error") {
      ctx.log.log("debug", TARGET.socks5, `client ${who}: ${r.message}`);
      return r;
    }
    try {
      if (!(await reader.fill(deadline))) return undefined;
    } catch (e) {
      if (e instanceof ReadTimeoutError) {
        ctx.log.log("debug", TARGET.socks5, `client ${who}: handshake not complete within ${HANDSHAKE_TIMEOUT_MS} ms`);
        return undefined;
      }
      throw e;
    }
  }
}
