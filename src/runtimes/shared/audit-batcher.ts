/**
 * The audit export's queue: records wait here and go to the exporter in batches of the sizes the
 * OpenTelemetry SDK's batch processor uses (batches of {@link AUDIT_EXPORT_BATCH_RECORDS}, sent
 * when full or after {@link AUDIT_EXPORT_DELAY_MS}, at most {@link AUDIT_QUEUE_MAX_RECORDS}
 * waiting, each export given up after {@link AUDIT_EXPORT_TIMEOUT_MS}). Unlike the SDK's, up to
 * {@link AUDIT_EXPORTS_IN_FLIGHT} batches are out at once, so they may reach the collector out of
 * order. Where the waiting records are kept is the {@link RecordStore}'s business: a list of
 * them ({@link ListStore}), or the OTLP request they are encoded into as they come
 * (`otel-provider.ts`).
 *
 * A full batch is sent on the next timer turn, never inside the call that filled it, so the
 * request whose decision filled it is answered first. When the queue is full (a collector slower
 * than the records come), new records are dropped and counted; so are the records of a batch
 * the exporter reports failed (after its own retries) or that did not settle in time, and
 * records no encoder takes.
 *
 * @module
 */

/** Records per export, as the SDK's `maxExportBatchSize` default. */
export const AUDIT_EXPORT_BATCH_RECORDS = 512;

/** Longest a record waits before a batch that is not full is sent anyway (the SDK's `scheduledDelayMillis`). */
export const AUDIT_EXPORT_DELAY_MS = 1_000;

/** Most records waiting to be sent; more are dropped and counted (the SDK's `maxQueueSize`). */
export const AUDIT_QUEUE_MAX_RECORDS = 2_048;

/** Most batches being sent at once; while that many are out, full batches wait in the queue. */
export const AUDIT_EXPORTS_IN_FLIGHT = 4;

/**
 * Longest an export may take before its batch counts as failed and its slot is free again (the
 * SDK's `exportTimeoutMillis`): a collector that trickles its answer cannot hold the queue.
 */
export const AUDIT_EXPORT_TIMEOUT_MS = 30_000;

/**
 * Shortest time between two reports of lost records. The first loss is reported at once; losses
 * after a report are reported when the interval is up.
 */
export const AUDIT_LOSS_REPORT_INTERVAL_MS = 60_000;

/** Sends one batch and says, once, whether it arrived. */
export type SendBatch<B> = (batch: B, done: (ok: boolean) => void) => void;

/** Where the batcher keeps the records waiting, and how it takes a batch of them. */
export interface RecordStore<T, B> {
  /** Records waiting. */
  readonly size: number;
  /** Keep `record`; false when it cannot be kept (a record no encoder takes: counted as left out). */
  add(record: T): boolean;
  /** The oldest waiting records, at most `max` of them (at least one waits), as a batch, and how many. */
  take(max: number): { readonly batch: B; readonly count: number };
}

/** The records themselves, in a list; a batch is a list of them. */
export class ListStore<T> implements RecordStore<T, T[]> {
  private records: T[] = [];

  get size(): number {
    return this.records.length;
  }

  add(record: T): boolean {
    this.records.push(record);
    return true;
  }

  take(max: number): { batch: T[]; count: number } {
    const all = this.records;
    const batch = all.length <= max ? all : all.slice(0, max);
    this.records = batch === all ? [] : all.slice(max);
    return { batch, count: batch.length };
  }
}

/** What became of the records the batcher took, so far. */
export interface BatcherCounts {
  /** Records in batches the exporter confirmed. */
  readonly sent: number;
  /** Records dropped because the queue was full. */
  readonly dropped: number;
  /** Records in batches the exporter reported failed, or that did not settle in time. */
  readonly failed: number;
  /** Records left out when they came because no encoder takes them. */
  readonly skipped: number;
  /** Records waiting or being sent now. */
  readonly pending: number;
}

/** The queue. */
export class AuditBatcher<T, B> {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the armed timer is the next turn's (`schedule(0)`), not the delay's. */
  private timerIsNextTurn = false;
  /** Batches out now, and the records in them. */
  private inFlight = 0;
  private inFlightRecords = 0;
  /** Called each time a batch's send settles (flushes wait on it). */
  private settled: Array<() => void> = [];
  private counts = { sent: 0, dropped: 0, failed: 0, skipped: 0 };
  /** When losses were last reported (monotonic clock), what they were then, and the follow-up report's timer. */
  private lastLossReport = -Infinity;
  private lossesReported = 0;
  private lossTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param send sends one batch.
   * @param onLoss called with the counts when records are lost (dropped, failed or skipped): at once for
   *   the first loss, then at most once per {@link AUDIT_LOSS_REPORT_INTERVAL_MS} while losses go on.
   * @param store keeps the records waiting (a {@link ListStore}: a batch is a list of them).
   */
  constructor(
    private readonly send: SendBatch<B>,
    private readonly onLoss: ((counts: BatcherCounts) => void) | undefined,
    private readonly store: RecordStore<T, B>,
  ) {}

