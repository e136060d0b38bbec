/**
 * The adapter contract suite: one list of cases that every implementation of the socket
 * contract (`src/core/net/contract.ts`) must pass — the Node, Bun and Deno adapters, each in its
 * own runtime (see `run-*.ts`), and the in-memory net of `test/helpers/memory-net.ts` (the
 * cases that need only a connected pair).
 *
 * Runtime-neutral on purpose: no vitest, no runtime globals, only the contract, promises and
 * timers, so Node, Bun and Deno load this very file. Every await has a deadline, every listener
 * binds port 0 on loopback, and everything a case opens is closed by its {@link Scope}, pass or
 * fail. Assertions are on bytes, order and settlement, never on how long something took; the
 * only waits are quiescence windows (a write "stalls" when it stays pending for a while), whose
 * length never decides a pass by itself.
 *
 * @module
 */
import { DialError, TlsAcceptError, type Conn, type DatagramSocket, type Listener, type Net, type NetAddr } from "../../src/core/net/contract.ts";
import { type Leaf, LocalCa } from "../../src/core/mitm/ca.ts";

/** What an implementation under test offers. */
export type Capability =
  /** Connected pairs of {@link Conn}: every implementation. */
  | "pair"
  /** Real transport with flow control: a writer is held back by a reader that stops reading. */
  | "flow-control"
  /** `listenTcp` and `connectTcp` on loopback. */
  | "listen"
  /** `bindUdp` (a case still skips, with its reason, where the method is absent). */
  | "udp";

/** Two connected ends; `listener` is the one they were made with, when there is one. */
export interface Pair {
  readonly client: Conn;
  readonly server: Conn;
  readonly listener?: Listener;
}

/** An implementation under test. */
export interface Target {
  readonly label: string;
  readonly capabilities: ReadonlySet<Capability>;
  /** The net, for the cases that listen, dial or bind (those that need "listen" or "udp"). */
  readonly net?: Net;
  /** A fresh connected pair; both ends (and any listener) are closed by `t` at the end. */
  pair(t: Scope): Promise<Pair>;
}

/** One contract case. */
export interface ContractCase {
  readonly name: string;
  readonly needs: readonly Capability[];
  /** Deadline for the whole case (default {@link CASE_DEADLINE_MS}). */
  readonly deadlineMs?: number;
  run(target: Target, t: Scope): Promise<void>;
}

/** A case's outcome, as the runners print it (one JSON line each). */
export interface CaseResult {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
  /** Set when the case did not apply (then `ok` is true): why. */
  readonly skipped?: string;
  readonly ms: number;
}

/** Deadline of one await inside a case. */
export const STEP_MS = 5_000;
/** Deadline of a whole case. */
export const CASE_DEADLINE_MS = 10_000;
/** A write still pending after this long, with the reader stopped, counts as held back. */
export const STALL_WINDOW_MS = 400;

const LOOPBACK = "127.0.0.1";
const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------------
// Assertions and plumbing
// ---------------------------------------------------------------------------------------------

/** Thrown by a case that does not apply to this target; the runner reports it as skipped. */
export class Skip extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "Skip";
  }
}

/** A failed contract expectation. */
export class ContractFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContractFailure";
  }
}

function show(v: unknown): string {
  if (v instanceof Uint8Array) return `<${v.length} bytes: ${JSON.stringify(dec(v.subarray(0, 64)))}${v.length > 64 ? "…" : ""}>`;
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** The suite's own assert: `cond` must hold. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new ContractFailure(message);
}

