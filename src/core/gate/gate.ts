/**
 * The gate: the one decision step every protocol front calls (HTTP forward, CONNECT, unix
 * sockets, SOCKS5 CONNECT, each SOCKS5 UDP datagram), and the only place that records
 * decisions and logs refusals. A front turns a refusal into its own bytes (403 + JSON, text
 * 403, a SOCKS5 reply code, a dropped datagram) and an allow into a dial of the plan it gets.
 *
 * One order for every protocol (README "How a request is decided"; the host policy of step 4 is
 * docs/behaviour.md §3):
 *
 * 1. the proxy is disabled → `proxy_disabled` (proxy state);
 * 2. SOCKS5 in limited mode → `method_not_allowed` (mode guard), before the host is looked at;
 * 3. an `x-unix-socket` request: the path must be allowlisted (`not_allowed`, proxy state),
 *    limited mode allows only reads (mode guard), the runtime must dial unix sockets
 *    (`unix_socket_unsupported`); else allowed, dialling the allowlisted entry;
 * 4. the host policy (deny list, local literals, allow list and decider, DNS vetting): its
 *    verdict is recorded, allow included, even when the client left before it was made;
 * 5. limited mode for HTTP: only GET, HEAD and OPTIONS, no upgrade, no CONNECT (mode guard),
 *    but what a `limited_mode_allow` rule names (recorded as an allow by the mode guard);
 * 5b. a host with `mitm_hooks` (docs/behaviour.md §5.19): its CONNECT is intercepted, in full
 *    mode too; a request must match one of its hooks, and one that injects a secret must go over
 *    TLS; SOCKS5 to it cannot be inspected. Otherwise `mitm_hook_denied` (proxy state);
 * 6. the dial plan: through the upstream proxy when chaining applies, else straight to the
 *    vetted addresses; any address that is one of the proxy's own listeners refuses the request
 *    with `proxy_loop` (proxy state) before anything is dialled. A name left to dial time is
 *    checked when it is resolved there (`refuseLoopAtDial`), before its connect.
 *
 * Records, as the audit schema asks: one domain-policy record per host evaluation (step 4, or
 * the allow of step 3), plus one block record when a mode or state guard refuses (steps 1, 2,
 * 3, 5, 6); a request allowed by its host and then refused by a guard has both, and at most
 * one blocked entry.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { rateClient } from "../limits.ts";
import { TARGET } from "../log.ts";
import type { NetAddr } from "../net/contract.ts";
import type { DialPlan } from "../net/dial-plan.ts";
import type { LeaveWatch } from "../net/reader.ts";
import { proxyFor } from "../net/upstream-proxy.ts";
import { injectsSecret, matchHook, type CompiledHook } from "../mitm/hooks.ts";
import { displayHost } from "../policy/host.ts";
import { LIMITED_MODE_EXCEPTION_REASON } from "../policy/limited-allow.ts";
import type { HostVerdict, ProxyProtocol } from "../policy/types.ts";
import { attributed, type RequestFacts, type SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";
import { recordModeException, recordStateBlock, recordUnixAllow, recordVerdict } from "./record.ts";
import type { GateRefusal, GateRequest, GateVerdict } from "./types.ts";
import { socketToDial, UNIX_SOCKET_HOST } from "./unix-socket.ts";

/** Methods limited mode lets through (docs/behaviour.md §3). */
export const LIMITED_MODE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Decide one request, tunnel or datagram. With `presence`, a client that leaves ends the wait
 * (the promise rejects with its `PeerLeftError`); the decision is still recorded when made.
 */
export function passGate(ctx: SessionContext, req: GateRequest, presence?: LeaveWatch): Promise<GateVerdict> {
  const started = performance.now();
  return decide(ctx, req, presence).then((verdict) => {
    ctx.state.metrics.latency("decision", performance.now() - started, req.protocol);
    return verdict;
  });
}

