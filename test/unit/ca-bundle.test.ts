/**
 * The trust bundle clients get (src/core/mitm/ca-bundle.ts, ca-env.ts; docs/behaviour.md §9.4):
 * PEM blocks split in one canonical spelling, each certificate once (a bundle made while
 * `SSL_CERT_FILE` names an earlier bundle does not grow), the system roots from the first
 * well-known file that has any, else the runtime's own; the file written atomically with mode
 * 0644, replacing a symbolic link rather than writing through it, in a directory that must not
 * be open to others. Also the `env` command's argument and quoting rules. Real files in a temp dir.
 */
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseArgs, shellQuote } from "../../src/core/cli/standalone.ts";
import { bundleText, systemRootsPem, SYSTEM_ROOT_FILES, writeCaBundle } from "../../src/core/mitm/ca-bundle.ts";
import { CA_BUNDLE_VARIABLES, caEnv } from "../../src/core/mitm/ca-env.ts";
import { codexHome, writeTrustBundle } from "../../src/core/mitm/ca-loader.ts";
import { silentLogger } from "../../src/core/log.ts";
import { LocalCa } from "../../src/core/mitm/ca.ts";
import { splitPemBlocks } from "../../src/core/mitm/pem.ts";
import { nodePrivateFiles } from "../../src/runtimes/shared/process-runtime.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cnp-bundle-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const cas = await Promise.all([LocalCa.generate(), LocalCa.generate(), LocalCa.generate()]);
const [a, b, c] = cas.map((ca) => ca.certPem);

describe("splitPemBlocks and bundleText", () => {
  it("finds every certificate, skipping comments and other labels, in one canonical spelling", () => {
    const rewrapped = a!.replace(/\n(?!-----)/g, "").replace("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\r\n");
    const text = `# comment\n${rewrapped}\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${b}`;
    expect(splitPemBlocks(text, "CERTIFICATE")).toEqual([a!.trim(), b!.trim()]);
    expect(splitPemBlocks(`${a}-----BEGIN CERTIFICATE-----\nAAAA`, "CERTIFICATE")).toEqual([a!.trim()]); // unterminated: left out
  });

  it("leaves a damaged block out without swallowing the next one", () => {
    // a BEGIN without its END, then a whole certificate: the whole one survives
    expect(splitPemBlocks(`${a}-----BEGIN CERTIFICATE-----\nAAAA\n${b}`, "CERTIFICATE")).toEqual([a!.trim(), b!.trim()]);
    // a body that is not base64
    expect(splitPemBlocks(`-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n${c}`, "CERTIFICATE")).toEqual([c!.trim()]);
    expect(splitPemBlocks(`-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n`, "CERTIFICATE")).toEqual([]); // bad length
  });

  it("keeps each certificate once, in order, whatever the parts repeat", () => {
    const earlier = bundleText([a, b]);
    expect(bundleText([a, earlier, c, b])).toBe(`${a}${b}${c}`);
    expect(bundleText([undefined, c])).toBe(c);
  });
});

