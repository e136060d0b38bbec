/**
 * Finding, at test time, a host name other than `localhost` that the system resolver maps to
 * loopback only (from /etc/hosts, so nothing is looked up on the network).
 */
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { withDeadline } from "./util.ts";

function isLoopback(ip: string): boolean {
  return /^127\./.test(ip) || ip === "::1" || /^::ffff:127\./i.test(ip);
}

/**
 * A name from /etc/hosts (not `localhost`) whose every resolved address is loopback.
 * Throws with a clear message when the machine has none.
 */
export async function findLoopbackAlias(): Promise<string> {
  let text = "";
  try {
    text = readFileSync("/etc/hosts", "utf8");
  } catch (e) {
    throw new Error(`precondition failed: cannot read /etc/hosts (${(e as Error).message}); need a non-localhost name that resolves to loopback`);
  }
  const candidates: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [ip, ...names] = line.split(/\s+/);
    if (!ip || !isLoopback(ip)) continue;
    for (const n of names) {
      const name = n.toLowerCase();
      if (name === "localhost" || name.startsWith("localhost.") || name.endsWith(".localhost")) continue;
      if (name.includes("localhost") || name.startsWith("ip6-")) continue;
      if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(name)) continue;
      if (!candidates.includes(name)) candidates.push(name);
    }
  }
  for (const name of candidates) {
    try {
      const addrs = await withDeadline(lookup(name, { all: true }), 3_000, `lookup ${name}`);
      if (addrs.length > 0 && addrs.every((a) => isLoopback(a.address))) return name;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `precondition failed: no name other than localhost in /etc/hosts resolves only to loopback ` +
      `(candidates: ${candidates.join(", ") || "none"}); add e.g. "127.0.0.1 loopalias" to /etc/hosts`,
  );
}
