/**
 * Terminating a client's TLS on an accepted connection (TLS interception, issue 13), shared by
 * every adapter: `node:tls` runs a server-side `TLSSocket` natively on Node and Bun and in Deno's
 * Node compatibility layer, over a stream that reads and writes the accepted {@link Conn}
 * through the socket contract. So one implementation serves connections of any adapter, and
 * whatever the connection had already read (a ClientHello sent right behind the CONNECT) is
 * read through it first.
 *
 * @module
 */
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import { type Conn, type ServerTlsOptions, TlsAcceptError, type TlsAcceptFailure } from "../../core/net/contract.ts";
import { onAbort } from "../../core/net/timeout.ts";
import { NodeConn } from "./node-conn.ts";

/** Longest a client may take to complete its TLS handshake with the proxy. */
export const TLS_ACCEPT_TIMEOUT_MS = 10_000;

/** What runtimes say when the client refused the proxy's certificate (OpenSSL, BoringSSL, rustls). */
const REJECTED = /unknown[ _.-]?ca|bad[ _.-]?certificate|certificate[ _.-]?unknown|unsupported[ _.-]?certificate|certificate[ _.-]?(?:expired|revoked)|access[ _.-]?denied/i;

/** What runtimes say when the client's bytes are not a TLS handshake. */
const NOT_TLS = /wrong[ _.-]?version|http[ _.-]?request|unknown[ _.-]?protocol|invalid[ _.-]?content[ _.-]?type|corrupt[ _.-]?message|record[ _.-]?(?:layer|overflow)|unexpected[ _.-]?message|not a tls handshake/i;

/** Classify a handshake failure from the runtime's error code and words. */
export function tlsAcceptFailure(e: { code?: string; message?: string }): TlsAcceptFailure {
  const text = `${e.code ?? ""} ${e.message ?? ""}`;
  if (REJECTED.test(text)) return "rejected";
  if (NOT_TLS.test(text)) return "not_tls";
  if (/ECONNRESET|EPIPE|socket hang up|connection (?:closed|reset)/i.test(text)) return "closed";
  return "other";
}

/**
 * A Node stream over `conn`: reads are `pending` (when given), then `conn.read()`; writes are
 * `conn.write()`; the end is `closeWrite()`; destroying it closes `conn`. `onEnd` is told when
 * `conn` reaches its end of stream.
 */
export function connStream(conn: Conn, pending?: Uint8Array, onEnd?: () => void): Duplex {
  let reading = false;
  let first = pending !== undefined && pending.length > 0 ? pending : undefined;
  return new Duplex({
    read() {
      if (first !== undefined) {
        const chunk = first;
        first = undefined;
        // Not synchronously: Deno's node:tls fails a handshake that goes wrong before its
        // deferred start ran by dereferencing a null handle, an uncaught TypeError that ends
        // the process (a CONNECT with bytes that are not TLS behind it).
        queueMicrotask(() => this.push(chunk));
        return;
      }
      if (reading) return;
      reading = true;
      conn.read().then(
        (chunk) => {
          reading = false;
          if (chunk === null) onEnd?.();
          this.push(chunk);
        },
        (e: Error) => this.destroy(e),
      );
    },
    write(chunk: Uint8Array, _encoding, done) {
      conn.write(chunk).then(() => done(), done);
    },
    final(done) {
      conn.closeWrite().then(() => done(), done);
    },
    destroy(error, done) {
      conn.close();
      done(error);
    },
  });
}

/**
 * Complete a server-side TLS handshake with the client on `conn`, presenting `options.cert`.
 * Resolves with the plaintext connection (its `remote` and `local` are `conn`'s); rejects with a
 * {@link TlsAcceptError} and closes `conn` when the client refuses the certificate, sends
 * something other than TLS, leaves, or takes longer than {@link TLS_ACCEPT_TIMEOUT_MS}.
 */
export function acceptTlsOver(conn: Conn, options: ServerTlsOptions): Promise<Conn> {
  // A client that leaves during the handshake (one that rejects the certificate may just close)
  // ends the stream without an error on the TLS socket: that ends the handshake here.
  let clientLeft: () => void = () => {};
  const socket = new tls.TLSSocket(connStream(conn, options.pending, () => clientLeft()), {
    isServer: true,
    secureContext: tls.createSecureContext({ cert: options.cert, key: options.key }),
    ALPNProtocols: options.alpn ? [...options.alpn] : undefined,
    allowHalfOpen: true, // the client's close_notify ends its half only: the answer still goes out
  } as tls.TLSSocketOptions);
  return new Promise<Conn>((resolve, reject) => {
    let settled = false;
    let unhook: (() => void) | undefined;
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      unhook?.();
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const fail = (e: TlsAcceptError): void => {
      if (settled) return;
      finish();
      socket.destroy();
      conn.close();
      reject(e);
    };
    // OpenSSL's words end in a newline and may span lines: one line for logs
    const onError = (e: Error & { code?: string }): void => fail(new TlsAcceptError(tlsAcceptFailure(e), e.message.replace(/\s+/g, " ").trim(), { cause: e }));
    const onClose = (): void => fail(new TlsAcceptError("closed", "the client closed the connection during the handshake"));
    clientLeft = onClose;
    const abandoned = (): void => fail(new TlsAcceptError("aborted", "the handshake was abandoned", { cause: options.signal?.reason }));
    const timer = setTimeout(() => fail(new TlsAcceptError("aborted", `no handshake within ${TLS_ACCEPT_TIMEOUT_MS} ms`)), TLS_ACCEPT_TIMEOUT_MS);
    if (options.signal?.aborted) return abandoned();
    // a hook, not a listener, per handshake in progress on the signal every handshake shares (shutdown)
    if (options.signal) unhook = onAbort(options.signal, abandoned);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.once("secure", () => {
      if (settled) return;
      finish();
      resolve(new NodeConn(socket, undefined, { remote: conn.remote, local: conn.local }));
    });
  });
}