describe("systemRootsPem", () => {
  it("reads the first well-known file that holds a certificate", async () => {
    const files: Record<string, string> = { [SYSTEM_ROOT_FILES[0]]: "no certificate here", [SYSTEM_ROOT_FILES[2]]: a!, [SYSTEM_ROOT_FILES[4]]: b! };
    const read: string[] = [];
    const roots = await systemRootsPem({
      readTextFile: async (p) => (read.push(p), files[p] ?? null),
      bundledRoots: () => [c!],
    });
    expect(roots).toBe(a);
    expect(read).toEqual(SYSTEM_ROOT_FILES.slice(0, 3));
  });

  it("falls back to the runtime's roots when no file has any (an unreadable one counts as none), else undefined", async () => {
    const unreadable = async () => {
      throw new Error("EACCES");
    };
    expect(await systemRootsPem({ readTextFile: unreadable, bundledRoots: () => [a!, b!] })).toBe(`${a}\n${b}`);
    expect(await systemRootsPem({ readTextFile: async () => null })).toBeUndefined();
  });

  it("on this machine finds Debian's bundle", async () => {
    const roots = await systemRootsPem({ readTextFile: async (p) => readFileSync(p, "utf8") });
    expect(roots).toBe(readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8"));
  });
});

describe("writeCaBundle", () => {
  const sources = (roots?: string) => ({ files: nodePrivateFiles, readTextFile: async () => null, bundledRoots: () => (roots ? [roots] : []) });

  it("writes roots, extra CA and CA once each, mode 0644, in a directory made 0700, leaving no temporary file", async () => {
    const target = join(dir, "proxy");
    const warnings: string[] = [];
    const { path, complete } = await writeCaBundle(sources(a), target, "ca-bundle.pem", c!, `${b}${a}`, (m) => warnings.push(m));
    expect(path).toBe(join(target, "ca-bundle.pem"));
    expect(complete).toBe(true);
    expect(readFileSync(path, "utf8")).toBe(`${a}${b}${c}`);
    expect((statSync(path).mode & 0o777).toString(8)).toBe("644");
    expect((statSync(target).mode & 0o777).toString(8)).toBe("700");
    expect(readdirSync(target)).toEqual(["ca-bundle.pem"]);
    expect(warnings).toEqual([]);
  });

  it("replaces what is there, a symbolic link included, without writing through it", async () => {
    const elsewhere = join(dir, "elsewhere.pem");
    writeFileSync(elsewhere, "do not touch\n");
    mkdirSync(join(dir, "proxy"), { mode: 0o700 });
    symlinkSync(elsewhere, join(dir, "proxy", "ca-bundle.pem"));
    const { path } = await writeCaBundle(sources(a), join(dir, "proxy"), "ca-bundle.pem", c!, undefined, () => {});
    expect(lstatSync(path).isFile()).toBe(true);
    expect(readFileSync(elsewhere, "utf8")).toBe("do not touch\n");
    expect(readFileSync(path, "utf8")).toBe(`${a}${c}`);
  });

  it("warns when it finds no system roots (the bundle then holds only the CAs)", async () => {
    const warnings: string[] = [];
    const { path, complete } = await writeCaBundle(sources(), join(dir, "proxy"), "ca-bundle.pem", c!, undefined, (m) => warnings.push(m));
    expect(readFileSync(path, "utf8")).toBe(c);
    expect(complete).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/^no system root certificates found \(tried \/etc\/ssl\/certs\/ca-certificates\.crt, .*\): .*ca-bundle\.pem holds only the proxy's CA, so only NODE_EXTRA_CA_CERTS and DENO_CERT name it$/)]);
    // a bundle without the system roots never replaces a tool's trust store
    expect(caEnv({ path, complete })).toEqual({ NODE_EXTRA_CA_CERTS: path, DENO_CERT: path });
  });

  it("refuses a directory open to others, naming it", async () => {
    const open = join(dir, "proxy");
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(writeCaBundle(sources(a), open, "ca-bundle.pem", c!, undefined, () => {})).rejects.toThrow(`${open} has mode 0777, writable by group or others`);
    expect(readdirSync(open)).toEqual([]);
  });
});

describe("writeTrustBundle", () => {
  const rt = (env: Record<string, string>) => ({
    env: (n: string) => env[n],
    cwd: () => dir,
    privateFiles: nodePrivateFiles,
    readTextFile: async (p: string) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return null;
      }
    },
    bundledRoots: () => [],
  });

  it("takes the extra CA from SSL_CERT_FILE, but not when that names a bundle it wrote (an old CA must not live on)", async () => {
    const home = join(dir, "home");
    writeFileSync(join(dir, "extra.pem"), b!);
    const first = await writeTrustBundle(rt({ CODEX_HOME: home, SSL_CERT_FILE: join(dir, "extra.pem") }), cas[0]!, true, silentLogger);
    expect(first!.path).toBe(join(home, "proxy", "ca-bundle.pem"));
    const text = readFileSync(first!.path, "utf8");
    expect(text).toContain(b!.trim());
    expect(text).toContain(a!.trim());
    // a shell that ran `env` has SSL_CERT_FILE naming that bundle; the CA changed since
    const second = await writeTrustBundle(rt({ CODEX_HOME: home, SSL_CERT_FILE: first!.path }), cas[2]!, true, silentLogger);
    const again = readFileSync(second!.path, "utf8");
    expect(again).toContain(c!.trim());
    expect(again).not.toContain(a!.trim());
    expect(again).not.toContain(b!.trim());
  });

  it("a relative CODEX_HOME is made absolute (the path is handed to other processes); an app's CA gets its own name", async () => {
    const bundle = await writeTrustBundle(rt({ CODEX_HOME: "rel-home" }), cas[1]!, false, silentLogger);
    expect(bundle!.path).toMatch(new RegExp(`^${dir}/rel-home/proxy/ca-bundle-[0-9a-f]{16}\\.pem$`));
    expect(readFileSync(bundle!.path, "utf8")).toContain(b!.trim());
  });

  it("without CODEX_HOME or a home directory it says so", () => {
    expect(() => codexHome({ env: () => undefined, homeDir: () => undefined })).toThrow("cannot find the home directory for the CA: set CODEX_HOME");
    expect(codexHome({ env: () => undefined, homeDir: () => "/home/u/" })).toBe("/home/u/.codex");
  });
});

describe("the CA variables and the env command", () => {
  it("every variable points at the bundle", () => {
    expect(caEnv({ path: "/h/proxy/ca-bundle.pem", complete: true })).toEqual(Object.fromEntries(CA_BUNDLE_VARIABLES.map((n) => [n, "/h/proxy/ca-bundle.pem"])));
    expect(CA_BUNDLE_VARIABLES).toEqual(expect.arrayContaining(["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT", "DENO_CERT"]));
  });

  it.each([
    [["env"], { kind: "env" }],
    [["env", "--config", "/c.toml"], { kind: "env", config: "/c.toml" }],
    [["env", "-c", "/c.toml"], { kind: "env", config: "/c.toml" }],
    [["env", "--constraints", "/k.toml"], { kind: "env", constraints: "/k.toml" }],
    [["--config", "/c.toml", "env"], { kind: "error", message: 'unknown argument "env"' }],
    [["--config", "/c.toml"], { kind: "run", config: "/c.toml" }],
  ])("parseArgs(%j)", (args, parsed) => {
    expect(parseArgs(args)).toEqual(parsed);
  });

  it.each([
    ["http://127.0.0.1:3128", "'http://127.0.0.1:3128'"],
    ["", "''"],
    ["it's $HOME `x`", `'it'\\''s $HOME \`x\`'`],
  ])("shellQuote(%j) is %s", (value, quoted) => {
    expect(shellQuote(value)).toBe(quoted);
  });
});
