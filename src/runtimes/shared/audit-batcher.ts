/**
 * The audit export's queue: records wait here and go to the exporter in batches, as the
 * OpenTelemetry SDK's batch processor would send them (the same defaults: batches of
 * {@link AUDIT_EXPORT_BATCH_RECORDS}, sent when full or after {@link AUDIT_EXPORT_DELAY_MS}, at
 * most {@link AUDIT_QUEUE_MAX_RECORDS} waiting). Taking a record costs an array push; the
 * records are turned into OTLP only when their batch is sent.
 *
 * A full batch is sent on the next timer turn, never inside the call that filled it, so the
 * request whose decision filled it is answered first. When the queue is full (a collector slower
 * than the records come), new records are dropped and counted; so are the records of a batch
 * the exporter reports failed (after its own retries).
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

/** Shortest time between two reports of lost records. */
export const AUDIT_LOSS_REPORT_INTERVAL_MS = 60_000;

/** Sends one batch and says, once, whether it arrived. */
export type SendBatch<T> = (batch: T[], done: (ok: boolean) => void) => void;

/** What became of the records the batcher took, so far. */
export interface BatcherCounts {
  /** Records in batches the exporter confirmed. */
  readonly sent: number;
  /** Records dropped because the queue was full. */
  readonly dropped: number;
  /** Records in batches the exporter reported failed. */
  readonly failed: number;
}

/** The queue. */
export class AuditBatcher<T> {
  private queue: T[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight = 0;
  /** Called each time a batch's send settles (flushes wait on it). */
  private settled: Array<() => void> = [];
  private counts = { sent: 0, dropped: 0, failed: 0 };

  /**
   * @param send sends one batch.
   * @param onLoss called with the counts when records are lost (dropped or failed), at most once
   *   per {@link AUDIT_LOSS_REPORT_INTERVAL_MS}.
   */
  constructor(
    private readonly send: SendBatch<T>,
    private readonly onLoss?: (counts: BatcherCounts) => void,
  ) {}

  private lastLossReport = -Infinity;

  /** Tell {@link onLoss}, unless it heard within the interval. */
  private lost(): void {
    const now = Date.now();
    if (this.onLoss === undefined || now - this.lastLossReport < AUDIT_LOSS_REPORT_INTERVAL_MS) return;
    this.lastLossReport = now;
    this.onLoss(this.stats());
  }

  /** Take one record. */
  push(record: T): void {
    if (this.queue.length >= AUDIT_QUEUE_MAX_RECORDS) {
      this.counts.dropped++;
      this.lost();
      return;
    }
    this.queue.push(record);
    if (this.queue.length >= AUDIT_EXPORT_BATCH_RECORDS) this.schedule(0);
    else if (this.timer === undefined) this.schedule(AUDIT_EXPORT_DELAY_MS);
  }

  /** What became of the records so far. */
  stats(): BatcherCounts {
    return { ...this.counts };
  }

  /** Send everything waiting and resolve once every batch out has settled. */
  async flush(): Promise<void> {
    this.cancelTimer();
    for (;;) {
      while (this.queue.length > 0 && this.inFlight < AUDIT_EXPORTS_IN_FLIGHT) this.sendOne();
      if (this.inFlight === 0 && this.queue.length === 0) return;
      await new Promise<void>((resolve) => this.settled.push(resolve));
    }
  }

  /** Whether the armed timer is the next turn's (`schedule(0)`), not the delay's. */
  private timerIsNextTurn = false;

  /** Arm the timer to send within `ms`, keeping one armed for as soon or sooner. */
  private schedule(ms: number): void {
    if (this.timer !== undefined) {
      if (ms !== 0 || this.timerIsNextTurn) return;
      clearTimeout(this.timer);
    }
    this.timerIsNextTurn = ms === 0;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sendDue();
    }, ms);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The timer fired: send full batches, or what waits when the delay is up. */
  private sendDue(): void {
    do this.sendOne();
    while (this.queue.length >= AUDIT_EXPORT_BATCH_RECORDS && this.inFlight < AUDIT_EXPORTS_IN_FLIGHT);
    if (this.queue.length > 0 && this.inFlight < AUDIT_EXPORTS_IN_FLIGHT) this.schedule(AUDIT_EXPORT_DELAY_MS);
  }

  private sendOne(): void {
    if (this.queue.length === 0 || this.inFlight >= AUDIT_EXPORTS_IN_FLIGHT) return;
    const batch = this.queue.length <= AUDIT_EXPORT_BATCH_RECORDS ? this.queue : this.queue.slice(0, AUDIT_EXPORT_BATCH_RECORDS);
    this.queue = batch === this.queue ? [] : this.queue.slice(AUDIT_EXPORT_BATCH_RECORDS);
    this.inFlight++;
    let once = false;
    const done = (ok: boolean): void => {
      if (once) return;
      once = true;
      this.inFlight--;
      if (ok) this.counts.sent += batch.length;
      else {
        this.counts.failed += batch.length;
        this.lost();
      }
      // what waited while the sends were out goes now (full) or after the delay
      if (this.queue.length >= AUDIT_EXPORT_BATCH_RECORDS) this.schedule(0);
      else if (this.queue.length > 0 && this.timer === undefined) this.schedule(AUDIT_EXPORT_DELAY_MS);
      for (const resolve of this.settled.splice(0)) resolve();
    };
    try {
      this.send(batch, done);
    } catch {
      done(false);
    }
  }
}
