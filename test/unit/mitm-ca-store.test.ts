/**
 * Where the local CA is kept (src/core/mitm/ca-store.ts) on real files in a temp dir: created on
 * first need with the key 0600 (exclusively), the certificate 0644 and the directory 0700, loaded
 * back afterwards; a key that is a symbolic link, not a regular file or open to group or others
 * is refused with its path and mode and never read; one file without the other is refused and
 * nothing is overwritten; two processes starting at once end with one CA. The same through Bun
 * (node:fs) and Deno (Deno's file API).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CA_KEY_MODE, caPaths, CaStoreError, formatMode, loadOrCreateCa, type PrivateFiles } from "../../src/core/mitm/ca-store.ts";
import { nodePrivateFiles } from "../../src/runtimes/shared/process-runtime.ts";

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "cnp-ca-home-"));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

const mode = (path: string): string => formatMode(statSync(path).mode);

/** The node files, recording which paths were read. */
function recording(): { files: PrivateFiles; reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    files: {
      ...nodePrivateFiles,
      readText: (p) => {
        reads.push(p);
        return nodePrivateFiles.readText(p);
      },
    },
  };
}

describe("loadOrCreateCa", () => {
  it("creates the CA on first need (key 0600, certificate 0644, directory 0700) and loads it back", async () => {
    const paths = caPaths(home);
    expect(paths).toEqual({ dir: `${home}/proxy`, cert: `${home}/proxy/ca.pem`, key: `${home}/proxy/ca.key` });
    const made = await loadOrCreateCa(nodePrivateFiles, home);
    expect(mode(paths.key)).toBe("0600");
    expect(mode(paths.cert)).toBe("0644");
    expect(mode(paths.dir)).toBe("0700");
    expect(readFileSync(paths.cert, "utf8")).toBe(made.certPem);
    expect(readFileSync(paths.key, "utf8")).toBe(made.keyPem);
    const loaded = await loadOrCreateCa(nodePrivateFiles, home);
    expect(loaded.certPem).toBe(made.certPem);
    expect(CA_KEY_MODE).toBe(0o600);
  });

  it.each([0o640, 0o604, 0o660, 0o644, 0o700 | 0o007])("refuses a key with mode %o, naming its path and mode, without reading it", async (bad) => {
    const { key } = caPaths(home);
    await loadOrCreateCa(nodePrivateFiles, home);
    chmodSync(key, bad);
    const { files, reads } = recording();
    const failure = loadOrCreateCa(files, home);
    await expect(failure).rejects.toThrow(CaStoreError);
    await expect(failure).rejects.toThrow(`${key} has mode ${formatMode(bad)}, open to group or others; the CA key must be 0600 (chmod 600 ${key})`);
    expect(reads).toEqual([]);
  });

  it("refuses a key that is a symbolic link (even to a 0600 file), without reading it", async () => {
    const { key, dir } = caPaths(home);
    await loadOrCreateCa(nodePrivateFiles, home);
    const elsewhere = join(home, "elsewhere.key");
    writeFileSync(elsewhere, readFileSync(key), { mode: 0o600 });
    rmSync(key);
    symlinkSync(elsewhere, key);
    const { files, reads } = recording();
    await expect(loadOrCreateCa(files, home)).rejects.toThrow(`${key} is a symbolic link; the CA key must be a regular file with mode 0600`);
    expect(reads).toEqual([]);
    expect(existsSync(dir)).toBe(true);
  });

  it("refuses a CA directory writable by group or others, or that is a symbolic link", async () => {
    const { dir } = caPaths(home);
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o777);
    await expect(loadOrCreateCa(nodePrivateFiles, home)).rejects.toThrow(`${dir} has mode 0777, writable by group or others; the CA directory must not be (chmod 700 ${dir})`);
    expect(existsSync(caPaths(home).key)).toBe(false);
    rmSync(dir, { recursive: true });
    const elsewhere = join(home, "elsewhere");
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, dir);
    await expect(loadOrCreateCa(nodePrivateFiles, home)).rejects.toThrow(`${dir} is a symbolic link; the CA directory must be a real directory with mode 0700`);
  });

  it("refuses a key that is a directory", async () => {
    const { key, cert } = caPaths(home);
    mkdirSync(key, { recursive: true });
    writeFileSync(cert, "x");
    await expect(loadOrCreateCa(nodePrivateFiles, home)).rejects.toThrow(`${key} is not a regular file (dir)`);
  });

  it("refuses a certificate without its key, and a key without its certificate, overwriting nothing", async () => {
    const { key, cert } = caPaths(home);
    await loadOrCreateCa(nodePrivateFiles, home);
    const certText = readFileSync(cert, "utf8");
    const keyText = readFileSync(key, "utf8");
    rmSync(key);
    await expect(loadOrCreateCa(nodePrivateFiles, home)).rejects.toThrow(`${cert} exists but ${key} is missing`);
    expect(readFileSync(cert, "utf8")).toBe(certText);
    expect(existsSync(key)).toBe(false);
    writeFileSync(key, keyText, { mode: 0o600 });
    rmSync(cert);
    await expect(loadOrCreateCa(nodePrivateFiles, home)).rejects.toThrow(`${key} exists but ca.pem is missing at ${cert}`);
    expect(readFileSync(key, "utf8")).toBe(keyText);
    expect(existsSync(cert)).toBe(false);
  });

  it("a key that is no CA key is refused naming both files", async () => {
    const { key, cert } = caPaths(home);
    await loadOrCreateCa(nodePrivateFiles, home);
    writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", { mode: 0o600 });
    await expect(loadOrCreateCa(nodePrivateFiles, home)).rejects.toThrow(`${cert} / ${key}: the CA key is not an ECDSA P-256 key in PKCS#8 PEM`);
  });

  it("two starting at once end up with one CA", async () => {
    const all = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateCa(nodePrivateFiles, home)));
    const certs = new Set(all.map((ca) => ca.certPem));
    expect(certs.size).toBe(1);
    expect(readFileSync(caPaths(home).cert, "utf8")).toBe(all[0]!.certPem);
  });
});

