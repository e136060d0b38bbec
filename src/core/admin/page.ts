/**
 * The live page at the admin API's `/` (docs/behaviour.md §7.6): one self-contained page (its
 * script and style served next to it, nothing from elsewhere, no framework, no build step) that
 * shows the mode with a switch, the allow and deny patterns, a live feed of decisions
 * (`/events`), the blocked hosts grouped with counts, ports and last-seen times, and the
 * metrics' headline numbers. It holds no data itself: everything comes from the same API, with
 * the admin token when one is set. The page asks for it and keeps it in `sessionStorage` (never
 * in a URL); without it the page shows nothing but the prompt. Text from the API is only ever
 * set as text, never as markup.
 *
 * @module
 */

/** `Content-Security-Policy` of the page: its own script and style, calls to its own API only. */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Feed entries kept on the page. */
export const PAGE_FEED_ENTRIES = 200;
/** Blocked hosts the page keeps; the least recently seen go first (a flood must not freeze it). */
export const PAGE_BLOCKED_HOSTS = 500;
/** Pause before the page reconnects a feed that ended or failed, in ms. */
export const PAGE_FEED_RETRY_MS = 3_000;

/**
 * The page, served at `path` (where the admin app answered `/`, mount prefix included): its
 * script and style are linked from the same directory, so it works mounted under any prefix,
 * with or without a trailing slash. A path with anything but URL-safe characters links them
 * relatively instead.
 */
export function pageHtml(path: string): string {
  const dir = path.endsWith("/") ? path : `${path}/`;
  const safe = /^\/[A-Za-z0-9/_.~%-]*$/.test(dir) ? dir : "";
  return PAGE_HTML.replace('href="app.css"', `href="${safe}app.css"`).replace('src="app.js"', `src="${safe}app.js"`);
}

/** The page, with its links relative to where it is served (see {@link pageHtml}). */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>codex-network-proxy</title>
<link rel="stylesheet" href="app.css">
</head>
<body>
<header><h1>codex-network-proxy</h1><span id="status" role="status"></span></header>
<section id="login" hidden>
  <form id="token-form">
    <label for="token">Admin token</label>
    <input id="token" type="password" autocomplete="off" spellcheck="false">
    <button type="submit">Open</button>
  </form>
  <p id="login-error" role="alert"></p>
</section>
<main id="main" hidden>
  <section id="mode-section">
    <h2>Mode</h2>
    <p>The proxy is in <strong id="mode">…</strong> mode.</p>
    <button id="to-limited" type="button">Switch to limited (read-only)</button>
    <button id="to-full" type="button">Switch to full</button>
    <p id="mode-error" role="alert"></p>
  </section>
  <section>
    <h2>Numbers</h2>
    <dl id="numbers"></dl>
  </section>
  <section>
    <h2>Patterns</h2>
    <div class="columns">
      <div><h3>Allowed</h3><ul id="allowed"></ul></div>
      <div><h3>Denied</h3><ul id="denied"></ul></div>
    </div>
  </section>
  <section>
    <h2>Blocked hosts</h2>
    <table id="blocked">
      <thead><tr><th>Host</th><th>Count</th><th>Ports</th><th>Reasons</th><th>Last seen</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Live decisions</h2>
    <ol id="feed"></ol>
  </section>
