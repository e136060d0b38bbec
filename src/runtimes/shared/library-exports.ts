/**
 * What every runtime's library entry (`src/runtimes/<runtime>/index.ts`) exports besides its
 * preset `NetworkProxy`: the admin app, the core's API and the types an embedder names.
 *
 * @module
 */
export { createAdminApp, type AdminOptions } from "../../core/admin/app.ts";
export type { BrowserGuardOptions } from "../../core/admin/browser-guard.ts";
export type { NetworkConstraints } from "../../core/config/constraints.ts";
export type { CommandAttribution, NetworkProxyBuilder, NetworkProxyHandle, ProxyRuntime } from "../../core/api/proxy.ts";
export type { AuditExport, PathKind, Runtime, StandaloneRuntime } from "../../core/runtime.ts";
export * from "../../core/index.ts";
