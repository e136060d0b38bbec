/**
 * Policy-decision micro-benchmark (figure 9 of bench/compare.ts): how long the policy engine takes
 * to decide one host against an allowlist of 10,000 patterns, with DNS excluded.
 *
 * - The policy is compiled from the core (`PolicyEngine.compile`, the same path a config's
 *   `allowed_domains` takes) with {@link PATTERNS} patterns, a third each exact names
 *   (`hN.exact.example`), `*.subN.example` and `**.apexN.example.org`, plus a deny list of 100.
 * - `allow_local_binding = true`, so an allowed name ends the decision before the DNS step
 *   (docs/behaviour.md §3 step 5): DNS is excluded, and nothing is resolved or dialled (the
 *   resolver passed in throws if it is ever called).
 * - The hosts are a fixed mix of hits (about one in five) and misses (exact, subdomain, apex, deeper subdomain, names
 *   that only look alike), cycled through; each decision is `await engine.decide(request)` with
 *   a request object built up front, so the figure includes normalising the host, the deny list,
 *   the allow list and the promise.
 * - It times BENCH_DECISIONS decisions (default 1,000,000) after a warm-up of a tenth as many,
 *   and prints one JSON line: `{"runtime", "patterns", "decisions", "hits", "nsPerDecision",
 *   "decisionsPerSecond", "nsPerMatch"}` (`nsPerMatch`: the compiled allowlist's `matches()`
 *   alone, on the same hosts already normalised).
 *
 * Runs under Node (`node --import tsx bench/decide-micro.ts`), Bun (`bun bench/decide-micro.ts`)
 * and Deno (`deno run -A bench/decide-micro.ts`); bench/compare.ts runs all three.
 */
import { defaultNetworkConfig } from "../src/core/config/types.ts";
import { PolicyEngine, type NetworkPolicyRequest } from "../src/core/policy/decide.ts";
import { normalizeHost } from "../src/core/policy/host.ts";

/** Allowlist size. */
const PATTERNS = 10_000;
/** Distinct hosts the decisions cycle through. */
const HOST_MIX = 4_096;

declare const Deno: { env: { get(name: string): string | undefined }; version: { deno: string } } | undefined;
declare const Bun: { version: string } | undefined;

function env(name: string): string | undefined {
  if (typeof Deno !== "undefined") return Deno.env.get(name);
  return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env[name];
}

function runtimeName(): string {
  if (typeof Deno !== "undefined") return `deno ${Deno.version.deno}`;
  if (typeof Bun !== "undefined") return `bun ${Bun.version}`;
  return `node ${(globalThis as { process?: { version: string } }).process?.version ?? "?"}`;
}

const DECISIONS = Number(env("BENCH_DECISIONS") ?? 1_000_000);

function allowlist(): string[] {
  const out: string[] = [];
  for (let i = 0; i < PATTERNS; i++) {
    if (i % 3 === 0) out.push(`h${i}.exact.example`);
    else if (i % 3 === 1) out.push(`*.sub${i}.example`);
    else out.push(`**.apex${i}.example.org`);
  }
  return out;
}

/** The host mix: about one in five hits, the rest misses of several kinds, spread over the whole list. */
function hosts(): { host: string; expect: boolean }[] {
  const out: { host: string; expect: boolean }[] = [];
  for (let k = 0; out.length < HOST_MIX; k++) {
    const i = (k * 7919) % PATTERNS;
    switch (k % 8) {
      case 0: // exact hit / exact miss
        out.push({ host: `h${i}.exact.example`, expect: i % 3 === 0 });
        break;
      case 1: // a subdomain of *.subN (hit when that pattern exists)
        out.push({ host: `api.sub${i}.example`, expect: i % 3 === 1 });
        break;
      case 2: // the apex of *.subN: never matches *.X
        out.push({ host: `sub${i}.example`, expect: false });
        break;
      case 3: // the apex of **.apexN
        out.push({ host: `apex${i}.example.org`, expect: i % 3 === 2 });
        break;
      case 4: // deep subdomain of **.apexN
        out.push({ host: `a.b.c.apex${i}.example.org`, expect: i % 3 === 2 });
        break;
      case 5: // unrelated name
        out.push({ host: `www.unrelated${i}.test`, expect: false });
        break;
      case 6: // look-alike: suffix without the dot boundary
        out.push({ host: `xsub${i}.example`, expect: false });
        break;
      default: // upper case and a trailing dot, normalised away
        out.push({ host: `WWW.SUB${i}.EXAMPLE.`, expect: i % 3 === 1 });
    }
  }
  return out;
}

const network = {
  ...defaultNetworkConfig(),
  enabled: true,
  allow_local_binding: true,
  allowed_domains: allowlist(),
  denied_domains: Array.from({ length: 100 }, (_, i) => `blocked${i}.example`),
};
const engine = PolicyEngine.compile(network, {
  resolve: () => {
    throw new Error("decide-micro: the DNS step was reached (it must be excluded)");
  },
});

const mix = hosts();
const requests: NetworkPolicyRequest[] = mix.map(({ host }) => ({ protocol: "http", host, port: 443, method: "GET", client_addr: "127.0.0.1:50000" }));

// Sanity: every host decides as the mix says.
for (let i = 0; i < mix.length; i++) {
  const v = await engine.decide(requests[i]!);
  if (v.allowed !== mix[i]!.expect) throw new Error(`decide-micro: ${mix[i]!.host} decided ${v.allowed ? "allow" : "deny"}, expected ${mix[i]!.expect ? "allow" : "deny"}`);
}

async function run(n: number): Promise<{ ms: number; hits: number }> {
  let hits = 0;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const v = await engine.decide(requests[i % requests.length]!);
    if (v.allowed) hits++;
  }
  return { ms: performance.now() - start, hits };
}

await run(Math.max(1, Math.floor(DECISIONS / 10)));
const { ms, hits } = await run(DECISIONS);

// The compiled allowlist alone, on pre-normalised names.
const names = mix.map(({ host }) => normalizeHost(host)!.name);
let sink = 0;
for (let i = 0; i < DECISIONS / 10; i++) if (engine.allowed.matches(names[i % names.length]!, 443)) sink++;
const matchStart = performance.now();
for (let i = 0; i < DECISIONS; i++) if (engine.allowed.matches(names[i % names.length]!, 443)) sink++;
const matchMs = performance.now() - matchStart;

console.log(
  JSON.stringify({
    runtime: runtimeName(),
    patterns: PATTERNS,
    decisions: DECISIONS,
    hits,
    nsPerDecision: (ms * 1e6) / DECISIONS,
    decisionsPerSecond: DECISIONS / (ms / 1000),
    nsPerMatch: (matchMs * 1e6) / DECISIONS,
    sink,
  }),
);
