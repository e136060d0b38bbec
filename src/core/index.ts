/**
 * The runtime-neutral core of codex-network-proxy: configuration, policy, live state and the
 * proxy server, to be driven with a runtime adapter's {@link Net} (`src/runtimes/<runtime>/net.ts`).
 *
 * @module
 */
export type { DecisionRecord, DecisionScope, DecisionSink } from "./audit/events.ts";
export { BLOCKED_RING_SIZE, type BlockedEntry } from "./audit/blocked.ts";
export {
  AUDIT_LOGGER_NAME,
  BLOCK_DECISION_EVENT,
  DOMAIN_POLICY_EVENT,
  auditAttributes,
  createAuditSink,
  type AuditMetadata,
  type AuditSinkOptions,
} from "./audit/otel.ts";
export { planListeners, parseListenUrl } from "./config/listen-url.ts";
export { parseConfigText } from "./config/parse.ts";
export { ConfigError, defaultNetworkConfig, type ListenPlan, type LoadedConfig, type NetworkConfig, type NetworkMode } from "./config/types.ts";
export { createLineLogger, silentLogger, type Logger, type LogLevel } from "./log.ts";
export { DialError, type Conn, type DatagramSocket, type Listener, type Net, type NetAddr } from "./net/contract.ts";
export { PolicyEngine, type NetworkDecision, type NetworkPolicyRequest, type PolicyDecider } from "./policy/decide.ts";
export { PatternError } from "./policy/patterns.ts";
export type { BlockReason, DecisionSource, HostVerdict, ProxyProtocol } from "./policy/types.ts";
export { startProxy, type ProxyAddresses, type ProxyServerOptions, type RunningProxy } from "./server.ts";
export { loadConfigFile } from "./config/load.ts";
export { ProxyState, StateChangeError, type ConfigSource, type ProxySnapshot, type ProxyStateOptions } from "./state.ts";
export { VERSION } from "./version.ts";
export type { CaMaterial } from "./mitm/ca-loader.ts";
