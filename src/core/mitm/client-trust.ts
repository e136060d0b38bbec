/**
 * The CA variables a running library proxy adds to `env()`/`envFor()` (docs/behaviour.md §9.4):
 * the bundle is written when interception is on at `run()`, or as soon as a reload or mode
 * change turns it on. The variables are there while interception is on and the bundle exists.
 * A bundle made for an app's own CA is removed at shutdown (one per CA would pile up otherwise).
 *
 * @module
 */
import { TARGET, type Logger } from "../log.ts";
import type { LocalCa } from "./ca.ts";
import { writeTrustBundle, type TrustBundle, type TrustRuntime } from "./ca-loader.ts";
import { caEnv } from "./ca-env.ts";

/** The trust bundle of one running proxy. */
export class ClientTrust {
  private bundle: TrustBundle | undefined;
  private preparing: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly rt: TrustRuntime,
    private readonly ca: () => Promise<LocalCa>,
    /** The CA is the one kept in `$CODEX_HOME/proxy` (not the app's). */
    private readonly fromStore: boolean,
    /** Interception is on now (the bundle's variables are offered only then). */
    private readonly active: () => boolean,
    private readonly log: Logger,
  ) {}

  /** Write the bundle unless it is written or being written; a failure is logged and retried on the next call. */
  ensure(): Promise<void> {
    if (this.bundle !== undefined || this.closed) return Promise.resolve();
    this.preparing ??= (async () => {
      try {
        const bundle = await writeTrustBundle(this.rt, await this.ca(), this.fromStore, this.log);
        if (this.closed) return void (bundle && !this.fromStore && (await this.rt.privateFiles?.remove(bundle.path)));
        this.bundle = bundle;
        if (bundle) this.log.log("info", TARGET.main, `CA bundle for clients: ${bundle.path}`);
      } catch (e) {
        if (!this.closed) this.log.log("warn", TARGET.main, `no CA bundle for clients, env() leaves the CA variables out: ${(e as Error).message}`);
      } finally {
        this.preparing = undefined;
      }
    })();
    return this.preparing;
  }

  /** The CA variables, or none while interception is off or there is no bundle. */
  env(): Record<string, string> {
    return this.bundle === undefined || !this.active() ? {} : caEnv(this.bundle);
  }

  /** Stop: no more writing; an app CA's bundle is removed (a failure to is logged). */
  async close(): Promise<void> {
    this.closed = true;
    await this.preparing;
    const bundle = this.bundle;
    this.bundle = undefined;
    if (bundle && !this.fromStore) {
      await this.rt.privateFiles?.remove(bundle.path).catch((e: Error) => this.log.log("warn", TARGET.main, `cannot remove ${bundle.path}: ${e.message}`));
    }
  }
}
