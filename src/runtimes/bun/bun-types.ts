/**
 * The slice of Bun's API this adapter uses, declared here so the adapter type-checks without
 * Bun's full type package. Shapes follow Bun's reference docs (Bun 1.4).
 *
 * @module
 */

/** A TCP socket (`Bun.Socket`). `data` is our per-socket slot. */
export interface BunSocket<Data = unknown> {
  data: Data | undefined;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  /** Bytes taken (may be fewer than given), or -1 when closed. */
  write(data: Uint8Array | string): number;
  /** Send FIN; reading continues. */
  shutdown(halfClose?: boolean): void;
  /** Flush, then close both directions. */
  end(): void;
  /** Close at once (reset). */
  terminate(): void;
  pause?(): void;
  resume?(): void;
}

/** Socket event handlers. */
export interface BunSocketHandler<Data> {
  open?(socket: BunSocket<Data>): void;
  data?(socket: BunSocket<Data>, data: Uint8Array): void;
  drain?(socket: BunSocket<Data>): void;
  end?(socket: BunSocket<Data>): void;
  close?(socket: BunSocket<Data>, error?: Error): void;
  error?(socket: BunSocket<Data>, error: Error): void;
  connectError?(socket: BunSocket<Data>, error: Error & { code?: string }): void;
}

/** The `Bun` global, as far as this adapter uses it. */
export interface BunGlobal {
  listen<Data>(options: {
    hostname: string;
    port: number;
    allowHalfOpen?: boolean;
    exclusive?: boolean;
    /** Listen backlog (Bun 1.4.5 ignores it and listens with 512). */
    backlog?: number;
    socket: BunSocketHandler<Data>;
  }): { hostname: string; port: number; stop(closeActive?: boolean): void };
  connect<Data>(
    options: ({ hostname: string; port: number } | { unix: string }) & { allowHalfOpen?: boolean; socket: BunSocketHandler<Data> },
  ): Promise<BunSocket<Data>>;
  udpSocket(options: {
    hostname: string;
    port: number;
    socket: { data(socket: unknown, buf: Uint8Array, port: number, address: string): void };
  }): Promise<{ address: { address: string; port: number }; send(data: Uint8Array, port: number, address: string): boolean; close(): void }>;
  serve(options: {
    hostname: string;
    port: number;
    /** Listen backlog (Bun 1.4.5 ignores it and listens with 512). */
    backlog?: number;
    fetch: (request: Request) => Response | Promise<Response>;
  }): {
    hostname: string;
    port: number;
    stop(closeActiveConnections?: boolean): void;
  };
}
