import { defineConfig } from "vitest/config";

/**
 * Inherited by every process the suite starts: Deno must never check for updates (a request
 * off this machine, which would even go through a test's upstream proxy); tests only talk to
 * loopback.
 */
const OFFLINE = { DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" };

/** The e2e files that spawn the standalone proxy: run once per runtime. */
const SPAWNED = ["test/e2e/**/*.test.ts"];
/**
 * E2E files that run once, in the node project: the in-process library tests, and the
 * packaging and single-file-binary tests (they build artefacts for every runtime themselves).
 */
const NODE_ONLY = ["test/e2e/admin-page.test.ts", "test/e2e/library.test.ts", "test/e2e/library-mitm.test.ts", "test/e2e/package.test.ts", "test/e2e/binary.test.ts"];

const e2e = (runtime: "node" | "bun" | "deno") => ({
  extends: true as const,
  test: {
    name: `e2e-${runtime}`,
    include: SPAWNED,
    exclude: runtime === "node" ? [] : NODE_ONLY,
    env: { ...OFFLINE, CNP_E2E_RUNTIME: runtime },
  },
});

export default defineConfig({
  test: {
    env: OFFLINE,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    reporters: ["default", "./test/reporters/summary-line.ts"],
    projects: [{ extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], env: OFFLINE } }, e2e("node"), e2e("bun"), e2e("deno")],
  },
});