  /** Take one record. */
  push(record: T): void {
    if (this.store.size >= AUDIT_QUEUE_MAX_RECORDS) {
      this.counts.dropped++;
      this.lost();
      return;
    }
    if (!this.store.add(record)) {
      this.counts.skipped++;
      this.lost();
      return;
    }
    if (this.store.size >= AUDIT_EXPORT_BATCH_RECORDS) this.schedule(0);
    else if (this.timer === undefined) this.schedule(AUDIT_EXPORT_DELAY_MS);
  }

  /** What became of the records so far. */
  stats(): BatcherCounts {
    return { ...this.counts, pending: this.store.size + this.inFlightRecords };
  }

  /** Send everything waiting and resolve once every batch out has settled (or timed out). */
  async flush(): Promise<void> {
    this.cancelTimer();
    for (;;) {
      while (this.store.size > 0 && this.inFlight < AUDIT_EXPORTS_IN_FLIGHT) this.sendOne();
      if (this.inFlight === 0 && this.store.size === 0) return;
      await new Promise<void>((resolve) => this.settled.push(resolve));
    }
  }

  /** Stop the timers (the follow-up loss report included); records waiting stay for a flush. */
  close(): void {
    this.cancelTimer();
    if (this.lossTimer !== undefined) clearTimeout(this.lossTimer);
    this.lossTimer = undefined;
  }

  /** Records were just lost: tell {@link onLoss} now, or when the interval since the last report is up. */
  private lost(): void {
    if (this.onLoss === undefined || this.lossTimer !== undefined) return;
    const wait = this.lastLossReport + AUDIT_LOSS_REPORT_INTERVAL_MS - performance.now();
    if (wait <= 0) return this.reportLosses();
    this.lossTimer = unrefd(
      setTimeout(() => {
        this.lossTimer = undefined;
        this.reportLosses();
      }, wait),
    );
  }

  private reportLosses(): void {
    const lost = this.counts.dropped + this.counts.failed + this.counts.skipped;
    if (lost === this.lossesReported) return;
    this.lossesReported = lost;
    this.lastLossReport = performance.now();
    this.onLoss?.(this.stats());
  }

  /** Arm the timer to send within `ms`, keeping one armed for as soon or sooner. */
  private schedule(ms: number): void {
    if (this.timer !== undefined) {
      if (ms !== 0 || this.timerIsNextTurn) return;
      clearTimeout(this.timer);
    }
    this.timerIsNextTurn = ms === 0;
    this.timer = unrefd(
      setTimeout(() => {
        this.timer = undefined;
        this.sendDue();
      }, ms),
    );
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The timer fired: send full batches, or what waits when the delay is up. */
  private sendDue(): void {
    do this.sendOne();
    while (this.store.size >= AUDIT_EXPORT_BATCH_RECORDS && this.inFlight < AUDIT_EXPORTS_IN_FLIGHT);
    if (this.store.size > 0 && this.inFlight < AUDIT_EXPORTS_IN_FLIGHT) this.schedule(AUDIT_EXPORT_DELAY_MS);
  }

  private sendOne(): void {
    if (this.store.size === 0 || this.inFlight >= AUDIT_EXPORTS_IN_FLIGHT) return;
    const { batch, count } = this.store.take(AUDIT_EXPORT_BATCH_RECORDS);
    this.inFlight++;
    this.inFlightRecords += count;
    let once = false;
    const done = (ok: boolean): void => {
      if (once) return;
      once = true;
      clearTimeout(giveUp);
      this.inFlight--;
      this.inFlightRecords -= count;
      if (ok) this.counts.sent += count;
      else {
        this.counts.failed += count;
        this.lost();
      }
      // what waited while the sends were out goes now (full) or after the delay
      if (this.store.size >= AUDIT_EXPORT_BATCH_RECORDS) this.schedule(0);
      else if (this.store.size > 0 && this.timer === undefined) this.schedule(AUDIT_EXPORT_DELAY_MS);
      for (const resolve of this.settled.splice(0)) resolve();
    };
    const giveUp = unrefd(setTimeout(() => done(false), AUDIT_EXPORT_TIMEOUT_MS));
    try {
      this.send(batch, done);
    } catch {
      done(false);
    }
  }
}

/** `timer`, no longer keeping the process alive on its own (where the runtime can). */
function unrefd(timer: ReturnType<typeof setTimeout>): ReturnType<typeof setTimeout> {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}
