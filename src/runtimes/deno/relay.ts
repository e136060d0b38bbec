/**
 * The Deno adapter's tunnel relay: bytes copied straight between the two `Deno.TcpConn`s, each
 * direction reading into a buffer of its own that is reused from read to read, instead of
 * through the `Conn` contract (a pending-read promise, a fresh buffer and a serialised write per
 * chunk). Buffers keep the adapter's size policy (`read-size.ts`: 1 KiB after a short read,
 * doubling while reads fill them), up to {@link RELAY_BUFFER_MAX_BYTES} instead of 64 KiB, so an
 * idle tunnel still holds small buffers only; a buffer is made at the direction's first direct
 * read, and does not grow while the other side's reader is behind (a chunk that needed more than
 * one write). Half-close is carried both ways, as in the core's relay.
 *
 * An idle tunnel is what a proxy holds most of, so its memory is what this file is shaped by
 * (docs/architecture.md, "Idle tunnels"): each direction is one small state machine whose every
 * step settles into the same callback, and the tunnel is one object with one promise, rather
 * than a promise chain with a closure per step (an idle Deno tunnel held 40 closures).
 *
 * @module
 */
import type { FirstEnd } from "../../core/net/relay.ts";
import { nextReadSize, RELAY_BUFFER_MAX_BYTES } from "./read-size.ts";

/** What the relay needs of the adapter's connection. */
export interface RelayEnd {
  /** The socket. */
  readonly conn: Deno.TcpConn;
  /** Bytes this end already read, or is reading, for its user: taken first, through `read()`. */
  hasBuffered(): boolean;
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  /** Resolves when every write queued through `write()` has gone out. */
  drained(): Promise<void>;
  closeWrite(): Promise<void>;
  /** Size of this end's next read buffer. */
  readonly readSize: number;
  /** Byte counts the relay adds to (the metrics). */
  received: number;
  sent: number;
}

/**
 * What a direction waits for, and so what the value its one callback gets means: through the
 * contract first (`TAKE` a chunk the end already holds, `GIVE` it to the other end, `DRAIN`
 * the other end's queued writes), then straight on the sockets (`READ` a count or end of
 * stream, `WRITE` a count), and last `FIN`, the other end's half-close.
 */
const TAKE = 0;
const GIVE = 1;
const DRAIN = 2;
const READ = 3;
const WRITE = 4;
const FIN = 5;
type Phase = typeof TAKE | typeof GIVE | typeof DRAIN | typeof READ | typeof WRITE | typeof FIN;

/** One direction of a tunnel: copies `from` → `to` until end of stream, then half-closes `to`. */
class Direction {
  private phase: Phase = TAKE;
  /** Made at the first direct read: while `from` still waits on a read of its own (the leave watch's, withdrawn), an idle tunnel holds only that one. */
  private buf: Uint8Array | undefined;
  /** Bytes of the chunk being written, and how many of them went out. */
  private n = 0;
  private at = 0;
  /** The chunk needed more than one write: the reader is behind, so the buffer does not grow. */
  private heldBack = false;
  /** The callback every step settles into (the phase says what its value is). */
  private readonly step = (value: unknown): void => this.next(value);

  constructor(
    private readonly from: RelayEnd,
    private readonly to: RelayEnd,
    private readonly tunnel: DenoTunnel,
    private readonly side: FirstEnd,
  ) {}

  /** First what `from` already holds for its user, through the contract; then the sockets. */
  take(): void {
    if (this.from.hasBuffered()) this.wait(TAKE, this.from.read());
    else this.wait(DRAIN, this.to.drained());
  }

  private wait(phase: Phase, settles: Promise<unknown>): void {
    this.phase = phase;
    settles.then(this.step, this.tunnel.fail);
  }

  private next(value: unknown): void {
    switch (this.phase) {
      case TAKE:
        if (value === null) return this.wait(FIN, this.to.closeWrite());
        return this.wait(GIVE, this.to.write(value as Uint8Array));
      case GIVE:
        return this.take();
      case DRAIN:
        return this.read();
      case READ:
        return this.readDone(value as number | null);
      case WRITE:
        return this.wrote(value as number);
      case FIN:
        return this.tunnel.ended(this.side);
    }
  }

  private read(): void {
    this.wait(READ, this.from.conn.read((this.buf ??= new Uint8Array(this.from.readSize))));
  }

  private readDone(got: number | null): void {
    if (got === null) return this.wait(FIN, this.to.closeWrite());
    this.from.received += got;
    this.n = got;
    this.at = 0;
    this.heldBack = false;
    this.write();
  }

  private write(): void {
    this.wait(WRITE, this.to.conn.write(this.buf!.subarray(this.at, this.n)));
  }

  private wrote(w: number): void {
    this.at += w;
    this.to.sent += w;
    if (this.at < this.n) {
      this.heldBack = true;
      return this.write(); // a partial write: the rest first
    }
    // A slow reader on the other side fills every read too; growing then would only make a
    // stalled tunnel hold more, so a held-back chunk keeps the size.
    const buf = this.buf!;
    const next = nextReadSize(buf.length, this.n, RELAY_BUFFER_MAX_BYTES);
    const size = this.heldBack ? Math.min(buf.length, next) : next;
    if (size !== buf.length) this.buf = new Uint8Array(size); // else the written buffer is free again
    this.read();
  }
}

/** Both directions of one tunnel, and the one promise that says how it ended. */
class DenoTunnel {
  /** The side whose direction ended first, once one has. */
  private first: FirstEnd | undefined;
  private resolve!: (first: FirstEnd) => void;
  /** The promise's own reject: the first failure of either direction ends the tunnel. */
  fail!: (e: unknown) => void;
  readonly done: Promise<FirstEnd>;

  constructor(a: RelayEnd, b: RelayEnd) {
    this.done = new Promise<FirstEnd>((resolve, reject) => {
      this.resolve = resolve;
      this.fail = reject;
    });
    new Direction(a, b, this, "a").take();
    new Direction(b, a, this, "b").take();
  }

  ended(side: FirstEnd): void {
    if (this.first === undefined) this.first = side;
    else this.resolve(this.first);
  }
}

/**
 * Relay `a` ⇄ `b` until both directions have ended; resolves with the side whose direction
 * ended first (`a`: `a`'s bytes, sent `a` → `b`). Rejects with the first failed read or write
 * (the other direction is then left to the closing of both connections, as in the core's
 * `bothDirections`).
 */
export function relayDeno(a: RelayEnd, b: RelayEnd): Promise<FirstEnd> {
  return new DenoTunnel(a, b).done;
}
