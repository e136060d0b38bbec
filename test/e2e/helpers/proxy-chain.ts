/**
 * An independent upstream HTTP proxy for chaining tests: `proxy-chain`'s `Server` on
 * 127.0.0.1, recording every request it is asked to handle and optionally requiring Basic
 * credentials (a 407 otherwise).
 */
import { Server } from "proxy-chain";
import { withDeadline } from "./util.ts";

/** One request the upstream proxy was asked to handle (before its credential check). */
export interface ChainSeen {
  /** `GET`, `CONNECT`, … */
  readonly method: string;
  /** The request target as received: absolute-form for plain requests, `host:port` for CONNECT. */
  readonly url: string;
  readonly hostname: string;
  readonly port: number;
  /** true for a plain (absolute-form) request, false for CONNECT. */
  readonly isHttp: boolean;
  /** From `Proxy-Authorization: Basic …` ("" when absent). */
  readonly username: string;
  readonly password: string;
  /** Whether the credentials were accepted (always true without `credentials`). */
  readonly accepted: boolean;
}

/** A running proxy-chain server. */
export interface ChainProxy {
  readonly port: number;
  /** `http://127.0.0.1:PORT`, with `userinfo@` when given (already percent-encoded). */
  url(userinfo?: string): string;
  /** Every request seen, in order. */
  readonly seen: ChainSeen[];
  close(): Promise<void>;
}

/** Start proxy-chain on 127.0.0.1:0; with `credentials`, anything else is answered 407. */
export async function startChainProxy(opts: { credentials?: { username: string; password: string } } = {}): Promise<ChainProxy> {
  const seen: ChainSeen[] = [];
  const server = new Server({
    port: 0,
    host: "127.0.0.1",
    verbose: false,
    prepareRequestFunction: ({ request, hostname, port, isHttp, username, password }) => {
      const c = opts.credentials;
      const accepted = c === undefined || (username === c.username && password === c.password);
      seen.push({ method: request.method ?? "", url: request.url ?? "", hostname, port, isHttp, username, password, accepted });
      return accepted ? {} : { requestAuthentication: true, failMsg: "bad proxy credentials" };
    },
  });
  // Failures of single requests are answered by proxy-chain itself; keep them off the test output.
  server.on("requestFailed", () => undefined);
  await withDeadline(server.listen(), 5_000, "proxy-chain listen");
  const port = server.port;
  return {
    port,
    url: (userinfo) => `http://${userinfo ? `${userinfo}@` : ""}127.0.0.1:${port}`,
    seen,
    close: () => withDeadline(server.close(true), 5_000, "proxy-chain close"),
  };
}