</main>
<script src="app.js"></script>
</body>
</html>
`;

/** The page's style. */
export const PAGE_CSS = `body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 70em; padding: 0 1em 2em; color: #222; }
header { display: flex; align-items: baseline; gap: 1em; }
h1 { font-size: 1.4em; }
h2 { font-size: 1.1em; border-bottom: 1px solid #ddd; }
.columns { display: flex; gap: 3em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.2em 0.8em 0.2em 0; }
#feed { list-style: none; padding: 0; font-family: ui-monospace, monospace; font-size: 12px; }
#feed li.deny, #feed li.ask { color: #a00; }
#feed li.allow { color: #060; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { color: #555; }
[role=alert] { color: #a00; }
`;

/** The page's script: plain DOM, no framework. */
export const PAGE_JS = `(() => {
  "use strict";
  const FEED_ENTRIES = ${PAGE_FEED_ENTRIES};
  const BLOCKED_HOSTS = ${PAGE_BLOCKED_HOSTS};
  const FEED_RETRY_MS = ${PAGE_FEED_RETRY_MS};
  const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
  const $ = (id) => document.getElementById(id);
  // one key per admin API on this origin (two mounted proxies keep their own tokens)
  const TOKEN_KEY = "cnp-admin-token:" + base;
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let renderQueued = false;
  let feedController;
  const groups = new Map();

  function api(path, init) {
    const options = Object.assign({ credentials: "omit", cache: "no-store" }, init || {});
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.authorization = "Bearer " + token;
    options.headers = headers;
    return fetch(base + path, options);
  }

  function text(el, value) {
    el.textContent = value;
    return el;
  }

  function item(tag, value, className) {
    const el = text(document.createElement(tag), value);
    if (className) el.className = className;
    return el;
  }

  function showLogin(message) {
    if (feedController) feedController.abort();
    $("main").hidden = true;
    $("login").hidden = false;
    text($("login-error"), message || "");
    $("token").focus();
  }

  async function start() {
    const r = await api("config");
    if (r.status === 401) return showLogin(token ? "That token was refused." : "");
    if (!r.ok) return text($("status"), "The admin API answered " + r.status + ".");
    $("login").hidden = true;
    $("main").hidden = false;
    showConfig(await r.json());
    await Promise.all([loadPatterns(), loadBlocked(), loadNumbers()]);
    setInterval(loadNumbers, 5000);
    feed();
  }

  function showConfig(body) {
    const mode = body.network.mode;
    text($("mode"), mode);
    $("to-limited").disabled = mode === "limited";
    $("to-full").disabled = mode === "full";
  }

  async function loadPatterns() {
    const r = await api("patterns");
    if (!r.ok) return;
    const body = await r.json();
    for (const [id, list] of [["allowed", body.allowed], ["denied", body.denied]]) {
      const ul = $(id);
      ul.replaceChildren(...(list.length ? list.map((p) => item("li", p)) : [item("li", "(none)")]));
    }
  }

  function remember(entry, when) {
    if (entry.decision === "allow") return;
    const g = groups.get(entry.host) || { count: 0, ports: new Set(), reasons: new Set(), last: 0 };
    g.count += 1;
    g.ports.add(entry.port);
    g.reasons.add(entry.reason);
    g.last = Math.max(g.last, when);
    groups.delete(entry.host); // re-inserted: the map's order is the recency order
    groups.set(entry.host, g);
    if (groups.size > BLOCKED_HOSTS) groups.delete(groups.keys().next().value);
  }

  function queueGroups() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      showGroups();
    });
  }

  function showGroups() {
    const rows = [...groups.entries()].sort((a, b) => b[1].last - a[1].last).map(([host, g]) => {
      const tr = document.createElement("tr");
      tr.append(item("td", host), item("td", String(g.count)), item("td", [...g.ports].join(", ")), item("td", [...g.reasons].join(", ")), item("td", new Date(g.last).toLocaleTimeString()));
      return tr;
    });
    $("blocked").tBodies[0].replaceChildren(...rows);
  }

  async function loadBlocked() {
    const r = await api("blocked");
    if (!r.ok) return;
    groups.clear();
    for (const entry of (await r.json()).blocked) remember(entry, entry.timestamp * 1000);
    showGroups();
  }

  async function loadNumbers() {
    const r = await api("metrics");
    if (!r.ok) return;
    const sums = { allow: 0, deny: 0, ask: 0, connections: 0, tunnels: 0, toOrigin: 0, toClient: 0 };
    for (const line of (await r.text()).split("\\n")) {
      if (line.startsWith("#") || !line) continue;
      const value = Number(line.slice(line.lastIndexOf(" ") + 1));
      const decision = /decision="(allow|deny|ask)"/.exec(line);
      if (line.startsWith("network_proxy_decisions_total") && decision) sums[decision[1]] += value;
      else if (line.startsWith("network_proxy_open_connections")) sums.connections = value;
      else if (line.startsWith("network_proxy_open_tunnels")) sums.tunnels = value;
      else if (line.startsWith("network_proxy_bytes_total") && line.includes('direction="to_origin"')) sums.toOrigin += value;
      else if (line.startsWith("network_proxy_bytes_total") && line.includes('direction="to_client"')) sums.toClient += value;
    }
    const rows = [["Allowed", sums.allow], ["Refused", sums.deny + sums.ask], ["Open connections", sums.connections], ["Open tunnels", sums.tunnels], ["Bytes sent out", sums.toOrigin], ["Bytes received", sums.toClient]];
    $("numbers").replaceChildren(...rows.flatMap(([name, value]) => [item("dt", name), item("dd", String(value))]));
  }

  function showDecision(d) {
    const when = new Date(d.timestamp).toLocaleTimeString();
    const li = item("li", when + " " + d.decision + " " + (d.method || d.protocol) + " " + d.host + ":" + d.port + " (" + d.reason + ") from " + (d.client || "unknown"), d.decision);
    const feedList = $("feed");
    feedList.prepend(li);
    while (feedList.children.length > FEED_ENTRIES) feedList.lastChild.remove();
    if (d.decision !== "allow") {
      remember(d, d.timestamp);
      queueGroups();
    }
  }

  async function feed() {
    feedController = new AbortController();
    try {
      const r = await api("events", { signal: feedController.signal });
      if (r.status === 401) return showLogin("That token was refused.");
      if (!r.ok || !r.body) {
        text($("status"), "No live feed (" + r.status + "); retrying");
        setTimeout(feed, FEED_RETRY_MS);
        return;
      }
      text($("status"), "live");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let end;
        while ((end = buffered.indexOf("\\n\\n")) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (event === "decision") showDecision(JSON.parse(data));
        }
      }
      text($("status"), "feed ended; reconnecting");
    } catch (e) {
      if (e.name === "AbortError") return;
      text($("status"), "feed failed (" + e.message + "); reconnecting");
    }
    setTimeout(feed, FEED_RETRY_MS);
  }

  async function switchMode(mode) {
    text($("mode-error"), "");
    const r = await api("mode", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ mode }) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) return text($("mode-error"), body.error || "The switch was refused (" + r.status + ").");
    showConfig({ network: { mode: body.mode } });
  }

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $("to-limited").addEventListener("click", () => switchMode("limited"));
  $("to-full").addEventListener("click", () => switchMode("full"));
  start();
})();
`;
