/**
 * codex-network-proxy as a library on Bun (`import { NetworkProxy } from "codex-network-proxy/bun"`):
 * `NetworkProxy.builder()` preset with the Bun adapter, plus the core's API.
 *
 * @module
 */
import { NetworkProxy as CoreNetworkProxy, type NetworkProxyBuilder } from "../../core/api/proxy.ts";
import type { Runtime } from "../../core/runtime.ts";
import { bunNet } from "./net.ts";
import { bunRuntime } from "./runtime.ts";

/** An embeddable proxy on Bun. */
export class NetworkProxy extends CoreNetworkProxy {
  /**
   * A builder on `runtime`, by default Bun's own (`bunRuntime`). Pass another {@link Runtime} to
   * change what the proxy sees, e.g. `{ ...bunRuntime, env: (name) => myEnv[name] }`.
   */
  static override builder(runtime: Runtime = bunRuntime): NetworkProxyBuilder {
    return CoreNetworkProxy.builder(runtime);
  }
}

export * from "../shared/library-exports.ts";
export { bunNet, bunRuntime };
