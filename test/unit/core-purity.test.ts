/**
 * `src/core` must run unchanged on Node, Bun and Deno: it may not import runtime modules or
 * reach for runtime globals. Capabilities come in as arguments from `src/runtimes/*`.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const coreDir = join(root, "src", "core");

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Source with comments and string contents blanked, so prose never trips the check. */
export function codeOnly(src: string): string {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1")
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, "``")
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''");
}

/** Every way a core file could depend on a runtime. */
export function runtimeLeaks(src: string): string[] {
  const found: string[] = [];
  const imports = [...src.matchAll(/(?:from\s+|import\s*\(\s*|import\s+|require\s*\(\s*)["']([^"']+)["']/g)].map((m) => m[1]!);
  for (const spec of imports) {
    if (spec.startsWith("node:") || spec === "bun" || spec.startsWith("bun:") || spec.startsWith("deno:")) found.push(`imports ${spec}`);
    if (/^(fs|net|dns|dgram|os|path|tls|http|https|child_process|stream|buffer|crypto|url|util|events)(\/|$)/.test(spec)) {
      found.push(`imports Node builtin ${spec}`);
    }
  }
  const code = codeOnly(src);
  for (const g of ["Deno", "Bun", "process", "Buffer", "require", "__dirname", "__filename", "global"]) {
    if (new RegExp(`(?<![.\\w$])${g}(?![\\w$])`).test(code)) found.push(`uses ${g}`);
  }
  return found;
}

describe("core purity", () => {
  const files = tsFiles(coreDir);

  it("finds the core sources", () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files.map((f) => [relative(root, f), f]))("%s uses no runtime module or global", (_name, file) => {
    expect(runtimeLeaks(readFileSync(file, "utf8"))).toEqual([]);
  });

  it("the checker catches each kind of leak", () => {
    expect(runtimeLeaks(`import { x } from "node:net";`)).toContain("imports node:net");
    expect(runtimeLeaks(`import * as b from 'bun';`)).toContain("imports bun");
    expect(runtimeLeaks(`const d = await import("node:fs");`)).toContain("imports node:fs");
    expect(runtimeLeaks(`import fs from "fs";`)).toContain("imports Node builtin fs");
    expect(runtimeLeaks(`Deno.listen({ port: 1 });`)).toContain("uses Deno");
    expect(runtimeLeaks(`Bun.connect({});`)).toContain("uses Bun");
    expect(runtimeLeaks(`const e = process.env.X;`)).toContain("uses process");
    expect(runtimeLeaks(`const b = Buffer.from("x");`)).toContain("uses Buffer");
    expect(runtimeLeaks(`// process.env in a comment\nconst s = "Buffer";`)).toEqual([]);
    expect(runtimeLeaks(`const x = obj.process;`)).toEqual([]);
  });
});
