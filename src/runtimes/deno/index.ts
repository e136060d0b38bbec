/**
 * codex-network-proxy as a library on Deno (`import { NetworkProxy } from "codex-network-proxy/deno"`,
 * or the JSR package): `NetworkProxy.builder()` preset with the Deno adapter, plus the core's API.
 *
 * @module
 */
import { NetworkProxy as CoreNetworkProxy, type NetworkProxyBuilder, type ProxyRuntime } from "../../core/api/proxy.ts";
import { denoNet } from "./net.ts";

/** The Deno runtime capabilities. */
export const denoRuntime: ProxyRuntime = {
  net: denoNet,
  async readTextFile(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  },
  env: (name) => Deno.env.get(name),
};

/** An embeddable proxy on Deno. */
export class NetworkProxy extends CoreNetworkProxy {
  /** A builder preset with the Deno adapter. */
  static override builder(): NetworkProxyBuilder {
    return CoreNetworkProxy.builder(denoRuntime);
  }
}

export { createAdminApp, type AdminOptions } from "../../core/admin/app.ts";
export type { BrowserGuardOptions } from "../../core/admin/browser-guard.ts";
export type { NetworkConstraints } from "../../core/config/constraints.ts";
export type { CommandAttribution, NetworkProxyBuilder, NetworkProxyHandle, ProxyRuntime } from "../../core/api/proxy.ts";
export * from "../../core/index.ts";
export { denoNet };
