/**
 * Readable logs: the RUST_LOG filter syntax of the reference, and what the sessions log at
 * which level (refusals and allowed tunnels at info, parse errors at debug, never a URL path).
 */
import { describe, expect, it } from "vitest";
import { defaultNetworkConfig } from "../../src/core/config/types.ts";
import { serveHttpConnection } from "../../src/core/http/session.ts";
import { createLineLogger, parseLogFilter, TARGET, type LogLevel } from "../../src/core/log.ts";
import { latin1Bytes } from "../../src/core/net/bytes.ts";
import type { SessionContext } from "../../src/core/session-context.ts";
import { ProxyState } from "../../src/core/state.ts";
import { connPair, readAllText, tripwireNet } from "../helpers/memory-net.ts";

describe("RUST_LOG filter", () => {
  const cases: [string | undefined, LogLevel, string, boolean][] = [
    [undefined, "info", TARGET.http, true],
    [undefined, "debug", TARGET.http, false],
    ["", "warn", TARGET.main, true],
    ["codex_network_proxy=debug", "debug", TARGET.http, true],
    ["codex_network_proxy=debug", "trace", TARGET.http, false],
    ["codex_network_proxy=warn", "info", TARGET.socks5, false],
    ["warn,codex_network_proxy::socks5=trace", "trace", TARGET.socks5, true],
    ["warn,codex_network_proxy::socks5=trace", "info", TARGET.http, false],
    ["codex_network_proxy::http_proxy=off", "error", TARGET.http, false],
    ["debug", "debug", TARGET.admin, true],
    ["codex_network_proxy=info,codex_network_proxy::admin=error", "warn", TARGET.admin, false],
    ["codex_network_proxy=info,codex_network_proxy::admin=error", "warn", TARGET.config, true],
    ["codex_network_proxy_other=trace", "debug", TARGET.http, false],
  ];
  it.each(cases)("RUST_LOG=%s: %s on %s → %s", (spec, level, target, expected) => {
    expect(parseLogFilter(spec)(level, target)).toBe(expected);
  });

  it("one filter asked over and over, for many targets, answers as a fresh one does each time", () => {
    for (const spec of new Set(cases.map((c) => c[0]))) {
      const filter = parseLogFilter(spec);
      for (let round = 0; round < 3; round++) {
        // more targets than the filter remembers, so its memory is cleared on the way too
        for (let i = 0; i < 100; i++) {
          for (const target of [...Object.values(TARGET), `codex_network_proxy::extra${i}`]) {
            for (const level of ["error", "warn", "info", "debug", "trace"] as const) {
              expect(filter(level, target)).toBe(parseLogFilter(spec)(level, target));
            }
          }
        }
      }
    }
  });

  it("formats lines as TIMESTAMP LEVEL target: message", () => {
    const lines: string[] = [];
    createLineLogger((l) => lines.push(l), "info").log("warn", TARGET.config, "hello");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z  WARN codex_network_proxy::config: hello$/);
  });
});

describe("what the HTTP session logs", () => {
  async function session(requests: string, spec: string): Promise<string[]> {
    const lines: string[] = [];
    const { net } = tripwireNet({});
    const state = new ProxyState({ ...defaultNetworkConfig(), enabled: true, allowed_domains: ["allowed.example"] }, { resolve: (h) => net.resolve(h) });
    const ctx: SessionContext = { net, state, log: createLineLogger((l) => lines.push(l), spec), track: () => {}, untrack: () => {}, isOwnListener: () => false };
    const [client, server] = connPair();
    const done = serveHttpConnection(server, ctx);
    await client.write(latin1Bytes(requests));
    await readAllText(client); // the proxy answers and half-closes (the requests end the connection)
    await client.closeWrite();
    await done;
    return lines;
  }

  it("a refusal is one info line with target, host:port and reason, never the path or query", async () => {
    const lines = await session("GET http://refused.example/private/path?key=v HTTP/1.1\r\nHost: refused.example\r\nConnection: close\r\n\r\n", "info");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("INFO codex_network_proxy::http_proxy: blocked GET refused.example:80 (not_allowed)");
    expect(lines.join("\n")).not.toMatch(/private|key=v/);
  });

  it("a parse error is logged at debug only", async () => {
    const bad = "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n";
    expect(await session(bad, "info")).toEqual([]);
    const debug = await session(bad, "codex_network_proxy=debug");
    expect(debug.some((l) => l.includes("DEBUG codex_network_proxy::http_proxy") && l.includes("400"))).toBe(true);
  });
});