async function decide(ctx: SessionContext, req: GateRequest, presence?: LeaveWatch): Promise<GateVerdict> {
  const snap = ctx.state.snapshot();
  const facts: RequestFacts = { protocol: req.protocol, port: req.port, method: req.method, client: req.client };
  const socks = isSocks(req.protocol);
  const guarded = stateGuard(ctx, snap, req, facts);
  if (guarded) return guarded;
  // 3. unix sockets
  if (req.unixSocket !== undefined) return unixGate(ctx, snap, req, { ...facts, port: 0 });
  // 4. the host policy
  const asked = snap.policy
    .decide({ protocol: req.protocol, host: req.host, port: req.port, method: req.method, client_addr: req.client, ...attributed(ctx, req.credential) })
    .then((verdict) => {
      // Every evaluation is recorded, also one whose client left before it ended: hanging up
      // during DNS vetting must not hide a probe of the policy.
      recordVerdict(ctx, snap, verdict, facts);
      return verdict;
    });
  const verdict: HostVerdict = await (presence ? presence.race(asked) : asked);
  if (!verdict.allowed) {
    const { host, reason, decision, source } = verdict;
    return refused(ctx, req, { host, port: req.port, reason, decision, source, scope: "domain_rule", protocol: req.protocol });
  }
  // 5. limited mode for HTTP: a write method, an upgrade (a write channel) or a tunnel. A tunnel
  //    passes only to be intercepted (`mitm`): its requests are then decided one by one.
  //    A `limited_mode_allow` rule lets a write method through to the paths it names (never an
  //    upgrade, never CONNECT), recorded with its own reason.
  let excepted = false;
  if (!socks && snap.mode === "limited") {
    if (req.method === "CONNECT" && !snap.network.mitm) return refuseByState(ctx, snap, req, facts, verdict.host, "mode_guard", "mitm_required");
    if (req.upgrade) return refuseByState(ctx, snap, req, facts, verdict.host, "mode_guard", "method_not_allowed");
    if (req.method !== "CONNECT" && !LIMITED_MODE_METHODS.has(req.method ?? "")) {
      excepted = req.content !== undefined && snap.limitedAllow.allows(verdict.host, req.port, req.method ?? "", req.content.path);
      if (!excepted) return refuseByState(ctx, snap, req, facts, verdict.host, "mode_guard", "method_not_allowed");
    }
  }
  // 5b. hooks
  const hooks = snap.hooks.forHost(verdict.host);
  let hook: CompiledHook | undefined;
  if (hooks !== undefined && req.method !== "CONNECT") {
    hook = socks || req.content === undefined ? undefined : matchHook(hooks, { method: req.method ?? "", ...req.content });
    if (hook === undefined || (injectsSecret(hook) && !req.tls)) return refuseByState(ctx, snap, req, facts, verdict.host, "proxy_state", "mitm_hook_denied");
  }
  // 6. where to dial, never to ourselves
  const plan = planDial(ctx, snap, req, verdict);
  if (plan === "loop") return refuseByState(ctx, snap, req, facts, verdict.host, "proxy_state", "proxy_loop");
  // recorded only now that the request is allowed: a later step may still have refused it
  if (excepted) recordModeException(ctx, snap, verdict.host, facts, LIMITED_MODE_EXCEPTION_REASON);
  const intercept = !socks && req.method === "CONNECT" && (snap.mode === "limited" || hooks !== undefined);
  if (intercept) return { kind: "allowed", host: verdict.host, plan, intercept };
  return hook ? { kind: "allowed", host: verdict.host, plan, hook } : { kind: "allowed", host: verdict.host, plan };
}

/**
 * Steps 1 and 2 alone, for a request that names no destination to decide (a SOCKS5 UDP
 * ASSOCIATE, BIND or unknown command): refused and recorded, or `undefined` to go on.
 */
export function passStateGate(ctx: SessionContext, req: GateRequest): Extract<GateVerdict, { kind: "refused" }> | undefined {
  const facts: RequestFacts = { protocol: req.protocol, port: req.port, method: req.method, client: req.client };
  return stateGuard(ctx, ctx.state.snapshot(), req, facts);
}

/**
 * Steps 1 and 2: the proxy's state (disabled; a client over `max_requests_per_second`, SOCKS5
 * datagrams aside), and limited mode for SOCKS5 (before the host is looked at).
 */
