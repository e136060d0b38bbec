/**
 * The blocked-request ring behind `GET /blocked` (docs/behaviour.md §7): the most recent refusals,
 * oldest first, bounded.
 *
 * @module
 */
import type { DecisionRecord } from "./events.ts";

/** How many refusals the ring keeps. */
export const BLOCKED_RING_SIZE = 200;

/** An entry of `GET /blocked`. `timestamp` is in Unix seconds; unknown fields are `null`. */
export interface BlockedEntry {
  host: string;
  reason: string;
  client: string | null;
  method: string | null;
  mode: string;
  protocol: string;
  decision: string;
  source: string;
  port: number;
  timestamp: number;
}

/** The `/blocked` fields of a decision (also the base of a `/events` decision). */
export function blockedEntry(r: DecisionRecord): BlockedEntry {
  return {
    host: r.host,
    reason: r.reason,
    client: r.client ?? null,
    method: r.method ?? null,
    mode: r.mode,
    protocol: r.protocol,
    decision: r.decision,
    source: r.source,
    port: r.port,
    timestamp: Math.floor(r.timestamp / 1000),
  };
}

/** A fixed-size ring of refusals. */
export class BlockedLog {
  private readonly entries: BlockedEntry[] = [];

  constructor(readonly capacity: number = BLOCKED_RING_SIZE) {}

  /** Record a decision; allows are ignored. */
  record(r: DecisionRecord): void {
    if (r.decision === "allow") return;
    this.entries.push(blockedEntry(r));
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
  }

  /** A copy of the entries, oldest first. */
  list(): BlockedEntry[] {
    return this.entries.slice();
  }
}
