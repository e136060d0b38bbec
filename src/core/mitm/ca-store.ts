/**
 * Where the local CA lives: `$CODEX_HOME/proxy/ca.pem` (the certificate) and `ca.key` (its
 * PKCS#8 key), created on first need (issue 13, item 2). The key file is created exclusively
 * (`O_EXCL`) with mode 0600 in a directory made with 0700. An existing key that is a symbolic
 * link, not a regular file, or readable or writable by group or others is refused with an error
 * naming its path and mode, and never read; so is a directory that is a symbolic link or writable
 * by group or others. A certificate without its key, or a key without its certificate, is
 * refused too: nothing is ever overwritten.
 *
 * File access goes through {@link PrivateFiles}, which each runtime adapter provides.
 *
 * @module
 */
import { CaError, LocalCa } from "./ca.ts";

/** Directory under `$CODEX_HOME` that holds the CA. */
export const CA_DIR_NAME = "proxy";
/** The CA certificate's file name. */
export const CA_CERT_FILE = "ca.pem";
/** The CA key's file name. */
export const CA_KEY_FILE = "ca.key";
/** Mode of the CA key file: read and write for its owner only. */
export const CA_KEY_MODE = 0o600;
/** Mode of the CA certificate file (public). */
export const CA_CERT_MODE = 0o644;
/** Mode of the directory made for the CA. */
export const CA_DIR_MODE = 0o700;
/** Permission bits of group and others: none may be set on the key. */
const GROUP_OTHER_BITS = 0o077;

/** What is at a path, not following a symbolic link there. */
export interface PathStat {
  readonly kind: "file" | "dir" | "symlink" | "other";
  /** Permission bits (`mode & 0o777`). */
  readonly mode: number;
}

/** The file operations the CA store needs; each runtime adapter provides them. */
export interface PrivateFiles {
  /** What is at `path` itself (a symbolic link is reported, not followed); `null` when nothing is. */
  lstat(path: string): Promise<PathStat | null>;
  /** File contents, or `null` when the file does not exist. */
  readText(path: string): Promise<string | null>;
  /** Create `path` holding `text` with `mode`; `false`, writing nothing, when anything is already there. */
  createExclusive(path: string, text: string, mode: number): Promise<boolean>;
  /** Make directory `path` and missing parents with `mode`; nothing when it exists. */
  mkdirp(path: string, mode: number): Promise<void>;
  /**
   * Replace `path` with `text` and `mode` atomically: written to a new file beside it, then
   * renamed over it (a symbolic link there is replaced, never followed).
   */
  replaceText(path: string, text: string, mode: number): Promise<void>;
  /** Remove the file at `path`; nothing when there is none. */
  remove(path: string): Promise<void>;
}

/** The CA store refused its files: says which path and what is wrong. */
export class CaStoreError extends Error {
  override readonly name = "CaStoreError";
}

/** `0600`-style text of permission bits. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}

/** Where the CA's files are for `codexHome`. */
export function caPaths(codexHome: string): { dir: string; cert: string; key: string } {
  const dir = `${codexHome.replace(/\/+$/, "")}/${CA_DIR_NAME}`;
  return { dir, cert: `${dir}/${CA_CERT_FILE}`, key: `${dir}/${CA_KEY_FILE}` };
}

/**
 * The CA kept under `codexHome`, created there when neither file exists. Throws
 * {@link CaStoreError} naming the path when a file is unsafe, missing its pair, or unreadable
 * as a CA. Two processes starting at once end up with the same CA: the one that loses the
 * exclusive create loads the winner's.
 */
export async function loadOrCreateCa(files: PrivateFiles, codexHome: string, now: () => number = Date.now): Promise<LocalCa> {
  const paths = caPaths(codexHome);
  await checkDirectory(files, paths.dir);
  const existing = await load(files, paths, now);
  if (existing) return existing;
  await files.mkdirp(paths.dir, CA_DIR_MODE);
  const ca = await LocalCa.generate(now);
  if (!(await files.createExclusive(paths.key, ca.keyPem, CA_KEY_MODE))) {
    // another process created it meanwhile: use that one (its certificate may follow shortly)
    for (let attempt = 0; ; attempt++) {
      try {
        const theirs = await load(files, paths, now);
        if (theirs) return theirs;
      } catch (e) {
        if (!(e instanceof CaStoreError) || !e.message.includes(`${CA_CERT_FILE} is missing`) || attempt >= CREATE_RACE_ATTEMPTS) throw e;
      }
      await new Promise((r) => setTimeout(r, CREATE_RACE_PAUSE_MS));
    }
  }
  if (!(await files.createExclusive(paths.cert, ca.certPem, CA_CERT_MODE))) {
    throw new CaStoreError(`${paths.cert} appeared while its key was being created; remove both ${paths.cert} and ${paths.key} to start over`);
  }
  return ca;
}

/**
 * The CA's directory, when it exists, must be a real directory nobody else can write to: in a
 * directory others may write, the key could be swapped between its check and its read.
 */
export async function checkDirectory(files: PrivateFiles, dir: string): Promise<void> {
  const st = await files.lstat(dir);
  if (st === null) return;
  if (st.kind === "symlink") throw new CaStoreError(`${dir} is a symbolic link; the CA directory must be a real directory with mode 0700`);
  if (st.kind !== "dir") throw new CaStoreError(`${dir} is not a directory (${st.kind})`);
  if ((st.mode & GROUP_OTHER_WRITE_BITS) !== 0) {
    throw new CaStoreError(`${dir} has mode ${formatMode(st.mode)}, writable by group or others; the CA directory must not be (chmod 700 ${dir})`);
  }
}

/** Write permission of group and others: none may be set on the CA's directory. */
const GROUP_OTHER_WRITE_BITS = 0o022;

/** Tries to read the other process's certificate after losing the race to create the key. */
const CREATE_RACE_ATTEMPTS = 20;
/** Pause between those tries. */
const CREATE_RACE_PAUSE_MS = 50;

/** The CA in `paths`, `undefined` when neither file exists. */
async function load(files: PrivateFiles, paths: { cert: string; key: string }, now: () => number): Promise<LocalCa | undefined> {
  const key = await files.lstat(paths.key);
  const cert = await files.lstat(paths.cert);
  if (key === null && cert === null) return undefined;
  if (key === null) throw new CaStoreError(`${paths.cert} exists but ${paths.key} is missing; restore the key or remove ${paths.cert} to make a new CA`);
  if (key.kind === "symlink") throw new CaStoreError(`${paths.key} is a symbolic link; the CA key must be a regular file with mode 0600`);
  if (key.kind !== "file") throw new CaStoreError(`${paths.key} is not a regular file (${key.kind})`);
  if ((key.mode & GROUP_OTHER_BITS) !== 0) {
    throw new CaStoreError(`${paths.key} has mode ${formatMode(key.mode)}, open to group or others; the CA key must be 0600 (chmod 600 ${paths.key})`);
  }
  if (cert === null) throw new CaStoreError(`${paths.key} exists but ${CA_CERT_FILE} is missing at ${paths.cert}; restore it or remove ${paths.key} to make a new CA`);
  const [keyPem, certPem] = await Promise.all([files.readText(paths.key), files.readText(paths.cert)]);
  if (keyPem === null || certPem === null) throw new CaStoreError(`${keyPem === null ? paths.key : paths.cert} disappeared while it was being read`);
  try {
    return await LocalCa.fromPem(certPem, keyPem, now);
  } catch (e) {
    if (e instanceof CaError) throw new CaStoreError(`${paths.cert} / ${paths.key}: ${e.message}`, { cause: e });
    throw e;
  }
}
