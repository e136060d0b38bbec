/**
 * Codex permission profiles (issue 14 item 2, docs/behaviour.md §1.8) end to end: a config file
 * in the profile shape drives the same decisions as its `[network]` twin (allowed origin, denied
 * host, another port, not listed), `--profile` picks another profile, a reload re-reads the
 * profile, and a file with both shapes or a missing profile stops startup naming them. On node,
 * bun and deno.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminRequest } from "./helpers/admin.ts";
import { curlHttp, makeTempDir, type Origin, type ProxyProcess, RUNTIME, runCli, startOrigin, startProxy } from "./helpers/index.ts";

let origin: Origin;
let tmp: { dir: string; remove(): void };
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  origin = await startOrigin();
  tmp = makeTempDir("cnp-e2e-profiles-");
});

afterAll(async () => {
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await origin?.close();
  tmp?.remove();
});

const LISTENERS = `proxy_url = "http://127.0.0.1:0"\nadmin_url = "http://127.0.0.1:0"`;

function profileText(originPort: number, extraDomain = ""): string {
  return `default_permissions = "dev"

[permissions.dev.network]
enabled = true
${LISTENERS}
domains = { "127.0.0.1:${originPort}" = "allow", "localhost" = "deny", "127.0.0.2" = "none"${extraDomain} }

[permissions.nothing.network]
enabled = true
${LISTENERS}
domains = {}
`;
}

function twinText(originPort: number): string {
  return `[network]
enabled = true
${LISTENERS}
allowed_domains = ["127.0.0.1:${originPort}"]
denied_domains = ["localhost"]
`;
}

function write(name: string, text: string): string {
  const file = join(tmp.dir, name);
  writeFileSync(file, text);
  return file;
}

async function start(file: string, args: string[] = []): Promise<ProxyProcess> {
  const p = await startProxy("", { noConfigFlag: true, args: ["--config", file, ...args], waitForAdmin: true });
  proxies.push(p);
  return p;
}

/** What the proxy answers for each probe: the status and, for a refusal, the reason. */
async function decisions(p: ProxyProcess, originPort: number): Promise<string[]> {
  const probes = [`http://127.0.0.1:${originPort}/ok`, `http://localhost:${originPort}/denied`, `http://127.0.0.1:${originPort + 1}/other-port`, `http://127.0.0.2:${originPort}/none`];
  const out: string[] = [];
  for (const url of probes) {
    const r = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, url]);
    out.push(r.status === 403 ? `403 ${JSON.parse(r.text).reason}` : String(r.status));
  }
  return out;
}

describe(`Codex permission profiles (${RUNTIME})`, () => {
  it("a profile-shaped file drives the same decisions as its [network] twin", async () => {
    const [profile, twin] = await Promise.all([start(write("profile.toml", profileText(origin.port))), start(write("twin.toml", twinText(origin.port)))]);
    const expected = ["200", "403 denied", "403 not_allowed_local", "403 not_allowed_local"];
    expect(await decisions(profile, origin.port)).toEqual(expected);
    expect(await decisions(twin, origin.port)).toEqual(expected);
  });

  it("--profile picks another profile", async () => {
    const p = await start(write("profile-nothing.toml", profileText(origin.port)), ["--profile", "nothing"]);
    const r = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${origin.port}/ok`]);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text).reason).toBe("not_allowed_local");
  });

  it("a reload keeps reading the --profile one (not default_permissions')", async () => {
    const file = write("profile-nothing-reload.toml", profileText(origin.port));
    const p = await start(file, ["--profile", "nothing"]);
    writeFileSync(file, profileText(origin.port, ", \"127.0.0.3\" = \"none\"")); // a change, so the reload applies something
    const reload = await adminRequest(p.adminPort!, "POST", "/reload");
    expect(reload.status, reload.body.toString()).toBe(200);
    // "dev" allows the origin, "nothing" does not: still refused
    const r = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${origin.port}/ok`]);
    expect(r.status).toBe(403);
  });

  it("a reload re-reads the profile", async () => {
    const file = write("profile-reload.toml", profileText(origin.port));
    const p = await start(file);
    writeFileSync(file, profileText(origin.port, `, "127.0.0.1:${origin.port + 1}" = "allow"`));
    const reload = await adminRequest(p.adminPort!, "POST", "/reload");
    expect(reload.status, reload.body.toString()).toBe(200);
    const r = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, `http://127.0.0.1:${origin.port + 1}/`]);
    // refused before the reload (the first test); allowed now: the proxy dials the port, whatever answers
    expect(r.status).not.toBe(403);
    expect(r.headers["x-proxy-error"]).toBeUndefined();
  });

  it.each([
    ["both shapes", `default_permissions = "dev"\n${twinText(1)}[permissions.dev.network]\nenabled = true\n`, [], "network: both [network] and the Codex permission profile [permissions.dev.network] (chosen by default_permissions) are present"],
    ["a missing profile", profileText(1), ["--profile", "prod"], `profile "prod" (chosen by --profile) does not exist; the file defines "dev", "nothing"`],
  ])("%s stops startup with exit 2, naming them", async (_what, text, args, message) => {
    const r = await runCli(["--config", write("bad.toml", text), ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});
