import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VERSION } from "../../src/core/version.ts";

describe("version", () => {
  it("matches package.json and deno.json", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    const deno = JSON.parse(readFileSync(new URL("../../deno.json", import.meta.url), "utf8"));
    expect(VERSION).toBe(pkg.version);
    expect(deno.version).toBe(pkg.version);
  });
});
