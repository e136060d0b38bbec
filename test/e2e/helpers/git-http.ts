/**
 * A git smart-HTTP origin on 127.0.0.1: Debian's `git http-backend` run as a CGI program per
 * request (RFC 3875 variables in, `Status:` and headers out), serving the bare repositories
 * under a directory the test fills with {@link makeBareRepo}.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { withDeadline } from "./util.ts";

/** Where Debian installs the CGI program. */
export const GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend";

/** A running origin. */
export interface GitHttpServer {
  readonly port: number;
  /** `METHOD path` of every request, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** An environment for git with no user or system configuration and no prompts. */
export function isolatedGitEnv(home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    GIT_AUTHOR_NAME: "test",
    GIT_AUTHOR_EMAIL: "test@example.invalid",
    GIT_COMMITTER_NAME: "test",
    GIT_COMMITTER_EMAIL: "test@example.invalid",
  };
}

/** Make `root/NAME.git` holding one commit with `file` = `content` on `main`. */
export function makeBareRepo(root: string, name: string, file: string, content: string): void {
  const env = isolatedGitEnv(root);
  const work = join(root, `${name}-work`);
  mkdirSync(work, { recursive: true });
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", join(root, `${name}.git`)], { env });
  execFileSync("git", ["init", "-q", "-b", "main", work], { env });
  writeFileSync(join(work, file), content);
  execFileSync("git", ["-C", work, "add", file], { env });
  execFileSync("git", ["-C", work, "commit", "-q", "-m", "first"], { env });
  execFileSync("git", ["-C", work, "push", "-q", join(root, `${name}.git`), "main"], { env });
}

/** Serve the bare repositories under `root` over smart HTTP. */
export async function startGitHttpServer(root: string): Promise<GitHttpServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://origin.invalid");
    requests.push(`${req.method} ${url.pathname}`);
    const child = spawn(GIT_HTTP_BACKEND, [], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        REQUEST_METHOD: req.method ?? "GET",
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        CONTENT_LENGTH: req.headers["content-length"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        REMOTE_ADDR: "127.0.0.1",
      },
      stdio: ["pipe", "pipe", "ignore"],
    });
    req.pipe(child.stdin);
    let head = Buffer.alloc(0);
    let started = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (started) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      started = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString("latin1").split("\r\n")) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    child.stdout.on("end", () => (started ? res.end() : res.writeHead(502).end("git http-backend answered nothing")));
  });
  await withDeadline(new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r())), 5_000, "git origin listen");
  return {
    port: (server.address() as { port: number }).port,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
