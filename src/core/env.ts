/**
 * The environment a child process needs to send its traffic through the proxy (docs/behaviour.md
 * §9): the conventional variables in both cases, SOCKS5 for everything else when enabled, and
 * the tool-specific spellings npm, yarn and pip read. `NO_PROXY` is set empty so an inherited
 * value cannot send a child around the proxy.
 *
 * @module
 */
import { formatAddr, type NetAddr } from "./net/contract.ts";

/** Where the child should send its traffic. */
export interface ProxyEndpoints {
  readonly http: NetAddr;
  readonly socks5?: NetAddr;
}

/** Child-process variables for `endpoints`; `credential` (if any) goes into every URL. */
export function proxyEnv(endpoints: ProxyEndpoints, credential?: string): Record<string, string> {
  const user = credential === undefined ? "" : `${encodeURIComponent(credential)}@`;
  const http = `http://${user}${formatAddr(connectable(endpoints.http))}`;
  const env: Record<string, string> = {
    HTTP_PROXY: http,
    HTTPS_PROXY: http,
    http_proxy: http,
    https_proxy: http,
    NO_PROXY: "",
    no_proxy: "",
    npm_config_proxy: http,
    npm_config_https_proxy: http,
    YARN_HTTP_PROXY: http,
    YARN_HTTPS_PROXY: http,
    PIP_PROXY: http,
  };
  if (endpoints.socks5) {
    const socks = `socks5h://${user}${formatAddr(connectable(endpoints.socks5))}`;
    env.ALL_PROXY = socks;
    env.all_proxy = socks;
  }
  return env;
}

/** A listener bound on every address is reached at loopback. */
function connectable(addr: NetAddr): NetAddr {
  if (addr.host === "0.0.0.0") return { host: "127.0.0.1", port: addr.port };
  if (addr.host === "::") return { host: "::1", port: addr.port };
  return addr;
}