function stateGuard(ctx: SessionContext, snap: ProxySnapshot, req: GateRequest, facts: RequestFacts): Extract<GateVerdict, { kind: "refused" }> | undefined {
  if (!snap.network.enabled) return refuseByState(ctx, snap, req, facts, reportedHost(req), "proxy_state", "proxy_disabled");
  const rate = snap.network.max_requests_per_second;
  if (rate > 0 && ctx.limits && req.protocol !== "socks5_udp" && !ctx.limits.takeToken(rateClient(req.client), rate, snap.network.max_request_burst)) {
    return refuseByState(ctx, snap, req, facts, reportedHost(req), "proxy_state", "rate_limited");
  }
  // SOCKS5 carries no method to judge.
  if (isSocks(req.protocol) && snap.mode === "limited") return refuseByState(ctx, snap, req, facts, reportedHost(req), "mode_guard", "method_not_allowed");
  return undefined;
}

function isSocks(protocol: ProxyProtocol): boolean {
  return protocol === "socks5_tcp" || protocol === "socks5_udp";
}

/** The host as records name it before the policy ran: normalised when it parses. */
function reportedHost(req: GateRequest): string {
  if (req.unixSocket !== undefined) return UNIX_SOCKET_HOST;
  return displayHost(req.host);
}

/** Log a refusal (one info line, never a path or query) and return it. */
function refused(ctx: SessionContext, req: GateRequest, refusal: GateRefusal): Extract<GateVerdict, { kind: "refused" }> {
  const target = isSocks(req.protocol) ? TARGET.socks5 : TARGET.http;
  ctx.log.log("info", target, `blocked ${req.method ?? req.protocol} ${refusal.host}:${refusal.port} (${refusal.reason}) from ${req.client}`);
  return { kind: "refused", refusal };
}

/** Record and return a mode-guard or proxy-state refusal. */
function refuseByState(
  ctx: SessionContext,
  snap: ProxySnapshot,
  req: GateRequest,
  facts: RequestFacts,
  host: string,
  scope: "mode_guard" | "proxy_state",
  reason: string,
): Extract<GateVerdict, { kind: "refused" }> {
  recordStateBlock(ctx, snap, host, facts, scope, reason);
  return refused(ctx, req, { host, port: facts.port, reason, decision: "deny", source: scope, scope, protocol: req.protocol });
}

/** Step 3: an `x-unix-socket` request. */
async function unixGate(ctx: SessionContext, snap: ProxySnapshot, req: GateRequest, facts: RequestFacts): Promise<GateVerdict> {
  const host = UNIX_SOCKET_HOST;
  const n = snap.network;
  const lists = { allowed: n.allow_unix_sockets, denied: n.denied_unix_sockets ?? [], allowAll: n.dangerously_allow_all_unix_sockets === true };
  const allowed = await socketToDial(req.unixSocket!, lists, ctx.net);
  if (allowed === undefined) return refuseByState(ctx, snap, req, facts, host, "proxy_state", "not_allowed");
  if (snap.mode === "limited" && !LIMITED_MODE_METHODS.has(req.method ?? "")) return refuseByState(ctx, snap, req, facts, host, "mode_guard", "method_not_allowed");
  if (!ctx.net.connectUnix) return refuseByState(ctx, snap, req, facts, host, "proxy_state", "unix_socket_unsupported");
  recordUnixAllow(ctx, snap, host, facts);
  ctx.log.log("debug", TARGET.http, `${req.method} via unix socket allowed for ${req.client}`);
  // The allowlisted entry itself is dialled, not the client's spelling: a symlink swapped
  // after the check cannot redirect the connection.
  return { kind: "allowed", host, plan: { kind: "unix", path: allowed } };
}

/**
 * Step 6: the dial plan. Addresses known now (the policy's vetted ones, an upstream proxy given
 * as an IP literal) are checked against the proxy's own listeners at once (`loop`). A name left
 * to dial time (an allowed host when `allow_local_binding = true`, an upstream proxy's own
 * name) is resolved when dialled, so a kept-alive upstream connection is reused without a
 * lookup; the dial checks those addresses and the front reports a hit through
 * {@link refuseLoopAtDial}. SOCKS5 UDP is always sent directly; absolute-form `https://`
 * through an upstream proxy is planned unchecked (the front answers it `501`).
 */