describe("the runtimes' private files", () => {
  const script = (runtimeModule: string, exportName: string, caHome: string) =>
    `const { ${exportName}: files } = await import(${JSON.stringify(runtimeModule)});
const { loadOrCreateCa } = await import(${JSON.stringify(join(process.cwd(), "src/core/mitm/ca-store.ts"))});
const ca = await loadOrCreateCa(files, ${JSON.stringify(caHome)});
const again = await loadOrCreateCa(files, ${JSON.stringify(caHome)});
console.log(JSON.stringify({ same: ca.certPem === again.certPem }));`;

  it.each([
    ["bun", "src/runtimes/shared/process-runtime.ts", "nodePrivateFiles", (f: string) => [join(process.cwd(), "node_modules/.bin/bun"), [f]] as const],
    ["deno", "src/runtimes/deno/runtime.ts", "denoPrivateFiles", (f: string) => [join(process.cwd(), "node_modules/deno/deno"), ["run", "-A", "--quiet", f]] as const],
  ])("%s creates the CA with the same modes and refuses an open key", (name, module, exportName, command) => {
    const file = join(process.cwd(), `.ca-check-${process.pid}-${name}.mts`);
    writeFileSync(file, script(join(process.cwd(), module), exportName, home));
    try {
      const [bin, args] = command(file);
      const run = () => execFileSync(bin, [...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" } });
      expect(JSON.parse(run())).toEqual({ same: true });
      const { key, cert, dir } = caPaths(home);
      expect([mode(key), mode(cert), mode(dir)]).toEqual(["0600", "0644", "0700"]);
      chmodSync(key, 0o640);
      let message = "";
      try {
        run();
      } catch (e) {
        message = String((e as { stderr?: string }).stderr);
      }
      expect(message).toContain(`${key} has mode 0640, open to group or others`);
    } finally {
      rmSync(file, { force: true });
    }
  }, 30_000);
});
