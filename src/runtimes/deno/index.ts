/**
 * codex-network-proxy as a library on Deno (`import { NetworkProxy } from "codex-network-proxy/deno"`,
 * or the JSR package): `NetworkProxy.builder()` preset with the Deno adapter, plus the core's API.
 *
 * @module
 */
import { NetworkProxy as CoreNetworkProxy, type NetworkProxyBuilder } from "../../core/api/proxy.ts";
import type { Runtime } from "../../core/runtime.ts";
import { denoNet } from "./net.ts";
import { denoRuntime } from "./runtime.ts";

/** An embeddable proxy on Deno. */
export class NetworkProxy extends CoreNetworkProxy {
  /**
   * A builder on `runtime`, by default Deno's own (`denoRuntime`). Pass another {@link Runtime} to
   * change what the proxy sees, e.g. `{ ...denoRuntime, env: (name) => myEnv[name] }`.
   */
  static override builder(runtime: Runtime = denoRuntime): NetworkProxyBuilder {
    return CoreNetworkProxy.builder(runtime);
  }
}

export * from "../shared/library-exports.ts";
export { denoNet, denoRuntime };
