/**
 * codex-network-proxy as a library on Node: `NetworkProxy.builder()` preset with the Node
 * adapter, plus the core's types and the admin app.
 *
 * ```ts
 * import { NetworkProxy } from "codex-network-proxy";
 * const proxy = await NetworkProxy.builder().config({ allowed_domains: ["example.com"] }).httpAddr("127.0.0.1:0").build();
 * const handle = await proxy.run();
 * // spawn children with handle.env() … then:
 * await handle.shutdown();
 * ```
 *
 * @module
 */
import { NetworkProxy as CoreNetworkProxy, type NetworkProxyBuilder } from "../../core/api/proxy.ts";
import type { Runtime } from "../../core/runtime.ts";
import { nodeNet } from "./net.ts";
import { nodeRuntime } from "./runtime.ts";

/** An embeddable proxy on Node. */
export class NetworkProxy extends CoreNetworkProxy {
  /**
   * A builder on `runtime`, by default Node's own (`nodeRuntime`). Pass another {@link Runtime} to
   * change what the proxy sees, e.g. `{ ...nodeRuntime, env: (name) => myEnv[name] }`.
   */
  static override builder(runtime: Runtime = nodeRuntime): NetworkProxyBuilder {
    return CoreNetworkProxy.builder(runtime);
  }
}

export * from "../shared/library-exports.ts";
export { nodeNet, nodeRuntime };