function planDial(ctx: SessionContext, snap: ProxySnapshot, req: GateRequest, verdict: Extract<HostVerdict, { allowed: true }>): DialPlan | "loop" {
  const chaining = snap.network.allow_upstream_proxy && ctx.upstream && req.protocol !== "socks5_udp";
  const use = req.tls || req.protocol === "https_connect" || req.protocol === "socks5_tcp" ? "tunnel" : "plain";
  const proxy = chaining ? proxyFor(ctx.upstream!, use, verdict.host, req.port) : undefined;
  if (proxy) {
    if (req.tls) return { kind: "upstream", proxy };
    const addresses = ipaddr.isValid(proxy.host) ? [proxy.host] : undefined;
    if (addresses?.some((ip) => ctx.isOwnListener({ host: ip, port: proxy.port }))) return "loop";
    return { kind: "upstream", proxy, addresses };
  }
  if (verdict.addresses?.some((ip) => ctx.isOwnListener({ host: ip, port: req.port }))) return "loop";
  return { kind: "direct", addresses: verdict.addresses };
}

/**
 * An allowed CONNECT whose interception failed at the client's TLS handshake (the client does
 * not trust the CA, pins another certificate, or does not speak TLS): recorded as a
 * `mitm_handshake_failed` block (proxy state), so `/blocked` and the audit stream show it.
 */
export function recordInterceptFailure(ctx: SessionContext, req: GateRequest, host: string): void {
  const facts: RequestFacts = { protocol: req.protocol, port: req.port, method: req.method, client: req.client };
  recordStateBlock(ctx, ctx.state.snapshot(), host, facts, "proxy_state", "mitm_handshake_failed");
}

/**
 * A connection refused as it was accepted, because `max_connections` client connections are
 * open: recorded (`too_many_connections`, proxy state) against the listener it came to, and
 * logged (`record = false`: neither, for a flood, only a debug line). The session answers it
 * (`503`, or SOCKS5 reply `0x01`).
 */
export function refuseConnection(ctx: SessionContext, protocol: "http" | "socks5_tcp", listener: NetAddr, client: string, record = true): GateRefusal {
  const req: GateRequest = { protocol, host: listener.host, port: listener.port, client };
  const facts: RequestFacts = { protocol, port: listener.port, client };
  const snap = ctx.state.snapshot();
  if (record) return refuseByState(ctx, snap, req, facts, listener.host, "proxy_state", "too_many_connections").refusal;
  ctx.log.log("debug", TARGET.http, `connection from ${client} refused (too_many_connections), not recorded: one record a second`);
  // still counted in the metrics: only the records are kept to one a second
  const r = { timestamp: Date.now(), scope: "proxy_state", decision: "deny", source: "proxy_state", reason: "too_many_connections", override: false, protocol, host: listener.host, port: listener.port, method: undefined, client, mode: snap.mode } as const;
  ctx.state.metrics.decision(r);
  return { host: listener.host, port: listener.port, reason: "too_many_connections", decision: "deny", source: "proxy_state", scope: "proxy_state", protocol };
}

/**
 * A CONNECT or SOCKS5 CONNECT refused because `max_tunnels` tunnels are open, before its host
 * is decided: recorded (`too_many_tunnels`, proxy state) and logged, for the front to answer.
 */
export function refuseTunnel(ctx: SessionContext, req: GateRequest): GateRefusal {
  const facts: RequestFacts = { protocol: req.protocol, port: req.port, method: req.method, client: req.client };
  return refuseByState(ctx, ctx.state.snapshot(), req, facts, reportedHost(req), "proxy_state", "too_many_tunnels").refusal;
}

/**
 * A dial found that a name resolved when dialling (see {@link planDial}) reaches one of the
 * proxy's own listeners: record and log the `proxy_loop` refusal, for the front to answer.
 */
export function refuseLoopAtDial(ctx: SessionContext, req: GateRequest, host: string): GateRefusal {
  const snap = ctx.state.snapshot();
  const facts: RequestFacts = { protocol: req.protocol, port: req.port, method: req.method, client: req.client };
  return refuseByState(ctx, snap, req, facts, host, "proxy_state", "proxy_loop").refusal;
}
