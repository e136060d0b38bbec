/**
 * Prints plain closing lines after vitest's own summary: every skipped test by name (each skip
 * states its reason there), one line per project (unit, and the e2e suite on each runtime),
 * then the total as `Tests: N passed, N failed[, N skipped]`, so CI
 * logs state the outcome per runtime in a runner-neutral form.
 */
import type { Reporter, TestModule } from "vitest/node";

type Counts = { passed: number; failed: number; skipped: number };

const line = (c: Counts): string => `${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ""}`;

export default class SummaryLineReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const total: Counts = { passed: 0, failed: 0, skipped: 0 };
    const byProject = new Map<string, Counts>();
    const skippedNames: string[] = [];
    for (const m of testModules) {
      const name = m.project.name || "default";
      const counts = byProject.get(name) ?? { passed: 0, failed: 0, skipped: 0 };
      byProject.set(name, counts);
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        const key = state === "passed" ? "passed" : state === "failed" ? "failed" : "skipped";
        counts[key]++;
        total[key]++;
        if (key === "skipped") skippedNames.push(`${name}: ${t.fullName}`);
      }
    }
    let out = "\n";
    // A skip must say why, in its name: print them all so CI logs show every reason.
    for (const n of skippedNames) out += `skipped: ${n}\n`;
    if (byProject.size > 1) for (const [name, c] of [...byProject].sort()) out += `${name}: ${line(c)}\n`;
    process.stdout.write(`${out}Tests: ${line(total)}\n`);
  }
}
