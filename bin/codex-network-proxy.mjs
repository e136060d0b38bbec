#!/usr/bin/env node
// The package's command: runs the Node entry from its TypeScript source through tsx.
import { register } from "tsx/esm/api";

register();
await import("../src/runtimes/node/main.ts");
