/**
 * Idle CONNECT tunnels cost little memory: the proxy's resident set (VmRSS of the spawned
 * process, Linux `/proc`) grows by well under 64 KiB per idle tunnel. A tunnel is two
 * connections, each with a read waiting; a fixed 64 KiB buffer per read (what the Deno adapter
 * used to hand to every `conn.read()`) cost 128 KiB per tunnel. The limit is generous on
 * purpose (garbage not yet collected counts as resident): typical figures are 10-13 KiB (Bun),
 * 17-22 KiB (Node) and 22-25 KiB (Deno) per tunnel.
 *
 * Fewer tunnels than the 10,000 of the bench figures: the proxy needs two descriptors per
 * tunnel and this one runs under the machine's default open-files limit.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { networkConfig, type ProxyProcess, residentBytes, RUNTIME, startProxy, withDeadline } from "./helpers/index.ts";

/** Tunnels opened before the first measurement (warms up code paths and allocators). */
const WARMUP_TUNNELS = 200;
/** Tunnels whose cost is measured. */
const TUNNELS = 3_000;
/** Tunnels being opened at once. */
const CONCURRENCY = 200;
/** Largest resident growth per idle tunnel that passes. */
const MAX_BYTES_PER_TUNNEL = 64 * 1024;
/** Deadline for opening all the tunnels. */
const OPEN_DEADLINE_MS = 60_000;

let sink: Server;
let sinkPort: number;
const sinkConns: Socket[] = [];
const clients: Socket[] = [];
let proxy: ProxyProcess;

beforeAll(async () => {
  // The tunnels' far end: accepts and stays silent.
  sink = createServer((s) => {
    sinkConns.push(s);
    s.on("error", () => {});
  });
  await withDeadline(new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r())), 5_000, "sink listening");
  sinkPort = (sink.address() as { port: number }).port;
  // One log line per tunnel at info would only slow the run down.
  proxy = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1"] }), { env: { RUST_LOG: "info,codex_network_proxy::http_proxy=warn" } });
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const c of sinkConns) c.destroy();
  await proxy?.stop();
  await new Promise<void>((r) => (sink ? sink.close(() => r()) : r()));
});

/** Resident set of the proxy process, in bytes. */
function proxyRss(): number {
  return residentBytes(proxy.child.pid!);
}

/** Open one CONNECT tunnel to the sink and leave it idle. */
function openTunnel(): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = connect({ port: proxy.port, host: "127.0.0.1" });
    clients.push(s);
    let head = "";
    s.on("error", reject);
    s.on("connect", () => s.write(`CONNECT 127.0.0.1:${sinkPort} HTTP/1.1\r\nHost: 127.0.0.1:${sinkPort}\r\n\r\n`));
    const onData = (d: Buffer): void => {
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      s.off("data", onData);
      if (head.startsWith("HTTP/1.1 200")) resolve();
      else reject(new Error(`CONNECT answered ${head.split("\r\n")[0]}`));
    };
    s.on("data", onData);
    s.on("close", () => reject(new Error("tunnel closed before the 200")));
  });
}

/** Open `n` tunnels, {@link CONCURRENCY} at a time. */
async function openTunnels(n: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      await openTunnel();
    }
  };
  await withDeadline(Promise.all(Array.from({ length: CONCURRENCY }, worker)), OPEN_DEADLINE_MS, `opening ${n} tunnels`);
}

describe("memory of idle tunnels", () => {
  it(`${TUNNELS} idle CONNECT tunnels add under ${MAX_BYTES_PER_TUNNEL / 1024} KiB each to the proxy's RSS`, async () => {
    await openTunnels(WARMUP_TUNNELS);
    const before = proxyRss();
    await openTunnels(TUNNELS);
    const after = proxyRss();
    const perTunnel = (after - before) / TUNNELS;
    console.info(
      `${RUNTIME}: RSS ${(before / 2 ** 20).toFixed(0)} MiB with ${WARMUP_TUNNELS} tunnels, ${(after / 2 ** 20).toFixed(0)} MiB with ${WARMUP_TUNNELS + TUNNELS}: ${(perTunnel / 1024).toFixed(1)} KiB per idle tunnel`,
    );
    expect(perTunnel).toBeLessThan(MAX_BYTES_PER_TUNNEL);
  });
});
