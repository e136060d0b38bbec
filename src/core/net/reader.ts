/**
 * A read buffer over a {@link Conn}: protocol sessions peek at what has arrived, consume what a
 * pure parser accepted, and stream the rest without copying.
 *
 * @module
 */
import type { Conn } from "./contract.ts";

/** A read that did not complete before its deadline. */
export class ReadTimeoutError extends Error {
  constructor(readonly ms: number) {
    super(`no data within ${ms} ms`);
    this.name = "ReadTimeoutError";
  }
}

/** The peer closed the connection or it failed while a session was waiting on something else. */
export class PeerLeftError extends Error {
  constructor(readonly detail: string) {
    super(`peer left: ${detail}`);
    this.name = "PeerLeftError";
  }
}

/**
 * Most unread bytes a {@link LeaveWatch} takes in ahead of the session (a pipelined request,
 * the start of a body): beyond it the watch stops reading, and TCP flow control holds the peer.
 */
export const WATCH_READ_AHEAD_BYTES = 64 * 1024;

const EMPTY = new Uint8Array(0);

/**
 * Buffered reading over a connection. Not safe for concurrent readers. Appending grows the
 * storage geometrically, so a peer trickling bytes costs linear copying, not quadratic.
 */
export class BufferedReader {
  /** Storage; the unread bytes are `store[start, end)`. */
  private store: Uint8Array = EMPTY;
  private start = 0;
  private end = 0;
  /** Whether `store` is our own allocation (else an adopted chunk, never written to). */
  private owned = false;
  private eof = false;
  /** Timed reads share one timer (see the constructor). */
  private readonly keepTimer: boolean;
  /** That timer's deadlines, made at the first timed read and dropped by {@link release}. */
  private deadlines: ReadDeadlines | undefined;

  /**
   * With `keepTimer`, timed reads share one timer that outlives each read (see
   * {@link ReadDeadlines}): for a connection that makes a timed read per request, such as a
   * kept-alive client or upstream. Its owner must call {@link release} when done with it.
   * Without it, each timed read arms and clears a timer of its own.
   */
  constructor(
    readonly conn: Conn,
    options?: { readonly keepTimer?: boolean },
  ) {
    this.keepTimer = options?.keepTimer === true;
  }

  /**
   * Clear the shared timer of a `keepTimer` reader and let go of it (nothing otherwise): an open
   * tunnel holds no timer state. A timed read later makes a new one.
   */
  release(): void {
    this.deadlines?.release();
    this.deadlines = undefined;
  }

  /** `conn.read()` within `deadline`, on the shared timer when there is one. */
  private readWithin(deadline: number | undefined): Promise<Uint8Array | null> {
    if (!this.keepTimer || deadline === undefined) return readWithin(this.conn, deadline);
    return (this.deadlines ??= new ReadDeadlines(this.conn)).read(deadline);
  }

  /** Bytes received and not yet consumed. */
  get buffered(): Uint8Array {
    return this.store.subarray(this.start, this.end);
  }

  /** How many bytes are buffered: `buffered.length` without making a view. */
  get bufferedLength(): number {
    return this.end - this.start;
  }

  /** True once the peer's FIN was read and the buffer is drained. */
  get ended(): boolean {
    return this.eof && this.start === this.end;
  }

  /**
   * Read one more chunk into the buffer. Returns false at end of stream. With `deadline`
   * (a `Date.now()` instant), rejects with {@link ReadTimeoutError} when it passes; nothing is
   * lost: a later read gets what arrives after.
   */
  async fill(deadline?: number): Promise<boolean> {
    if (this.eof) return false;
    const chunk = await this.readWithin(deadline);
    if (chunk === null) {
      this.eof = true;
      return false;
    }
    this.append(chunk);
    return true;
  }

