/**
 * codex-network-proxy as a library on Bun (`import { NetworkProxy } from "codex-network-proxy/bun"`):
 * `NetworkProxy.builder()` preset with the Bun adapter, plus the core's API.
 *
 * @module
 */
import { NetworkProxy as CoreNetworkProxy, type NetworkProxyBuilder, type ProxyRuntime } from "../../core/api/proxy.ts";
import { readTextFile } from "../node/host.ts";
import { bunNet } from "./net.ts";

/** The Bun runtime capabilities (files through Bun's node:fs). */
export const bunRuntime: ProxyRuntime = {
  net: bunNet,
  readTextFile,
  env: (name) => process.env[name],
};

/** An embeddable proxy on Bun. */
export class NetworkProxy extends CoreNetworkProxy {
  /** A builder preset with the Bun adapter. */
  static override builder(): NetworkProxyBuilder {
    return CoreNetworkProxy.builder(bunRuntime);
  }
}

export { createAdminApp, type AdminOptions } from "../../core/admin/app.ts";
export type { BrowserGuardOptions } from "../../core/admin/browser-guard.ts";
export type { NetworkConstraints } from "../../core/config/constraints.ts";
export type { CommandAttribution, NetworkProxyBuilder, NetworkProxyHandle, ProxyRuntime } from "../../core/api/proxy.ts";
export * from "../../core/index.ts";
export { bunNet };
