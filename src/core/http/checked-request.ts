/**
 * The first step of every request after its head is parsed: where it goes (its target) and how
 * its body is delimited (its framing), each checked, so CONNECT and forwarding start the same way.
 *
 * @module
 */
import { isFramingError, requestFraming, type BodyFraming } from "./framing.ts";
import type { RequestHead } from "./parser.ts";
import { isTargetError, type RequestTarget, type TargetError } from "./target.ts";

/** A request whose target and framing are usable. */
export interface CheckedRequest {
  readonly target: RequestTarget;
  readonly framing: BodyFraming;
}

/** Why a request head cannot be served: the status to answer and what was wrong. */
export interface HeadProblem {
  readonly problem: { readonly status: 400 | 501 | 502; readonly message: string };
}

/** The target `targetOf` finds in `head` and the head's body framing, or the first problem. */
export function checkRequest(head: RequestHead, targetOf: (head: RequestHead) => RequestTarget | TargetError): CheckedRequest | HeadProblem {
  const target = targetOf(head);
  if (isTargetError(target)) return { problem: target };
  const framing = requestFraming(head);
  if (isFramingError(framing)) return { problem: framing };
  return { target, framing };
}