/** Deep equality through JSON (enough for strings, numbers, null and plain addresses). */
export function assertEqual(actual: unknown, expected: unknown, what: string): void {
  if (show(actual) !== show(expected)) throw new ContractFailure(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** A promise's outcome as a value (never rejects). */
export function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** `p`'s outcome if it settles within `ms`, else `"pending"` (`p` keeps running). */
export async function settledWithin<T>(p: Promise<T>, ms: number): Promise<Settled<T> | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const window = new Promise<"pending">((r) => (timer = setTimeout(() => r("pending"), ms)));
  try {
    return await Promise.race([settle(p), window]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise and its resolver. */
function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** What a case opened (closed at its end, pass or fail) and its deadlines. */
export class Scope {
  private readonly cleanups: (() => unknown)[] = [];

  /** Run `fn` when the case ends (last registered, first run). */
  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** `p`, or a rejection naming `what` when it does not settle within `ms`. */
  within<T>(p: Promise<T>, what: string, ms: number = STEP_MS): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ContractFailure(`no answer within ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  /** Close everything; cleanup errors are ignored, and none may take more than 2 s. */
  async close(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await this.within(Promise.resolve().then(fn), "cleanup", 2_000);
      } catch {
        // best effort: the case's own outcome is what counts
      }
    }
  }
}

/** `p` must reject (within the step deadline); returns the error. */
async function rejection(t: Scope, p: Promise<unknown>, what: string): Promise<unknown> {
  const s = await t.within(settle(p), what);
  if (s.ok) throw new ContractFailure(`${what}: expected a rejection, resolved with ${show(s.value)}`);
  return s.error;
}

/** Read until at least `n` bytes came (the cases' lockstep protocols never send more). */
async function readExactly(t: Scope, conn: Conn, n: number, what: string): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const chunk = await t.within(conn.read(), `${what}: read (${at} of ${n} bytes so far)`);
    if (chunk === null) throw new ContractFailure(`${what}: end of stream after ${at} of ${n} bytes`);
    if (at + chunk.length > n) throw new ContractFailure(`${what}: ${at + chunk.length} bytes arrived, only ${n} were sent`);
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Read until `null` (end of stream) and return everything. */
async function readToEnd(t: Scope, conn: Conn, what: string, limit = 64 * MiB): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const chunk = await t.within(conn.read(), `${what}: read after ${total} bytes (waiting for data or end of stream)`);
    if (chunk === null) break;
    chunks.push(chunk);
    total += chunk.length;
    if (total > limit) throw new ContractFailure(`${what}: more than ${limit} bytes`);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Byte `i` of the test pattern (251 is prime: no alignment with any buffer size). */
const patternByte = (i: number): number => (i * 31 + 7) % 251;

/** `length` pattern bytes starting at stream offset `offset`. */
export function pattern(offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let k = 0; k < length; k++) out[k] = patternByte(offset + k);
  return out;
}

/**
 * Read to end of stream checking every byte against the pattern at its stream offset; returns
 * the byte count. `onChunk` sees the running total after each chunk.
 */
async function readPattern(t: Scope, conn: Conn, what: string, onChunk?: (total: number) => void): Promise<number> {
  let at = 0;
  for (;;) {
    const chunk = await t.within(conn.read(), `${what}: read after ${at} bytes`);
    if (chunk === null) return at;
    for (let k = 0; k < chunk.length; k++) {
      if (chunk[k] !== patternByte(at + k)) {
        throw new ContractFailure(`${what}: byte ${at + k} is ${chunk[k]}, expected ${patternByte(at + k)} (lost, duplicated or reordered bytes)`);
      }
    }
    at += chunk.length;
    onChunk?.(at);
  }
}

/**
 * A closed loopback port: bound on port 0, then released. With `settle`, it also waits a little
 * after `close()` resolved, so that a case about dialling a closed port does not depend on
 * whether `Listener.close()` resolves only once the socket is really closed (the case
 * "listener close: once close() resolved ..." checks exactly that).
 */
async function closedPort(t: Scope, net: Net, settleMs = 0): Promise<NetAddr> {
  const l = await t.within(
    net.listenTcp({ host: LOOPBACK, port: 0 }, (c) => c.abort()),
    "listenTcp on port 0",
  );
  const addr = { host: LOOPBACK, port: l.addr.port };
  await t.within(l.close(), "listener close");
  if (settleMs > 0) await sleep(settleMs);
  return addr;
}

/** Listen on `host` port 0, dial it, and pair the dialled end with the accepted one. */
export async function netPair(t: Scope, net: Net, host = LOOPBACK): Promise<Required<Pair>> {
  const first = deferred<Conn>();
  let accepted = 0;
  const listener = await t.within(
    net.listenTcp({ host, port: 0 }, (conn) => {
      t.defer(() => conn.abort());
      if (accepted++ === 0) first.resolve(conn);
      else conn.abort(); // not ours
    }),
    `listenTcp ${host} port 0`,
  );
  t.defer(() => listener.close());
  assert(listener.addr.port > 0, `listener.addr.port is resolved (got ${listener.addr.port})`);
  const client = await t.within(net.connectTcp({ host, port: listener.addr.port }), `connectTcp ${host}:${listener.addr.port}`);
  t.defer(() => client.abort());
  const server = await t.within(first.promise, "accept");
  return { client, server, listener };
}

/** The {@link Target} for a runtime adapter: everything, over loopback sockets. */
export function netTarget(label: string, net: Net): Target {
  return {
    label,
    net,
    capabilities: new Set<Capability>(["pair", "flow-control", "listen", "udp"]),
    pair: (t) => netPair(t, net),
  };
}

/** Run one case against a target with its deadline; never throws. */
export async function runCase(c: ContractCase, target: Target): Promise<CaseResult> {
  const started = Date.now();
  const missing = c.needs.filter((n) => !target.capabilities.has(n));
  if (missing.length > 0) return { name: c.name, ok: true, skipped: `${target.label} lacks ${missing.join(", ")}`, ms: 0 };
  const t = new Scope();
  try {
    await t.within(c.run(target, t), `case "${c.name}"`, c.deadlineMs ?? CASE_DEADLINE_MS);
    return { name: c.name, ok: true, ms: Date.now() - started };
  } catch (e) {
    if (e instanceof Skip) return { name: c.name, ok: true, skipped: e.message, ms: Date.now() - started };
    const error = e instanceof ContractFailure ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return { name: c.name, ok: false, error, ms: Date.now() - started };
  } finally {
    await t.close();
  }
}

function requireNet(target: Target): Net {
  if (!target.net) throw new Skip(`${target.label} has no Net`);
  return target.net;
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

/** Writes 64 KiB chunks of the pattern, with no reader, until one stays pending. */
async function writeUntilHeldBack(
  t: Scope,
  writer: Conn,
  cap: number,
): Promise<{ accepted: number; held: Promise<void> }> {
  const CHUNK = 64 * KiB;
  let accepted = 0;
  while (accepted < cap) {
    const w = writer.write(pattern(accepted, CHUNK));
    const s = await settledWithin(w, STALL_WINDOW_MS);
    if (s === "pending") return { accepted, held: w };
    if (!s.ok) throw new ContractFailure(`write at ${accepted} rejected: ${show(s.error)}`);
    accepted += CHUNK;
  }
  throw new ContractFailure(
    `write() kept resolving with nobody reading: ${accepted} bytes accepted and no write held back (no backpressure, unbounded buffering)`,
  );
}

/** A CA and a leaf for "localhost", made once per runner (the TLS cases share them). */
let tlsMaterialOnce: Promise<{ ca: LocalCa; leaf: Leaf }> | undefined;
function tlsMaterial(): Promise<{ ca: LocalCa; leaf: Leaf }> {
  tlsMaterialOnce ??= LocalCa.generate().then(async (ca) => ({ ca, leaf: await ca.leafFor("localhost") }));
  return tlsMaterialOnce;
}

/** Skips unless the net can terminate and originate TLS. */
function requireTls(target: Target): Net {
  const net = requireNet(target);
  if (!net.acceptTls || !net.connectTls) throw new Skip("this net has no acceptTls or connectTls");
  return net;
}

/**
 * A listener, a TLS dial to it for `localhost` (trusting the test CA when `trusted`), and the
 * accepted raw connection, before any handshake.
 */
async function tlsSetup(target: Target, t: Scope, trusted: boolean): Promise<{ net: Net; raw: Conn; clientDial: Promise<Conn>; leaf: Leaf }> {
  const net = requireTls(target);
  const { ca, leaf } = await t.within(tlsMaterial(), "making a test CA", 15_000);
  const accepted = deferred<Conn>();
  const listener = await t.within(
    net.listenTcp({ host: LOOPBACK, port: 0 }, (c) => {
      t.defer(() => c.abort());
      accepted.resolve(c);
    }),
    "listenTcp",
  );
  t.defer(() => listener.close());
  const clientDial = net.connectTls!({ host: LOOPBACK, port: listener.addr.port }, { serverName: "localhost", extraCa: trusted ? ca.certPem : undefined });
  clientDial.then((c) => t.defer(() => c.abort()), () => {});
  const raw = await t.within(accepted.promise, "accept");
  return { net, raw, clientDial, leaf };
}

/** A listener, a plain TCP client, and the accepted raw connection. */
async function tlsSetupPlain(target: Target, t: Scope): Promise<{ net: Net; raw: Conn; client: Conn; leaf: Leaf }> {
  const net = requireTls(target);
  const { leaf } = await t.within(tlsMaterial(), "making a test CA", 15_000);
  const { client, server } = await netPair(t, net);
  return { net, raw: server, client, leaf };
}

export const cases: readonly ContractCase[] = [
  {
    name: "half-close: the client's FIN reaches the server as null while server-to-client keeps flowing",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      await t.within(client.write(enc("request")), "client write");
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(dec(await readToEnd(t, server, "server reading up to the client's FIN")), "request", "server got");
      for (let i = 0; i < 3; i++) {
        await t.within(server.write(enc(`reply-${i}`)), `server write ${i} after the client's FIN`);
        assertEqual(dec(await readExactly(t, client, 7, `client reading reply ${i}`)), `reply-${i}`, `client got reply ${i}`);
      }
      await t.within(server.closeWrite(), "server closeWrite");
      assertEqual(await t.within(client.read(), "client read after the server's FIN"), null, "client read after the server's FIN");
    },
  },
  {
    name: "half-close: the server's FIN reaches the client as null while client-to-server keeps flowing",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      await t.within(server.write(enc("greeting")), "server write");
      await t.within(server.closeWrite(), "server closeWrite");
      assertEqual(dec(await readToEnd(t, client, "client reading up to the server's FIN")), "greeting", "client got");
      for (let i = 0; i < 3; i++) {
        await t.within(client.write(enc(`upload-${i}`)), `client write ${i} after the server's FIN`);
        assertEqual(dec(await readExactly(t, server, 8, `server reading upload ${i}`)), `upload-${i}`, `server got upload ${i}`);
      }
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(await t.within(server.read(), "server read after the client's FIN"), null, "server read after the client's FIN");
    },
  },
  {
    name: "backpressure: writes are held back while the reader stops, and resume when it reads",
    needs: ["pair", "flow-control"],
    deadlineMs: 20_000,
    async run(target, t) {
      // Generous: loopback socket buffers at both ends (a few MiB each at most on Linux) plus
      // the adapters' own read queue (256 KiB) and write buffer.
      const BOUND = 48 * MiB;
      const MORE = 4 * MiB;
      const { client: writer, server: reader } = await target.pair(t);
      const { accepted, held } = await writeUntilHeldBack(t, writer, BOUND);
      // The reader starts reading: the held write goes through and writing resumes.
      let received = 0;
      const reading = readPattern(t, reader, "reader", (n) => (received = n));
      void reading.catch(() => {}); // awaited below; don't let an early failure go unhandled
      await t.within(held, `the held-back write (after ${accepted} bytes) once the reader reads`);
      let total = accepted + 64 * KiB;
      while (total < accepted + MORE) {
        await t.within(writer.write(pattern(total, 64 * KiB)), `write at ${total} after the reader resumed`);
        total += 64 * KiB;
      }
      await t.within(writer.closeWrite(), "writer closeWrite");
      const got = await t.within(reading, "reader reaching end of stream");
      assertEqual(got, total, `bytes received (${accepted} accepted before the hold, reader saw ${received} so far)`);
    },
  },
  {
    name: "abort(): settles a write held back by backpressure, and the peer's pending read",
    needs: ["pair", "flow-control"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { client: writer, server: reader } = await target.pair(t);
      const { held } = await writeUntilHeldBack(t, writer, 48 * MiB);
      writer.abort();
      await t.within(settle(held), "the held-back write after abort()");
      // The reader drains what arrived and then sees the end (null) or the reset (rejection).
      for (;;) {
        const s = await t.within(settle(reader.read()), "reader after the writer's abort()");
        if (!s.ok || s.value === null) break;
      }
    },
  },
  {
    name: "partial writes: one 8 MiB write arrives complete and in order",
    needs: ["pair"],
    async run(target, t) {
      const SIZE = 8 * MiB;
      const { client, server } = await target.pair(t);
      const reading = readPattern(t, server, "server reading 8 MiB");
      void reading.catch(() => {});
      await t.within(client.write(pattern(0, SIZE)), "the 8 MiB write");
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(await t.within(reading, "server reaching end of stream"), SIZE, "bytes received");
    },
  },
  {
    name: "partial writes: writes issued back to back without awaiting arrive in order",
    needs: ["pair"],
    async run(target, t) {
      const sizes = [1, 1000, 64 * KiB + 3, 2 * MiB, 7, 1 * MiB + 11, 300 * KiB];
      const { client, server } = await target.pair(t);
      const reading = readPattern(t, server, "server reading");
      void reading.catch(() => {});
      const writes: Promise<void>[] = [];
      let at = 0;
      for (const n of sizes) {
        writes.push(client.write(pattern(at, n)));
        at += n;
      }
      await t.within(Promise.all(writes), `${writes.length} concurrent writes`);
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(await t.within(reading, "server reaching end of stream"), at, "bytes received");
    },
  },
  {
    name: "early close: the peer's close() makes a pending read resolve null or reject",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      const pending = server.read();
      await sleep(20); // the read is really waiting on the socket
      client.close();
      const s = await t.within(settle(pending), "server's pending read after the client's close()");
      assert(!s.ok || s.value === null, `pending read after the peer's close(): expected null or a rejection, got ${show(s.ok && s.value)}`);
    },
  },
  {
    name: "early close: the peer's abort() makes a pending read resolve null or reject",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      const pending = server.read();
      await sleep(20);
      client.abort();
      const s = await t.within(settle(pending), "server's pending read after the client's abort()");
      assert(!s.ok || s.value === null, `pending read after the peer's abort(): expected null or a rejection, got ${show(s.ok && s.value)}`);
    },
  },
  {
    name: "early close: close() settles our own pending read",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      const pending = client.read();
      await sleep(20);
      client.close();
      const s = await t.within(settle(pending), "client's own pending read after its close()");
      assert(!s.ok || s.value === null, `own pending read after close(): expected null or a rejection, got ${show(s.ok && s.value)}`);
      // and the peer sees the end
      const p = await t.within(settle(server.read()), "server read after the client's close()");
      assert(!p.ok || p.value === null, `peer read after close(): expected null or a rejection, got ${show(p.ok && p.value)}`);
    },
  },
  {
    name: "idempotent close: close() twice, abort() after close(), close() after abort()",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      await t.within(client.write(enc("last words")), "client write");
      client.close();
      client.close();
      client.abort();
      client.close();
      server.abort();
      server.abort();
      server.close();
      await t.within(client.closeWrite(), "closeWrite() after close() resolves");
      const r = await t.within(settle(client.read()), "read() after our own close()");
      assert(!r.ok || r.value === null, `read() after close(): expected null or a rejection, got ${show(r.ok && r.value)}`);
      await rejection(t, client.write(enc("too late")), "write() after close()");
      await rejection(t, server.write(enc("too late")), "write() after abort()");
    },
  },
  {
    name: "read after FIN: once null was read, further reads return null",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      await t.within(client.write(enc("x")), "client write");
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(dec(await readToEnd(t, server, "server")), "x", "server got");
      for (let i = 0; i < 3; i++) assertEqual(await t.within(server.read(), `read ${i + 2} after FIN`), null, `read ${i + 2} after FIN`);
      server.cancelRead(new Error("nothing pending")); // a no-op here
      assertEqual(await t.within(server.read(), "read after FIN and a no-op cancelRead"), null, "read after FIN and a no-op cancelRead");
      // still null once the peer has closed entirely
      client.close();
      await sleep(20);
      for (let i = 0; i < 2; i++) assertEqual(await t.within(server.read(), `read after the peer's close (${i})`), null, `read after FIN and the peer's close (${i})`);
    },
  },
  {
    name: "cancelRead(reason): the pending read rejects with reason; bytes sent afterwards go to the next read",
    needs: ["pair"],
    async run(target, t) {
      const { client, server } = await target.pair(t);
      // With nothing pending, cancelRead is a no-op.
      server.cancelRead(new Error("nothing pending"));
      await t.within(client.write(enc("m-start")), "client write");
      assertEqual(dec(await readExactly(t, server, 7, "read after a no-op cancelRead")), "m-start", "read after a no-op cancelRead");
      for (let i = 0; i < 4; i++) {
        const reason = new Error(`withdrawn ${i}`);
        const pending = server.read();
        if (i % 2 === 1) await sleep(20); // the read is really waiting on the socket (odd rounds)
        server.cancelRead(reason);
        const s = await t.within(settle(pending), `round ${i}: the cancelled read`);
        assert(!s.ok, `round ${i}: the cancelled read resolved with ${show(s.ok && s.value)} instead of rejecting`);
        assert(s.error === reason, `round ${i}: the cancelled read rejected with ${show(s.error)}, not with the given reason`);
        await t.within(client.write(enc(`m-${i}`)), `round ${i}: client write`);
        if (i >= 2) await sleep(20); // the bytes arrive while no read is pending (later rounds)
        assertEqual(dec(await readExactly(t, server, 3, `round ${i}: the next read`)), `m-${i}`, `round ${i}: the next read`);
      }
      // Bytes already under way when a read is cancelled: that read either got them (and keeps
      // them) or rejected with the reason; either way nothing is lost.
      await t.within(client.write(enc("in-flight")), "client write");
      await sleep(20);
      const reason = new Error("withdrawn late");
      const pending = server.read();
      server.cancelRead(reason);
      const s = await t.within(settle(pending), "read cancelled with bytes under way");
      let got = "";
      if (s.ok) got = dec(s.value) ?? "<null>";
      else assert(s.error === reason, `read cancelled with bytes under way rejected with ${show(s.error)}, not with the reason`);
      if (got.length < 9) got += dec(await readExactly(t, server, 9 - got.length, "the rest after the cancelled read"));
      assertEqual(got, "in-flight", "bytes under way at the cancel");
      // End of stream still arrives.
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(await t.within(server.read(), "read at FIN after cancelled reads"), null, "read at FIN after cancelled reads");
    },
  },
  {
    name: "addresses: listenTcp on port 0 resolves the port, and local/remote of both ends agree",
    needs: ["listen"],
    async run(target, t) {
      const { client, server, listener } = await netPair(t, requireNet(target));
      assertEqual(listener.addr, { host: LOOPBACK, port: listener.addr.port }, "listener.addr");
      assertEqual(client.remote, listener.addr, "client.remote");
      assertEqual(server.local, listener.addr, "server.local");
      assertEqual(client.local.host, LOOPBACK, "client.local.host");
      assert(client.local.port > 0, `client.local.port is set (got ${client.local.port})`);
      assertEqual(server.remote, client.local, "server.remote");
    },
  },
  {
    name: "listener close: accepted connections keep working both ways; close() settles once they are closed",
    needs: ["listen"],
    async run(target, t) {
      const net = requireNet(target);
      const { client, server, listener } = await netPair(t, net);
      // Not awaited yet: Node's close() settles only once the accepted connections are gone
      // (net.Server#close; the core's shutdown closes them for that reason), Bun's and Deno's
      // at once. The contract leaves that open, so the case awaits it only at the end.
      const closing = listener.close();
      void closing.catch(() => {});
      await t.within(client.write(enc("ping")), "client write after listener close");
      assertEqual(dec(await readExactly(t, server, 4, "server")), "ping", "server got");
      await t.within(server.write(enc("pong")), "server write after listener close");
      assertEqual(dec(await readExactly(t, client, 4, "client")), "pong", "client got");
      client.close();
      server.close();
      await t.within(closing, "listener.close() once its connections are closed");
      const e = await rejection(t, net.connectTcp(listener.addr), "connectTcp to the closed listener");
      assert(e instanceof DialError, `dial to a closed listener: expected a DialError, got ${show(e)}`);
      assertEqual(e.kind, "refused", `DialError kind (${e.message})`);
    },
  },
  {
    name: "listener close: once close() resolved, the port is closed (a dial right away is refused)",
    needs: ["listen"],
    async run(target, t) {
      const net = requireNet(target);
      for (let round = 0; round < 3; round++) {
        const addr = await closedPort(t, net);
        const e = await rejection(t, net.connectTcp(addr), `round ${round}: connectTcp right after the listener's close() resolved`);
        assert(e instanceof DialError, `round ${round}: expected a DialError, got ${show(e)}`);
        assertEqual(e.kind, "refused", `round ${round}: DialError kind (${e.message})`);
      }
    },
  },
  {
    name: "IPv6 loopback: listen and dial on ::1, round trip both ways",
    needs: ["listen"],
    async run(target, t) {
      const net = requireNet(target);
      const probe = await t.within(settle(net.listenTcp({ host: "::1", port: 0 }, (c) => c.abort())), "listenTcp ::1");
      if (!probe.ok) throw new Skip(`no IPv6 loopback here: ${show(probe.error)}`);
      await t.within(probe.value.close(), "probe listener close");
      const { client, server, listener } = await netPair(t, net, "::1");
      assertEqual(listener.addr.host, "::1", "listener.addr.host");
      assertEqual(server.remote.host, "::1", "server.remote.host");
      await t.within(client.write(enc("six")), "client write");
      assertEqual(dec(await readExactly(t, server, 3, "server")), "six", "server got");
      await t.within(server.write(enc("ok")), "server write");
      assertEqual(dec(await readExactly(t, client, 2, "client")), "ok", "client got");
    },
  },
  {
    name: "UDP: bindUdp on 127.0.0.1, datagrams to a second socket and to itself arrive with the right source",
    needs: ["udp"],
    async run(target, t) {
      const net = requireNet(target);
      if (!net.bindUdp) throw new Skip(`${target.label} has no bindUdp`);
      type Datagram = { text: string; from: NetAddr };
      const inbox = (): { got: Datagram[]; wake: (() => void) | null; handler(bytes: Uint8Array, from: NetAddr): void } => {
        const box = {
          got: [] as Datagram[],
          wake: null as (() => void) | null,
          handler(bytes: Uint8Array, from: NetAddr) {
            box.got.push({ text: dec(bytes) ?? "", from: { host: from.host, port: from.port } });
            box.wake?.();
          },
        };
        return box;
      };
      /** Send (again, up to 3 times: UDP may drop even on loopback) until `text` arrives. */
      const exchange = async (box: ReturnType<typeof inbox>, send: () => Promise<void>, text: string): Promise<Datagram> => {
        for (let attempt = 0; attempt < 3; attempt++) {
          await t.within(send(), `send ${JSON.stringify(text)}`);
          const deadline = Date.now() + 1_500;
          while (Date.now() < deadline) {
            const found = box.got.find((d) => d.text === text);
            if (found) return found;
            await Promise.race([new Promise<void>((r) => (box.wake = r)), sleep(100)]);
          }
        }
        throw new ContractFailure(`datagram ${JSON.stringify(text)} never arrived (got ${show(box.got)})`);
      };
      const boxA = inbox();
      const boxB = inbox();
      const a: DatagramSocket = await t.within(net.bindUdp({ host: LOOPBACK, port: 0 }, boxA.handler), "bindUdp a");
      t.defer(() => a.close());
      const b: DatagramSocket = await t.within(net.bindUdp({ host: LOOPBACK, port: 0 }, boxB.handler), "bindUdp b");
      t.defer(() => b.close());
      assertEqual(a.addr.host, LOOPBACK, "a.addr.host");
      assert(a.addr.port > 0 && b.addr.port > 0 && a.addr.port !== b.addr.port, `bound ports resolved (${a.addr.port}, ${b.addr.port})`);
      const toB = await exchange(boxB, () => a.send(enc("a to b"), b.addr), "a to b");
      assertEqual(toB.from, a.addr, "source of a's datagram at b");
      const back = await exchange(boxA, () => b.send(enc("b back to a"), toB.from), "b back to a");
      assertEqual(back.from, b.addr, "source of b's reply at a");
      const self = await exchange(boxA, () => a.send(enc("a to itself"), a.addr), "a to itself");
      assertEqual(self.from, a.addr, "source of a's datagram to itself");
      a.close();
      a.close(); // idempotent
    },
  },
  {
    name: "dial failure: connectTcp to a closed loopback port fails with DialError kind refused",
    needs: ["listen"],
    async run(target, t) {
      const net = requireNet(target);
      const addr = await closedPort(t, net, 50);
      const e = await rejection(t, net.connectTcp(addr), `connectTcp ${addr.host}:${addr.port} (closed)`);
      assert(e instanceof DialError, `expected a DialError, got ${show(e)}`);
      assertEqual(e.kind, "refused", `DialError kind (${e.message})`);
      assertEqual(e.target, addr, "DialError target");
    },
  },
  {
    name: "dial failure: a real transport's DialError keeps the runtime's own error as its cause",
    needs: ["listen", "flow-control"],
    async run(target, t) {
      const net = requireNet(target);
      const addr = await closedPort(t, net, 50);
      const e = await rejection(t, net.connectTcp(addr), `connectTcp ${addr.host}:${addr.port} (closed)`);
      assert(e instanceof DialError, `expected a DialError, got ${show(e)}`);
      assert(e.cause !== undefined && e.cause !== e, `DialError.cause: expected the runtime's error, got ${show(e.cause)}`);
    },
  },
  {
    name: "dial failure: an aborted signal fails with DialError kind timeout (aborted before, and during, the dial)",
    needs: ["listen"],
    async run(target, t) {
      const net = requireNet(target);
      // A live listener: without the abort these dials would succeed.
      const listener = await t.within(
        net.listenTcp({ host: LOOPBACK, port: 0 }, (c) => {
          t.defer(() => c.abort());
        }),
        "listenTcp",
      );
      t.defer(() => listener.close());
      const addr = { host: LOOPBACK, port: listener.addr.port };
      const timeoutReason = (): Error => new DOMException("dial deadline", "TimeoutError");

      const before = new AbortController();
      before.abort(timeoutReason());
      const e1 = await rejection(t, net.connectTcp(addr, { signal: before.signal }), "connectTcp with an already aborted signal");
      assert(e1 instanceof DialError, `already aborted: expected a DialError, got ${show(e1)}`);
      assertEqual(e1.kind, "timeout", `already aborted: DialError kind (${e1.message})`);
      assert(e1.cause === before.signal.reason, `already aborted: DialError.cause: expected the signal's reason, got ${show(e1.cause)}`);

      const during = new AbortController();
      const dial = net.connectTcp(addr, { signal: during.signal });
      during.abort(timeoutReason());
      const s = await t.within(settle(dial), "connectTcp aborted during the dial");
      if (s.ok) {
        s.value.abort();
        throw new ContractFailure("aborted during the dial: connectTcp resolved with a connection");
      }
      assert(s.error instanceof DialError, `aborted during the dial: expected a DialError, got ${show(s.error)}`);
      assertEqual(s.error.kind, "timeout", `aborted during the dial: DialError kind (${s.error.message})`);
      assert(s.error.cause === during.signal.reason, `aborted during the dial: DialError.cause: expected the signal's reason, got ${show(s.error.cause)}`);
    },
  },
  {
    name: "acceptTls: a client that trusts the CA gets TLS: bytes both ways, the proxy's FIN reaches the client, the accepted connection's addresses",
    needs: ["listen"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { net, raw, clientDial, leaf } = await tlsSetup(target, t, true);
      const server = await t.within(net.acceptTls!(raw, { cert: leaf.certPem, key: leaf.keyPem, alpn: ["http/1.1"] }), "acceptTls");
      t.defer(() => server.abort());
      const client = await t.within(clientDial, "connectTls with the CA");
      t.defer(() => client.abort());
      assertEqual(server.remote, raw.remote, "server.remote (the accepted connection's)");
      assertEqual(server.local, raw.local, "server.local (the accepted connection's)");
      await t.within(client.write(enc("hello over tls")), "client write");
      assertEqual(dec(await readExactly(t, server, 14, "server")), "hello over tls", "server got");
      await t.within(server.write(enc("and back")), "server write");
      assertEqual(dec(await readExactly(t, client, 8, "client")), "and back", "client got");
      await t.within(server.closeWrite(), "server closeWrite");
      assertEqual(await t.within(client.read(), "client read at the server's FIN"), null, "client read at the server's FIN");
    },
  },
  {
    name: "acceptTls: after the client's TLS half-close the proxy's answer still flows (RFC 8446 §6.1)",
    needs: ["listen"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { net, raw, clientDial, leaf } = await tlsSetup(target, t, true);
      const server = await t.within(net.acceptTls!(raw, { cert: leaf.certPem, key: leaf.keyPem }), "acceptTls");
      t.defer(() => server.abort());
      const client = await t.within(clientDial, "connectTls with the CA");
      t.defer(() => client.abort());
      await t.within(client.write(enc("request")), "client write");
      await t.within(client.closeWrite(), "client closeWrite");
      assertEqual(dec(await readExactly(t, server, 7, "server")), "request", "server got");
      assertEqual(await t.within(server.read(), "server read at the client's FIN"), null, "server read at the client's FIN");
      await t.within(server.write(enc("the answer")), "server write after the client's FIN");
      assertEqual(dec(await readExactly(t, client, 10, "client after its FIN")), "the answer", "client got after its FIN");
      await t.within(server.closeWrite(), "server closeWrite");
      assertEqual(await t.within(client.read(), "client read at the server's FIN"), null, "client read at the server's FIN");
    },
  },
  {
    name: "acceptTls: handshake bytes already read from the connection are passed as pending and taken first",
    needs: ["listen"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { net, raw, clientDial, leaf } = await tlsSetup(target, t, true);
      const head = await t.within(raw.read(), "the ClientHello (or its start)"); // what a session may have read ahead
      assert(head !== null && head[0] === 0x16, `the client's first bytes are a TLS handshake record (got ${show(head?.[0])})`);
      const server = await t.within(net.acceptTls!(raw, { cert: leaf.certPem, key: leaf.keyPem, pending: head }), "acceptTls with pending");
      t.defer(() => server.abort());
      const client = await t.within(clientDial, "connectTls");
      t.defer(() => client.abort());
      await t.within(client.write(enc("ping")), "client write");
      assertEqual(dec(await readExactly(t, server, 4, "server")), "ping", "server got");
    },
  },
  {
    name: "acceptTls: a client that does not trust the CA fails its handshake; acceptTls rejects with TlsAcceptError and closes the connection",
    needs: ["listen"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { net, raw, clientDial, leaf } = await tlsSetup(target, t, false);
      const accepting = settle(net.acceptTls!(raw, { cert: leaf.certPem, key: leaf.keyPem }));
      const dialed = await settle(t.within(clientDial, "connectTls without the CA"));
      assert(!dialed.ok && dialed.error instanceof DialError && dialed.error.kind === "tls", `the client's dial: expected DialError kind tls, got ${show(dialed.ok ? "a connection" : dialed.error)}`);
      const s = await t.within(accepting, "acceptTls settles");
      assert(!s.ok && s.error instanceof TlsAcceptError, `acceptTls: expected a TlsAcceptError, got ${show(s.ok ? "a connection" : s.error)}`);
      assert(s.error.kind === "rejected" || s.error.kind === "closed", `TlsAcceptError kind: expected rejected (or closed), got ${s.error.kind} (${s.error.message})`);
    },
  },
  {
    name: "acceptTls: bytes that are not TLS, already read behind the CONNECT (pending): TlsAcceptError not_tls, the runtime goes on",
    needs: ["listen"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { net, raw, client, leaf } = await tlsSetupPlain(target, t);
      await t.within(client.write(enc("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")), "plain request");
      const pending = await t.within(raw.read(), "what the session read ahead");
      assert(pending !== null, "bytes arrived");
      const s = await t.within(settle(net.acceptTls!(raw, { cert: leaf.certPem, key: leaf.keyPem, pending })), "acceptTls settles");
      assert(!s.ok && s.error instanceof TlsAcceptError, `acceptTls: expected a TlsAcceptError, got ${show(s.ok ? "a connection" : s.error)}`);
      assertEqual(s.error.kind, "not_tls", `TlsAcceptError kind (${s.error.message})`);
      await sleep(50); // a runtime that fails after the rejection (an uncaught error) fails the case
    },
  },
  {
    name: "acceptTls: a client that speaks plain HTTP instead of TLS: TlsAcceptError kind not_tls, and the connection is closed",
    needs: ["listen"],
    deadlineMs: 20_000,
    async run(target, t) {
      const { net, raw, client, leaf } = await tlsSetupPlain(target, t);
      const accepting = settle(net.acceptTls!(raw, { cert: leaf.certPem, key: leaf.keyPem }));
      await t.within(client.write(enc("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")), "plain request");
      const s = await t.within(accepting, "acceptTls settles");
      assert(!s.ok && s.error instanceof TlsAcceptError, `acceptTls: expected a TlsAcceptError, got ${show(s.ok ? "a connection" : s.error)}`);
      assertEqual(s.error.kind, "not_tls", `TlsAcceptError kind (${s.error.message})`);
      // the connection is closed: the client reads its end (some bytes of an alert may come first)
      for (let i = 0; i < 8; i++) {
        const r = await settle(t.within(client.read(), "client read after the refusal"));
        if (!r.ok || r.value === null) return;
      }
      throw new ContractFailure("the connection was not closed after the failed handshake");
    },
  },
];
