#!/usr/bin/env node
// The package's command: the Node entry, as built JavaScript (`npm run build`, run by `npm ci`,
// `npm install` of a git checkout and `npm pack`). TypeScript is never compiled at startup.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/lib/runtimes/node/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(`codex-network-proxy: ${fileURLToPath(entry)} is missing; run \`npm run build\` in the package first\n`);
  process.exit(1);
}
await import(entry.href);
