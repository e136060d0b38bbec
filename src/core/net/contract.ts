/**
 * The socket contract: the only way `src/core` touches the network. Each runtime adapter
 * (`src/runtimes/<runtime>/net.ts`) implements {@link Net}; the core receives it as an argument.
 *
 * @module
 */

/** Highest TCP/UDP port number. */
export const MAX_PORT = 65535;

/** A transport address. `host` is an IP literal (IPv6 without brackets) or a unix path. */
export interface NetAddr {
  readonly host: string;
  readonly port: number;
}

/** A connected, full-duplex byte stream with explicit half-close. */
export interface Conn {
  /** The peer's address (the client for accepted connections). */
  readonly remote: NetAddr;
  /** Our end's address (for dialled connections: the local address of the upstream socket). */
  readonly local: NetAddr;
  /**
   * Next chunk of bytes. Resolves `null` once the peer has sent FIN; our write side stays
   * open. Rejects when the connection fails or was closed locally, or when the read is
   * cancelled by {@link cancelRead}. The chunk is ours to keep.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Withdraw the pending read, if any: it rejects with `reason` and takes nothing, so bytes
   * that arrive later go to the next read. A no-op when no read is pending (a read that
   * already got its chunk keeps it). This is how a session stops waiting (a deadline, a watch
   * for the peer leaving) without closing the connection; it allocates nothing, since it runs
   * on every request.
   */
  cancelRead(reason: Error): void;
  /** Queue bytes. Resolves when the transport accepted them: the backpressure point. */
  write(bytes: Uint8Array): Promise<void>;
  /** Flush what is queued, then send FIN (half-close). Reading stays possible. */
  closeWrite(): Promise<void>;
  /**
   * Close both directions. Idempotent; pending reads resolve or reject promptly. Bytes already
   * written are still delivered where the runtime can (a peer that does not read them is cut
   * off after a short linger).
   */
  close(): void;
  /**
   * Close at once, dropping whatever was not sent yet (a reset where the runtime allows):
   * pending reads and writes settle immediately. For a connection that is abandoned, such as
   * an upstream whose request will never be complete. Idempotent.
   */
  abort(): void;
  /** Bytes read from the peer so far (absent where the adapter does not count). */
  bytesRead?(): number;
  /** Bytes written to the peer so far (accepted by the transport). */
  bytesWritten?(): number;
}

/** A bound TCP listener. */
export interface Listener {
  /** The real bound address (the port is resolved when 0 was asked for). */
  readonly addr: NetAddr;
  /** Stop accepting; connections already accepted are untouched. */
  close(): Promise<void>;
}

/** A bound UDP socket. Datagrams arrive through the handler given to {@link Net.bindUdp}. */
export interface DatagramSocket {
  /** The real bound address. */
  readonly addr: NetAddr;
  /** Send one datagram to an IP literal and port (never a name). */
  send(bytes: Uint8Array, to: NetAddr): Promise<void>;
  /** Unbind. Idempotent. */
  close(): void;
}

/** Receives each datagram with its source; the bytes are the handler's to keep. */
export type DatagramHandler = (bytes: Uint8Array, from: NetAddr) => void;

/** A web-standard request handler (what a Hono app's `fetch` is). */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Why a dial failed, in the terms SOCKS5 replies and HTTP errors need. */
export type DialFailure = "refused" | "host_unreachable" | "network_unreachable" | "timeout" | "tls" | "other";

/** How to originate TLS: the name to send (SNI) and verify, and extra trusted roots (PEM). */
export interface TlsOptions {
  readonly serverName: string;
  /** PEM certificates trusted in addition to the system roots. */
  readonly extraCa?: string;
}

/** What the proxy presents when it terminates a client's TLS (interception, issue 13). */
export interface ServerTlsOptions {
  /** The leaf certificate, PEM. */
  readonly cert: string;
  /** Its private key, PKCS#8 PEM. */
  readonly key: string;
  /** ALPN protocols offered, in preference order (e.g. `["http/1.1"]`). */
  readonly alpn?: readonly string[];
  /** Bytes already read from the connection that belong to the handshake: taken first. */
  readonly pending?: Uint8Array;
  /** Aborting abandons the handshake (the connection is closed). */
  readonly signal?: AbortSignal;
}

/** Why a client's TLS handshake with the proxy failed. */
export type TlsAcceptFailure =
  /** The client refused the proxy's certificate (it does not trust the CA, or pins another). */
  | "rejected"
  /** What the client sent is not a TLS handshake. */
  | "not_tls"
  /** The client left before the handshake finished. */
  | "closed"
  /** The handshake was abandoned (timeout or shutdown). */
  | "aborted"
  | "other";