  private append(chunk: Uint8Array): void {
    const live = this.end - this.start;
    if (live === 0) {
      // Adopt the chunk as it is: the common case costs no copy.
      this.store = chunk;
      this.owned = false;
      this.start = 0;
      this.end = chunk.length;
      return;
    }
    // Never write into an adopted chunk (memory we did not allocate); grow geometrically.
    if (!this.owned || this.end + chunk.length > this.store.length) {
      const grown = new Uint8Array(Math.max(2 * (live + chunk.length), 1024));
      grown.set(this.store.subarray(this.start, this.end), 0);
      this.store = grown;
      this.owned = true;
      this.start = 0;
      this.end = live;
    }
    this.store.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** Drop `n` bytes from the front of the buffer. */
  consume(n: number): void {
    this.start = Math.min(this.end, this.start + n);
    if (this.start === this.end) {
      this.store = EMPTY;
      this.start = this.end = 0;
    }
  }

  /**
   * Up to `max` bytes: buffered ones first, else the next chunk from the connection.
   * `null` at end of stream. With `deadline`, as {@link fill}.
   */
  async readUpTo(max: number, deadline?: number): Promise<Uint8Array | null> {
    if (this.start === this.end) {
      if (this.eof) return null;
      const chunk = await this.readWithin(deadline);
      if (chunk === null) {
        this.eof = true;
        return null;
      }
      if (chunk.length <= max) return chunk;
      this.append(chunk);
    }
    const n = Math.min(max, this.end - this.start);
    const out = this.store.subarray(this.start, this.start + n);
    this.consume(n);
    return out;
  }

  /**
   * Read ahead until `paused()` holds (its read withdrawn with {@link WATCH_PAUSED}), the peer
   * leaves, or {@link WATCH_READ_AHEAD_BYTES} are buffered. Resolves why the peer left (FIN, or
   * the connection failed), else `undefined`. What it reads stays buffered for the next reader.
   */
  async readAhead(paused: () => boolean): Promise<string | undefined> {
    while (!paused() && this.end - this.start < WATCH_READ_AHEAD_BYTES) {
      if (this.eof) return "the peer closed the connection";
      let chunk: Uint8Array | null;
      try {
        chunk = await this.conn.read();
      } catch (e) {
        if (e === WATCH_PAUSED) return undefined;
        return `the connection failed: ${(e as Error).message}`;
      }
      if (chunk === null) {
        this.eof = true;
        continue;
      }
      this.append(chunk);
    }
    return undefined;
  }

  /** Take everything buffered (for handing a connection over to a relay). */
  takeBuffered(): Uint8Array {
    const out = this.buffered;
    this.store = EMPTY;
    this.start = this.end = 0;
    return out;
  }
}

/**
 * `conn.read()` with an optional absolute deadline: past it the read is withdrawn (nothing is
 * lost, see `Conn.cancelRead`) and rejects with {@link ReadTimeoutError}.
 */
export async function readWithin(conn: Conn, deadline: number | undefined): Promise<Uint8Array | null> {
  if (deadline === undefined) return conn.read();
  const ms = Math.max(0, deadline - Date.now());
  const timer = setTimeout(() => conn.cancelRead(new ReadTimeoutError(ms)), ms);
  try {
    return await conn.read();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The deadlines of one connection's timed reads on a single timer. A kept-alive connection
 * makes a timed read per request (the next request head, the response head), always with a
 * deadline later than the one before, so instead of arming and clearing a timer per read (about
 * a microsecond of each request on Bun and Deno) the timer is left armed after a read and, when
 * it fires, either withdraws the read in progress (its deadline passed), re-arms itself for that
 * read's later deadline, or lapses (no timed read in progress). A read withdrawn here rejects
 * with {@link ReadTimeoutError} exactly as with {@link readWithin}; no deadline fires late.
 */
class ReadDeadlines {
  /**
   * The deadline of the timed read in progress, on the monotonic clock (`performance.now()`), so
   * a wall clock stepped back while it waits cannot extend it; none between reads.
   */
  private deadline: number | undefined;
  /** How long the read in progress was given, ms. */
  private givenMs = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires, on the monotonic clock. */
  private timerAt = 0;
  private readonly fire = (): void => this.onTimer();

  constructor(private readonly conn: Conn) {}

  /** `conn.read()` within `deadline` (a `Date.now()` instant). */
  async read(deadline: number): Promise<Uint8Array | null> {
    const now = performance.now();
    this.givenMs = Math.max(0, deadline - Date.now());
    const at = now + this.givenMs;
    this.deadline = at;
    // An armed timer that fires no later than this deadline serves it (re-arming when early).
    if (this.timer === undefined || this.timerAt > at) this.arm(at, now);
    try {
      return await this.conn.read();
    } finally {
      this.deadline = undefined;
    }
  }

  release(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(at: number, now: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(0, Math.ceil(at - now)));
  }

  private onTimer(): void {
    this.timer = undefined;
    const deadline = this.deadline;
    if (deadline === undefined) return; // no timed read in progress: lapse until the next one
    const now = performance.now();
    // Timers may fire a fraction of a millisecond early on some runtimes: that counts as due.
    if (deadline - now >= 1) this.arm(deadline, now);
    else this.conn.cancelRead(new ReadTimeoutError(this.givenMs));
  }
}

/** The reason a paused watch's read is withdrawn with: one instance, so pausing allocates nothing. */
export const WATCH_PAUSED: Error = new Error("watch paused");

/**
 * Watches a connection for its peer leaving while the session waits on something else (DNS,
 * a dial, an upstream's answer): it reads ahead into the {@link BufferedReader} and, once the
 * peer sent FIN or the connection failed, calls what was registered with {@link onLeave} and
 * fails what it {@link race}s with a {@link PeerLeftError}. A watch can be paused (before the
 * session reads itself) and started again. It runs on every request, so it allocates next to
 * nothing until the peer leaves; an `AbortSignal` (for dials) is made only when asked for.
 * Any party may close a connection at any time (RFC 9112 §9.5); a proxy that keeps the
 * upstream waiting for a client that gave up only holds descriptors (the same rule as Squid's
 * `half_closed_clients off`).
 */
export class LeaveWatch {
  private why: PeerLeftError | undefined;
  private listeners: (() => void)[] | undefined;
  private controller: AbortController | undefined;
  private paused = true;
  private running: Promise<void> | undefined;

  constructor(private readonly reader: BufferedReader) {}

  /** Why the peer left; `undefined` while it is there. */
  get reason(): PeerLeftError | undefined {
    return this.why;
  }

  /** Throws the {@link PeerLeftError} once the peer left. */
  throwIfLeft(): void {
    if (this.why) throw this.why;
  }

  /** Call `f` once the peer leaves (at once when it already did). Returns the unregistration. */
  onLeave(f: () => void): () => void {
    if (this.why) {
      f();
      return ignore;
    }
    const list = (this.listeners ??= []);
    list.push(f);
    return () => {
      const at = list.indexOf(f);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /** Aborted (reason: the {@link PeerLeftError}) once the peer left; made on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      const c = (this.controller = new AbortController());
      this.onLeave(() => c.abort(this.why));
    }
    return this.controller.signal;
  }

  /** `p`, unless the peer leaves first: then rejects with the {@link PeerLeftError}. */
  race<T>(p: Promise<T>): Promise<T> {
    if (this.why) {
      p.catch(ignore);
      return Promise.reject(this.why);
    }
    return new Promise<T>((resolve, reject) => {
      const off = this.onLeave(() => reject(this.why));
      p.then(
        (v) => {
          off();
          resolve(v);
        },
        (e: unknown) => {
          off();
          reject(e);
        },
      );
    });
  }

  /** Start reading ahead; nothing when already watching or the peer already left. */
  start(): void {
    if (this.running || this.why) return;
    this.paused = false;
    this.running = this.reader.readAhead(() => this.paused).then((why) => {
      if (why !== undefined) this.leave(new PeerLeftError(why));
    });
  }

  /** Stop reading ahead; resolves once no read is outstanding, so the session may read. */
  async pause(): Promise<void> {
    const r = this.running;
    if (!r) return;
    this.running = undefined;
    this.paused = true;
    this.reader.conn.cancelRead(WATCH_PAUSED);
    await r;
  }

  private leave(why: PeerLeftError): void {
    this.why = why;
    const list = this.listeners;
    this.listeners = undefined;
    if (list) for (const f of list) f();
  }
}

/**
 * Run `work` while a {@link LeaveWatch} watches `reader`'s peer, and pause the watch before
 * returning, so the caller may read again. When `work` fails because the peer left, resolves to
 * that {@link PeerLeftError} instead; `work`'s other errors propagate.
 */
export async function whileWatching<T>(reader: BufferedReader, work: (watch: LeaveWatch) => Promise<T>): Promise<T | PeerLeftError> {
  const watch = new LeaveWatch(reader);
  watch.start();
  try {
    return await work(watch);
  } catch (e) {
    if (e instanceof PeerLeftError) return e;
    throw e;
  } finally {
    await watch.pause();
  }
}

function ignore(): void {}
