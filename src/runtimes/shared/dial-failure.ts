/**
 * Which {@link DialFailure} a runtime's dial error is, from its errno code (Node, Bun, and Deno's
 * `node:` layer) or, failing that, its message (Bun and Deno describe some failures only in
 * words). Shared by every adapter so a refused dial is `refused` on each.
 *
 * @module
 */
import type { DialFailure } from "../../core/net/contract.ts";

/** errno codes and the failure each one is. */
const BY_CODE: Readonly<Record<string, DialFailure>> = {
  ECONNREFUSED: "refused",
  EHOSTUNREACH: "host_unreachable",
  ENETUNREACH: "network_unreachable",
  ETIMEDOUT: "timeout",
  ABORT_ERR: "timeout",
};

/** Words in a message and the failure they describe, tried in order when there is no known code. */
const BY_MESSAGE: readonly (readonly [RegExp, DialFailure])[] = [
  [/refused|ECONNREFUSED/i, "refused"],
  [/host is unreachable|EHOSTUNREACH/i, "host_unreachable"],
  [/network is unreachable|ENETUNREACH/i, "network_unreachable"],
  [/timed out|ETIMEDOUT/i, "timeout"],
];

/** The kind of a dial error `e`; `other` when neither its code nor its message says. */
export function dialFailure(e: unknown): DialFailure {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string" && Object.hasOwn(BY_CODE, code)) return BY_CODE[code]!;
  const message = String((e as { message?: unknown } | null)?.message ?? "");
  return BY_MESSAGE.find(([words]) => words.test(message))?.[1] ?? "other";
}
