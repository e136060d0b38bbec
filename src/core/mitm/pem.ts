/**
 * PEM armour (RFC 7468) for the local CA's certificates and keys: DER bytes to base64 text
 * between `-----BEGIN LABEL-----` and `-----END LABEL-----`, and back. Web-standard `btoa`/`atob`
 * only, so it runs in the runtime-neutral core.
 *
 * @module
 */

/** The labels the local CA reads and writes. */
export type PemLabel = "CERTIFICATE" | "PRIVATE KEY";

/** Characters per base64 line (RFC 7468 §2). */
const PEM_LINE_CHARS = 64;

/** Bytes turned into a binary string per step (keeps `String.fromCharCode` arguments bounded). */
const BINARY_CHUNK_BYTES = 0x8000;

/** PEM text that could not be read: says which label was expected and what was wrong. */
export class PemError extends Error {
  override readonly name = "PemError";
}

/** `der` as PEM text with `label`, lines of 64 characters, ending in a newline. */
export function toPem(der: ArrayBuffer | Uint8Array, label: PemLabel): string {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  let binary = "";
  for (let i = 0; i < bytes.length; i += BINARY_CHUNK_BYTES) binary += String.fromCharCode(...bytes.subarray(i, i + BINARY_CHUNK_BYTES));
  const b64 = btoa(binary);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += PEM_LINE_CHARS) lines.push(b64.slice(i, i + PEM_LINE_CHARS));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/**
 * The DER bytes of the first `label` block in `text`. Throws {@link PemError} when there is no
 * such block or its body is not base64.
 */
export function fromPem(text: string, label: PemLabel): Uint8Array<ArrayBuffer> {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const from = text.indexOf(begin);
  const to = from < 0 ? -1 : text.indexOf(end, from + begin.length);
  if (from < 0 || to < 0) throw new PemError(`no "${begin}" … "${end}" block found`);
  const body = text.slice(from + begin.length, to).replace(/\s+/g, "");
  let binary: string;
  try {
    binary = atob(body);
  } catch (e) {
    throw new PemError(`the ${label} block is not valid base64`, { cause: e });
  }
  if (binary.length === 0) throw new PemError(`the ${label} block is empty`);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/**
 * Every `label` block in `text` (a bundle), each in one canonical spelling: base64 without
 * whitespace, re-wrapped at 64 characters, no trailing newline. Text between blocks (comments,
 * other labels) is left out. A damaged block is left out too, never merged with the next: one
 * whose `BEGIN` is followed by another `BEGIN` before its `END`, one without an `END`, and one
 * whose body is not base64 (tools reading the bundle would fail on every site otherwise).
 */
export function splitPemBlocks(text: string, label: PemLabel): string[] {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const blocks: string[] = [];
  let from = text.indexOf(begin);
  while (from >= 0) {
    const to = text.indexOf(end, from + begin.length);
    if (to < 0) break;
    const next = text.indexOf(begin, from + begin.length);
    if (next >= 0 && next < to) {
      from = next; // this block has no END of its own
      continue;
    }
    const body = text.slice(from + begin.length, to).replace(/\s+/g, "");
    if (isBase64(body)) {
      const lines: string[] = [];
      for (let i = 0; i < body.length; i += PEM_LINE_CHARS) lines.push(body.slice(i, i + PEM_LINE_CHARS));
      blocks.push(`${begin}\n${lines.join("\n")}\n${end}`);
    }
    from = text.indexOf(begin, to + end.length);
  }
  return blocks;
}

/** Non-empty, padded base64 that decodes. */
function isBase64(body: string): boolean {
  if (body === "" || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return false;
  try {
    atob(body);
    return true;
  } catch {
    return false;
  }
}