/** A client's TLS handshake with the proxy that failed; `kind` classifies it, `message` keeps the runtime's words. */
export class TlsAcceptError extends Error {
  constructor(
    readonly kind: TlsAcceptFailure,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`TLS handshake with the client failed (${kind}): ${detail}`, options);
    this.name = "TlsAcceptError";
  }
}

/** A dial that failed; `kind` classifies it, `message` keeps the runtime's words. */
export class DialError extends Error {
  constructor(
    readonly kind: DialFailure,
    readonly target: NetAddr,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`connect to ${formatAddr(target)} failed (${kind}): ${detail}`, options);
    this.name = "DialError";
  }
}

/**
 * Trouble accepting connections on a listener: `failing` when the first accept of a burst
 * fails (descriptors or memory exhausted: EMFILE, ENFILE, ENOMEM), `recovered` with how many
 * failed once an accept succeeds again.
 */
export type AcceptErrorEvent =
  | { readonly kind: "failing"; readonly error: Error }
  | { readonly kind: "recovered"; readonly failures: number; readonly durationMs: number }
  /** The listener works, but without the extra accept capacity {@link ListenOptions.burst} asked for. */
  | { readonly kind: "limited"; readonly error: Error };

/** Options for {@link Net.listenTcp} and {@link Net.serveHttp}. */
export interface ListenOptions {
  /**
   * Told about accept failures, once per burst (never once per connection). A failed accept
   * never stops the listener: the adapter retries with backoff where the runtime lets it.
   */
  readonly onAcceptError?: (event: AcceptErrorEvent) => void;
  /**
   * Expect bursts of thousands of simultaneous connects (the proxy's own listeners): an adapter
   * whose runtime accepts slowly under load adds what accept capacity it can (Node: more
   * descriptors of the listening socket, see `runtimes/node/accept-handles.ts`).
   */
  readonly burst?: boolean;
}

/** Options for {@link Net.connectTcp}. */
export interface DialOptions {
  /** Aborting cancels the dial (and fails it with kind `timeout` when the reason is a timeout). */
  readonly signal?: AbortSignal;
}

/** The capabilities a runtime gives the core. */
export interface Net {
  /** Bind a TCP listener and call `onConn` for every accepted connection. */
  listenTcp(addr: NetAddr, onConn: (conn: Conn) => void, options?: ListenOptions): Promise<Listener>;
  /** Dial an IP literal. Names are never passed here: the core resolves and vets them first. */
  connectTcp(addr: NetAddr, options?: DialOptions): Promise<Conn>;
  /**
   * Serve HTTP requests with a web-standard fetch handler (the admin API) using the runtime's
   * own HTTP server. Absent where unsupported. Closing the listener also closes its connections.
   */
  serveHttp?(addr: NetAddr, fetch: FetchHandler, options?: ListenOptions): Promise<Listener>;
  /** Bind a UDP socket on an IP literal (port 0: any free port). Absent where unsupported. */
  bindUdp?(addr: NetAddr, onMessage: DatagramHandler): Promise<DatagramSocket>;
  /**
   * Dial an IP literal and originate TLS, verifying the certificate for `tls.serverName`
   * against the system roots plus `tls.extraCa`. A verification failure is a `DialError` of
   * kind `tls`. Absent where unsupported.
   */
  connectTls?(addr: NetAddr, tls: TlsOptions, options?: DialOptions): Promise<Conn>;
  /**
   * Terminate the client's TLS on an accepted connection: present `tls.cert`, complete the
   * handshake, and resolve with a connection carrying the plaintext (its `remote`/`local` are
   * `conn`'s). Rejects with {@link TlsAcceptError}; `conn` is closed then. Absent where the
   * runtime cannot.
   */
  acceptTls?(conn: Conn, tls: ServerTlsOptions): Promise<Conn>;
  /** Connect to a unix-domain socket. Absent where the runtime cannot. */
  connectUnix?(path: string): Promise<Conn>;
  /** The file a path names after resolving symlinks; rejects when it does not exist. */
  realPath?(path: string): Promise<string>;
  /** Resolve a host name to IP literals, as the system resolver would. */
  resolve(host: string): Promise<string[]>;
  /**
   * Optional fast path: relay bytes both ways between two connections of this adapter,
   * carrying half-close, until both directions ended. Returns `undefined` when it cannot
   * handle these connections, and the core then relays by itself.
   */
  relay?(a: Conn, b: Conn): Promise<"a" | "b" | undefined> | undefined;
}

/** `host:port`, with brackets around IPv6 literals. */
export function formatAddr(addr: NetAddr): string {
  return addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
