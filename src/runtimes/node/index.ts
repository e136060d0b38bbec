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
import { NetworkProxy as CoreNetworkProxy, type NetworkProxyBuilder, type ProxyRuntime } from "../../core/api/proxy.ts";
import { readTextFile } from "./host.ts";
import { nodeNet } from "./net.ts";

/** The Node runtime capabilities. */
export const nodeRuntime: ProxyRuntime = {
  net: nodeNet,
  readTextFile,
  env: (name) => process.env[name],
};

/** An embeddable proxy on Node. */
export class NetworkProxy extends CoreNetworkProxy {
  /** A builder preset with the Node adapter. */
  static override builder(): NetworkProxyBuilder {
    return CoreNetworkProxy.builder(nodeRuntime);
  }
}

export { createAdminApp, type AdminOptions } from "../../core/admin/app.ts";
export type { BrowserGuardOptions } from "../../core/admin/browser-guard.ts";
export type { NetworkConstraints } from "../../core/config/constraints.ts";
export type { CommandAttribution, NetworkProxyBuilder, NetworkProxyHandle, ProxyRuntime } from "../../core/api/proxy.ts";
export * from "../../core/index.ts";
export { nodeNet };
