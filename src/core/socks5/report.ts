/**
 * How SOCKS5 targets are named in records and logs.
 *
 * @module
 */
import { displayHost } from "../policy/host.ts";
import type { Socks5Address } from "./parser.ts";

/** The normalised host when it parses, else what the client sent. */
export function reportedHost(target: Socks5Address): string {
  return displayHost(target.host);
}
