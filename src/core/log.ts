/**
 * Human-readable logging with Rust-style targets (`codex_network_proxy::http_proxy`), filtered
 * by a `RUST_LOG`-like spec: `info`, `codex_network_proxy=debug`,
 * `codex_network_proxy::socks5=trace,warn`. The most specific matching directive wins.
 *
 * @module
 */

/** Severity, most severe first. */
export type LogLevel = "error" | "warn" | "info" | "debug" | "trace";

const RANK: Record<LogLevel, number> = { error: 1, warn: 2, info: 3, debug: 4, trace: 5 };

/** Log targets used by the proxy. */
export const TARGET = {
  main: "codex_network_proxy",
  http: "codex_network_proxy::http_proxy",
  socks5: "codex_network_proxy::socks5",
  admin: "codex_network_proxy::admin",
  config: "codex_network_proxy::config",
} as const;

/** A leveled, targeted logger. */
export interface Logger {
  log(level: LogLevel, target: string, message: string): void;
  enabled(level: LogLevel, target: string): boolean;
}

interface Directive {
  target: string;
  rank: number;
}

/** Parse a filter spec. Unknown levels are ignored; an empty spec means `info`. */
export function parseLogFilter(spec: string | undefined): (level: LogLevel, target: string) => boolean {
  const directives: Directive[] = [];
  let fallback = RANK.info;
  for (const part of (spec ?? "").split(",")) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf("=");
    if (eq < 0) {
      const lvl = levelRank(p);
      if (lvl !== undefined) fallback = lvl;
      else directives.push({ target: p, rank: RANK.trace });
      continue;
    }
    const lvl = levelRank(p.slice(eq + 1));
    if (lvl !== undefined) directives.push({ target: p.slice(0, eq), rank: lvl });
  }
  directives.sort((a, b) => b.target.length - a.target.length);
  // The most verbose rank each target logs at, found once per target: asked on every request.
  const ranks = new Map<string, number>();
  const rankOf = (target: string): number => {
    const d = directives.find((x) => target === x.target || target.startsWith(x.target + "::"));
    const rank = d ? d.rank : fallback;
    if (ranks.size >= MAX_CACHED_TARGETS) ranks.clear();
    ranks.set(target, rank);
    return rank;
  };
  return (level, target) => RANK[level] <= (ranks.get(target) ?? rankOf(target));
}

/** Targets whose rank a filter remembers (the proxy's own are a handful); past that, it starts again. */
const MAX_CACHED_TARGETS = 64;

function levelRank(s: string): number | undefined {
  const l = s.trim().toLowerCase();
  if (l === "off") return 0;
  if (l === "warning") return RANK.warn;
  return (RANK as Record<string, number>)[l];
}

/** A logger writing `TIMESTAMP LEVEL target: message` lines through `write`. */
export function createLineLogger(write: (line: string) => void, spec?: string): Logger {
  const enabled = parseLogFilter(spec);
  return {
    enabled,
    log(level, target, message) {
      if (!enabled(level, target)) return;
      write(`${new Date().toISOString()} ${level.toUpperCase().padStart(5)} ${target}: ${message}`);
    },
  };
}

/** A logger that drops everything (library default). */
export const silentLogger: Logger = { log() {}, enabled: () => false };
