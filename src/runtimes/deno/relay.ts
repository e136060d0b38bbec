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
 * @module
 */
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

/** Copy `from` → `to` until end of stream, then half-close `to`. Rejects on a failed read or write. */
export function pumpDeno(from: RelayEnd, to: RelayEnd): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // made at the first direct read: while `from` still waits on a read of its own (the leave
    // watch's, withdrawn), an idle tunnel holds only that one
    let buf: Uint8Array | undefined;
    let n = 0;
    let at = 0;
    /** The chunk needed more than one write: the reader is behind, so the buffer does not grow. */
    let heldBack = false;
    const end = (): void => void to.closeWrite().then(resolve, reject);
    // first what `from` already holds for its user, through the contract
    const buffered = (): void => {
      if (!from.hasBuffered()) return void to.drained().then(read, reject);
      from.read().then((chunk) => (chunk === null ? end() : void to.write(chunk).then(buffered, reject)), reject);
    };
    const read = (): void => void from.conn.read((buf ??= new Uint8Array(from.readSize))).then(readDone, reject);
    const readDone = (got: number | null): void => {
      if (got === null) return end();
      from.received += got;
      n = got;
      at = 0;
      heldBack = false;
      write();
    };
    const write = (): void => void to.conn.write(buf!.subarray(at, n)).then(wrote, reject);
    const wrote = (w: number): void => {
      at += w;
      to.sent += w;
      if (at < n) {
        heldBack = true;
        return write(); // a partial write: the rest first
      }
      // A slow reader on the other side fills every read too; growing then would only make a
      // stalled tunnel hold more, so a held-back chunk keeps the size.
      const next = nextReadSize(buf!.length, n, RELAY_BUFFER_MAX_BYTES);
      const size = heldBack ? Math.min(buf!.length, next) : next;
      if (size !== buf!.length) buf = new Uint8Array(size); // else the written buffer is free again
      read();
    };
    buffered();
  });
}
