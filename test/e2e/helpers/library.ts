/**
 * Helpers for tests that run the proxy in the test process (the library API): curl with an
 * exact environment (async, never blocking the event loop the proxy runs on), small admin
 * requests over raw sockets, and RFC 1929 SOCKS5 opening.
 */
import { spawn } from "node:child_process";
import { CURL, type CurlHttp } from "./curl.ts";
import { RawClient, requestOnce, type RawResponse } from "./raw.ts";
import { readSocksReply, socksRequest, type SocksReply } from "./socks5.ts";
import { withDeadline } from "./util.ts";

/**
 * Run curl with exactly `env` (plus PATH, and nothing else: no inherited proxy or NO_PROXY
 * variables) and `-q` first so no curlrc is read. Splits the final response like `curlHttp`.
 * Async (spawn): the proxy under test runs on this process's event loop.
 */
export function curlWithEnv(args: readonly string[], env: Record<string, string>, timeoutMs = 15_000): Promise<CurlHttp> {
  const child = spawn(CURL, ["-q", "--silent", "--show-error", "--max-time", String(Math.ceil(timeoutMs / 1000)), "-D", "-", ...args], {
    env: { ...env, PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => out.push(c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const done = new Promise<CurlHttp>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      const stdout = Buffer.concat(out);
      resolve({ ...splitCurlOutput(stdout), code: code ?? -1, stdout, stderr });
    });
  });
  return withDeadline(done, timeoutMs + 3_000, `curl ${args.join(" ")}`).catch((e: unknown) => {
    child.kill("SIGKILL");
    throw e;
  });
}

/** Final status, headers and body of curl `-D -` output (interim and tunnel heads skipped). */
function splitCurlOutput(stdout: Buffer): { status: number; headers: Record<string, string>; body: Buffer; text: string } {
  let rest = stdout;
  let status = 0;
  let headers: Record<string, string> = {};
  while (rest.subarray(0, 5).toString("latin1") === "HTTP/") {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    const lines = rest.subarray(0, end).toString("latin1").split("\r\n");
    status = Number(lines[0]!.split(" ")[1]);
    headers = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(":");
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    rest = rest.subarray(end + 4);
  }
  return { status, headers, body: rest, text: rest.toString("utf8") };
}

/** One request to an admin-style HTTP server on loopback (raw socket: no proxy variable applies). */
export function loopbackRequest(port: number, method: string, path: string, body?: string): Promise<RawResponse> {
  const payload = body === undefined ? "" : body;
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
    (body === undefined ? "" : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`) +
    "\r\n";
  return requestOnce(port, head + payload);
}

/**
 * Connect to a SOCKS5 listener offering only username/password (RFC 1929), authenticate with
 * `user` (empty password), send a CONNECT and read the reply.
 */
export async function socksOpenWithUser(socksPort: number, user: string, host: string, port: number): Promise<{ client: RawClient; reply: SocksReply }> {
  const client = await RawClient.connect(socksPort);
  try {
    await client.write(Buffer.from([0x05, 0x01, 0x02]));
    const method = await client.readBytes(2);
    if (method[0] !== 0x05 || method[1] !== 0x02) throw new Error(`method selection answered ${method.toString("hex")}, expected 0502`);
    const u = Buffer.from(user, "utf8");
    await client.write(Buffer.concat([Buffer.from([0x01, u.length]), u, Buffer.from([0x00])]));
    const status = await client.readBytes(2);
    if (status[0] !== 0x01 || status[1] !== 0x00) throw new Error(`RFC 1929 status ${status.toString("hex")}, expected 0100`);
    await client.write(socksRequest(0x01, host, port));
    return { client, reply: await readSocksReply(client) };
  } catch (e) {
    client.destroy();
    throw e;
  }
}
