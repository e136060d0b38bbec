/**
 * What the gate is asked and what it answers (see `gate.ts`).
 *
 * @module
 */
import type { DecisionScope } from "../audit/events.ts";
import type { HttpHeader } from "../http/parser.ts";
import type { CompiledHook } from "../mitm/hooks.ts";
import type { DialPlan } from "../net/dial-plan.ts";
import type { BlockReason, DecisionSource, ProxyProtocol } from "../policy/types.ts";

/** What a session knows about one request, tunnel or datagram. */
export interface GateRequest {
  readonly protocol: ProxyProtocol;
  /** The host as the client named it (normalised by the policy). */
  readonly host: string;
  readonly port: number;
  /** The HTTP method (`CONNECT` for a tunnel); absent for SOCKS5. */
  readonly method?: string;
  /** `ip:port` of the client. */
  readonly client: string;
  /** An attribution credential the client presented (Proxy-Authorization or RFC 1929 user). */
  readonly credential?: string;
  /** The request asks to switch protocols (WebSocket…): a two-way channel. */
  readonly upgrade?: boolean;
  /** The `x-unix-socket` path a plain request asks for. */
  readonly unixSocket?: string;
  /** An absolute-form `https://` request: the proxy originates TLS, chaining uses the tunnel proxy. */
  readonly tls?: boolean;
  /** A plain request's origin-form target and headers, for `mitm_hooks` (absent for tunnels). */
  readonly content?: { readonly path: string; readonly headers: readonly HttpHeader[] };
}

/** A refusal: what a front needs to answer it in its own bytes (the 403 body's fields). */
export interface Refusal {
  /** Normalised host (the raw one when it could not be parsed; `unix-socket` for unix sockets). */
  readonly host: string;
  readonly port: number;
  readonly reason: BlockReason;
  readonly decision: "deny" | "ask";
  readonly source: DecisionSource;
  readonly protocol: ProxyProtocol;
}

/** A refusal as the gate made it: also the kind of rule that made it. */
export interface GateRefusal extends Refusal {
  readonly scope: DecisionScope;
}

/** The gate's answer. */
export type GateVerdict =
  | {
      readonly kind: "allowed";
      readonly host: string;
      readonly plan: DialPlan;
      /**
       * A CONNECT allowed in limited mode (only with `mitm`): it must be intercepted, never
       * opened as an opaque tunnel. Decided on the gate's own snapshot, so a mode switch during
       * the decision cannot change what was allowed.
       */
      readonly intercept?: boolean;
      /** The `mitm_hooks` entry the request matched: its actions apply before it is sent. */
      readonly hook?: CompiledHook;
    }
  | { readonly kind: "refused"; readonly refusal: GateRefusal };
