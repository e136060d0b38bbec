/**
 * Per-command attribution: the embedding app hands a child process proxy URLs that carry a
 * random credential (`http://<token>@127.0.0.1:3128`); requests presenting it reach the policy
 * decider with that command and exec-policy hint. Unknown or absent credentials are simply
 * unattributed, never a reason to allow. Tokens never appear in logs, events or `/blocked`.
 *
 * @module
 */

/** Random bytes in one attribution token (128 bits). */
export const ATTRIBUTION_TOKEN_BYTES = 16;
/** Most attributions kept at once; the oldest is forgotten first. */
export const MAX_ATTRIBUTIONS = 4096;

/** What a credential stands for. */
export interface Attribution {
  readonly command?: string;
  readonly exec_policy_hint?: string;
}

/** Token → attribution, bounded. */
export class AttributionRegistry {
  private readonly byToken = new Map<string, Attribution>();

  /** Mint a fresh token for `attribution`. */
  issue(attribution: Attribution): string {
    const bytes = crypto.getRandomValues(new Uint8Array(ATTRIBUTION_TOKEN_BYTES));
    const token = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    this.byToken.set(token, { ...attribution });
    if (this.byToken.size > MAX_ATTRIBUTIONS) this.byToken.delete(this.byToken.keys().next().value!);
    return token;
  }

  /** The attribution of a presented credential, or `undefined`. */
  lookup(token: string | undefined): Attribution | undefined {
    return token === undefined ? undefined : this.byToken.get(token);
  }

  /** Forget a token. */
  revoke(token: string): void {
    this.byToken.delete(token);
  }
}

/**
 * The user name of a `Proxy-Authorization: Basic …` value (what clients send for
 * `http://user@proxy`), or `undefined` when absent or malformed.
 */
export function basicProxyUser(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return undefined;
  let decoded: string;
  try {
    decoded = atob(m[1]!);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  const user = colon < 0 ? decoded : decoded.slice(0, colon);
  return user === "" ? undefined : decodeURIComponentSafe(user);
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
