/**
 * The shipped example (examples/config.toml, what the README's start command runs) stays in step
 * with the code: it loads without an error or a warning, it mentions every `[network]` key, and
 * the README's key table and the commented-out alternatives name only keys that exist.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadConfigFile } from "../../src/core/config/load.ts";
import { readHookSecrets } from "../../src/core/mitm/hook-secrets.ts";
import { parseConfigText } from "../../src/core/config/parse.ts";
import { NETWORK_KEYS } from "../../src/core/config/schema.ts";
import { parseTelemetryConfig } from "../../src/core/config/telemetry.ts";

const EXAMPLE = fileURLToPath(new URL("../../examples/config.toml", import.meta.url));
const README = fileURLToPath(new URL("../../README.md", import.meta.url));
const text = readFileSync(EXAMPLE, "utf8");

describe("examples/config.toml", () => {
  it("loads with its [otel] table, without an error or a warning, and enables the proxy", async () => {
    const loaded = await loadConfigFile({ readTextFile: async () => text }, EXAMPLE, true);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.network.enabled).toBe(true);
    expect(loaded.telemetry?.exporter).toEqual({ kind: "none" });
  });

  it("mentions every [network] key, set or commented out", () => {
    const missing = NETWORK_KEYS.filter((key) => !new RegExp(`^#? ?${key} = `, "m").test(text));
    expect(missing).toEqual([]);
  });

  it("every commented-out key assignment is valid when uncommented", () => {
    const commented = [...text.matchAll(/^# ?([a-z_0-9]+ = .+)$/gm)].map((m) => m[1]!).filter((line) => NETWORK_KEYS.some((k) => line.startsWith(`${k} =`)));
    expect(commented.length).toBeGreaterThan(0);
    for (const line of commented) {
      expect(() => parseConfigText(`[network]\n${line}\n`, EXAMPLE), line).not.toThrow();
    }
  });

  it("every commented-out [otel] exporter is valid when uncommented", () => {
    const exporters = [...text.matchAll(/^# ?(exporter = .+)$/gm)].map((m) => m[1]!);
    expect(exporters.length).toBeGreaterThan(0);
    for (const line of exporters) {
      const { telemetry, warnings } = parseTelemetryConfig(`[otel]\n${line}\n`, EXAMPLE);
      expect(warnings, line).toEqual([]);
      expect(telemetry.exporter.kind, line).not.toBe("none");
    }
  });

  it("the commented-out hook is valid when uncommented (with mitm = true and its secret set)", async () => {
    const block = [...text.matchAll(/^# ?(\[\[network\.mitm_hooks\]\]\n(?:# ?[a-z_.]+ = .+\n)+)/gm)].map((m) => m[1]!.replace(/^# ?/gm, ""));
    expect(block).toHaveLength(1);
    const { network } = parseConfigText(`[network]\nmitm = true\n${block[0]}`, EXAMPLE);
    expect(network.mitm_hooks).toHaveLength(1);
    const secrets = await readHookSecrets(network.mitm_hooks, { env: (n) => (n === "GITHUB_TOKEN" ? "example-token" : undefined) });
    expect(secrets.size).toBe(1);
  });

  it("the README's key table lists exactly the [network] keys", () => {
    const readme = readFileSync(README, "utf8");
    const rows = [...readme.matchAll(/^\| `([a-z_0-9]+)` \| (?:string|bool|integer|string\[\]|array of tables|`"full"` \/ `"limited"`)/gm)].map((m) => m[1]!);
    expect([...rows].sort()).toEqual([...NETWORK_KEYS].sort());
  });
});
