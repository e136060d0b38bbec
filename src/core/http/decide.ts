/**
 * The front every HTTP request goes through, plain or CONNECT: proxy state, the policy (with
 * the attribution of a presented credential) and the limited-mode guard. Refusals are recorded
 * and answered here.
 *
 * @module
 */
import { basicProxyUser } from "../attribution.ts";
import type { Conn } from "../net/contract.ts";
import type { LeaveWatch } from "../net/reader.ts";
import type { HostVerdict } from "../policy/types.ts";
import { attributed, recordVerdict, type RequestFacts, type SessionContext } from "../session-context.ts";
import type { ProxySnapshot } from "../state.ts";
import { headerValues, type RequestHead } from "./parser.ts";
import { answerRefusal, refuseByState, type RequestOutcome } from "./reply.ts";

/** Either the allowed verdict, or the refusal already answered. */
export type HttpDecision =
  | { readonly allowed: Extract<HostVerdict, { allowed: true }> }
  | { readonly answered: RequestOutcome };

/**
 * Decide one request. `limitedRefuses` says whether limited mode forbids it (a write method,
 * an upgrade, any tunnel); it is checked after the host decision (README, "How a request is
 * decided"). When the client leaves first (`presence`), rejects with its `PeerLeftError`; the
 * decision is still recorded once the policy has made it.
 */
export async function decideRequest(
  ctx: SessionContext,
  snap: ProxySnapshot,
  head: RequestHead,
  client: Conn,
  facts: RequestFacts & { readonly method: string },
  requestedHost: string,
  keep: boolean,
  limitedRefuses: boolean,
  presence?: LeaveWatch,
): Promise<HttpDecision> {
  if (!snap.network.enabled) return { answered: await refuseByState(ctx, snap, client, facts, requestedHost, "proxy_state", "proxy_disabled", keep) };
  const credential = basicProxyUser(headerValues(head.headers, "proxy-authorization")[0]);
  const asked = snap.policy
    .decide({
      protocol: facts.protocol,
      host: requestedHost,
      port: facts.port,
      method: facts.method,
      client_addr: facts.client,
      ...attributed(ctx, credential),
    })
    .then((verdict) => {
      // Every evaluation is recorded, also one whose client left before it ended: a client
      // must not be able to probe the policy unrecorded by hanging up during DNS vetting.
      recordVerdict(ctx, snap, verdict, facts);
      return verdict;
    });
  // DNS vetting and a decider may take seconds: a client that left meanwhile is not answered.
  const verdict = await (presence ? presence.race(asked) : asked);
  if (!verdict.allowed) {
    const { host, reason, decision, source } = verdict;
    return { answered: await answerRefusal(ctx, client, { host, port: facts.port, reason, decision, source, protocol: facts.protocol }, facts.method, keep) };
  }
  if (snap.mode === "limited" && limitedRefuses) {
    return { answered: await refuseByState(ctx, snap, client, facts, verdict.host, "mode_guard", "method_not_allowed", keep) };
  }
  return { allowed: verdict };
}
