/**
 * The CA variables a running library proxy adds to `env()`/`envFor()` (docs/behaviour.md §9.4):
 * the bundle is written when interception is on at `run()`, or as soon as a reload or mode
 * change turns it on; until it exists the variables are left out.
 *
 * @module
 */
import { TARGET, type Logger } from "../log.ts";
import type { Runtime } from "../runtime.ts";
import type { LocalCa } from "./ca.ts";
import { writeTrustBundle } from "./ca-loader.ts";
import { caEnv } from "./ca-env.ts";

/** The trust bundle of one running proxy. */
export class ClientTrust {
  private bundle: string | undefined;
  private preparing: Promise<void> | undefined;

  constructor(
    private readonly rt: TrustRuntime,
    private readonly ca: () => Promise<LocalCa>,
    /** The CA is the one kept in `$CODEX_HOME/proxy` (not the app's). */
    private readonly fromStore: boolean,
    private readonly extraCa: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Write the bundle unless it is written or being written; a failure is logged and retried on the next call. */
  ensure(): Promise<void> {
    if (this.bundle !== undefined) return Promise.resolve();
    this.preparing ??= (async () => {
      try {
        this.bundle = await writeTrustBundle(this.rt, await this.ca(), this.fromStore, this.extraCa, this.log);
        if (this.bundle) this.log.log("info", TARGET.main, `CA bundle for clients: ${this.bundle}`);
      } catch (e) {
        this.log.log("warn", TARGET.main, `no CA bundle for clients, env() leaves the CA variables out: ${(e as Error).message}`);
      } finally {
        this.preparing = undefined;
      }
    })();
    return this.preparing;
  }

  /** The CA variables, or none while there is no bundle. */
  env(): Record<string, string> {
    return this.bundle === undefined ? {} : caEnv(this.bundle);
  }
}

/** A runtime that can hold a bundle: files to write, and its roots. */
export type TrustRuntime = Pick<Runtime, "env" | "homeDir" | "privateFiles" | "readTextFile" | "bundledRoots">;
