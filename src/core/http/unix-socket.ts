/**
 * The `x-unix-socket: /abs/path` header of plain requests (docs/behaviour.md §5). The gate
 * decides such a request (`gate/gate.ts`: the path must be allowlisted, limited mode applies);
 * the header is never ignored: such a request never falls through to the TCP host in its
 * target.
 *
 * @module
 */
import { headerValues, type RequestHead } from "./parser.ts";

/** The header naming a unix socket to forward to. */
export const UNIX_SOCKET_HEADER = "x-unix-socket";

/** The socket path a request asks for, or `undefined` when it has no such header. */
export function requestedUnixSocket(head: RequestHead): string | undefined {
  const values = headerValues(head.headers, UNIX_SOCKET_HEADER);
  return values.length === 0 ? undefined : values.join(",");
}
