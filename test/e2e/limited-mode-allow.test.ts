/**
 * `limited_mode_allow` end to end (issue 14 item 3, docs/behaviour.md §3.5): `git clone` of a
 * repository served over smart HTTP on loopback succeeds through a limited-mode proxy with the
 * README's rule for `git-upload-pack`, and fails without it (its POST is a 403
 * `blocked-by-method-policy`); a push (`git-receive-pack`) stays refused. On node, bun and deno.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isolatedGitEnv, makeBareRepo, startGitHttpServer, type GitHttpServer } from "./helpers/git-http.ts";
import { curlHttp, makeTempDir, networkConfig, type ProxyProcess, RUNTIME, startProxy, withDeadline } from "./helpers/index.ts";

let tmp: { dir: string; remove(): void };
let origin: GitHttpServer;
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  tmp = makeTempDir("cnp-e2e-git-");
  makeBareRepo(tmp.dir, "project", "README.md", "cloned through a read-only proxy\n");
  origin = await startGitHttpServer(tmp.dir);
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await origin?.close();
  tmp?.remove();
});

/** The README's rule for smart-HTTP fetches, for this origin. */
const GIT_FETCH_RULE = () => `{ host = "127.0.0.1:${origin.port}", methods = ["POST"], path_prefixes = ["pattern:/*/git-upload-pack", "pattern:/*/*/git-upload-pack"] }`;

async function proxy(rules: string | undefined): Promise<ProxyProcess> {
  const text = networkConfig({ mode: "limited", allowed_domains: [`127.0.0.1:${origin.port}`] }) + (rules === undefined ? "" : `limited_mode_allow = [${rules}]\n`);
  const p = await startProxy(text);
  proxies.push(p);
  return p;
}

/** `git` with an isolated configuration, its traffic through `proxyPort`; resolves with its exit code and stderr. */
function git(args: string[], proxyPort: number): Promise<{ code: number; stderr: string }> {
  const env = { ...isolatedGitEnv(tmp.dir), http_proxy: `http://127.0.0.1:${proxyPort}`, NO_PROXY: "", no_proxy: "" };
  const run = new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile("git", ["-c", `http.proxy=http://127.0.0.1:${proxyPort}`, ...args], { env, cwd: tmp.dir }, (error, _stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
  return withDeadline(run, 30_000, `git ${args.join(" ")}`);
}

describe(`git clone over smart HTTP in limited mode (${RUNTIME})`, () => {
  it("succeeds with the git-upload-pack rule", async () => {
    const p = await proxy(GIT_FETCH_RULE());
    const dest = join(tmp.dir, "with-rule");
    const r = await git(["clone", "-q", `http://127.0.0.1:${origin.port}/project.git`, dest], p.port);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dest, "README.md"), "utf8")).toBe("cloned through a read-only proxy\n");
    expect(origin.requests).toContain("POST /project.git/git-upload-pack");
  });

  it("fails without it: the POST is refused with 403 blocked-by-method-policy", async () => {
    const p = await proxy(undefined);
    const dest = join(tmp.dir, "without-rule");
    const before = origin.requests.filter((r) => r.startsWith("POST")).length;
    const r = await git(["clone", "-q", `http://127.0.0.1:${origin.port}/project.git`, dest], p.port);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/403/);
    expect(existsSync(join(dest, "README.md"))).toBe(false);
    expect(origin.requests.filter((req) => req.startsWith("POST")).length).toBe(before);
  });

  it("the rule does not open git-receive-pack (a push)", async () => {
    const p = await proxy(GIT_FETCH_RULE());
    const r = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, "-X", "POST", "--data-binary", "0000", `http://127.0.0.1:${origin.port}/project.git/git-receive-pack`]);
    expect(r.status).toBe(403);
    expect(r.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
  });
});
