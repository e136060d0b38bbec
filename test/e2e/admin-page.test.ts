/**
 * The live page (issue 15 item 3, docs/behaviour.md §7.6) in a real headless Chromium (Debian's
 * `chromium`, which `.ci/run` installs, driven by `playwright-core`; nothing downloads a
 * browser): the page loads from the admin API, a blocked request made meanwhile appears in its
 * feed within two seconds and among the blocked hosts, the mode switch changes the mode (a POST
 * through the proxy is then refused), and with a token set the page shows nothing but the
 * prompt until the token is given. The proxy runs on Node here; the API behind the page is the
 * same on every runtime (`events.test.ts` checks the feed itself on all three).
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlHttp, networkConfig, type Origin, type ProxyProcess, startOrigin, startProxy } from "./helpers/index.ts";

/** Debian's Chromium. */
const CHROMIUM = "/usr/bin/chromium";

let browser: Browser;
let origin: Origin;
const proxies: ProxyProcess[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (.ci/run does)`);
  origin = await startOrigin();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.allSettled(proxies.map((p) => p.stop()));
  await origin?.close();
});

async function start(extra: Record<string, unknown> = {}): Promise<ProxyProcess> {
  const p = await startProxy(networkConfig({ allowed_domains: ["127.0.0.1", "docs.example"], denied_domains: ["evil.example"], ...extra }), { waitForAdmin: true });
  proxies.push(p);
  return p;
}

async function open(p: ProxyProcess): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${p.adminPort}/`);
  return page;
}

describe("the live page in headless Chromium", () => {
  it("shows the mode, patterns and numbers; a blocked request appears in the feed within two seconds", async () => {
    const p = await start();
    const page = await open(p);
    try {
      await page.waitForFunction(() => document.getElementById("mode")?.textContent === "full", undefined, { timeout: 10_000 });
      await page.waitForFunction(() => document.getElementById("status")?.textContent === "live", undefined, { timeout: 10_000 });
      expect(await page.textContent("#allowed")).toContain("docs.example");
      expect(await page.textContent("#denied")).toContain("evil.example");
      expect(await page.textContent("#numbers")).toContain("Open connections");
      const refused = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, "http://evil.example/"]);
      expect(refused.status).toBe(403);
      await page.waitForFunction(() => document.getElementById("feed")?.textContent?.includes("evil.example:80 (denied)"), undefined, { timeout: 2_000 });
      expect(await page.textContent("#blocked tbody")).toContain("evil.example");
    } finally {
      await page.close();
    }
  });

  it("the mode switch changes the mode: a following POST through the proxy is refused", async () => {
    const p = await start();
    const page = await open(p);
    try {
      await page.waitForFunction(() => document.getElementById("mode")?.textContent === "full", undefined, { timeout: 10_000 });
      const before = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, "-X", "POST", "-d", "x=1", `${origin.url}/write`]);
      expect(before.status).toBe(200);
      await page.click("#to-limited");
      await page.waitForFunction(() => document.getElementById("mode")?.textContent === "limited", undefined, { timeout: 5_000 });
      const after = await curlHttp(["-x", `http://127.0.0.1:${p.port}`, "-X", "POST", "-d", "x=1", `${origin.url}/write`]);
      expect(after.status).toBe(403);
      expect(after.headers["x-proxy-error"]).toBe("blocked-by-method-policy");
    } finally {
      await page.close();
    }
  });

  it("with a token set, the page shows nothing but the prompt until the token is given, and keeps it out of URLs", async () => {
    const token = "page-test-token-4242";
    const p = await start({ admin_token: token });
    const page = await open(p);
    const urls: string[] = [];
    page.on("request", (r) => urls.push(r.url()));
    try {
      await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
      expect(await page.isHidden("#main")).toBe(true);
      const visible = await page.evaluate(() => document.body.innerText);
      expect(visible).not.toContain("docs.example");
      expect(visible).not.toContain("evil.example");
      await page.fill("#token", "wrong-token");
      await page.click("#token-form button");
      await page.waitForFunction(() => document.getElementById("login-error")?.textContent === "That token was refused.", undefined, { timeout: 5_000 });
      await page.fill("#token", token);
      await page.click("#token-form button");
      await page.waitForFunction(() => document.getElementById("mode")?.textContent === "full", undefined, { timeout: 10_000 });
      // the patterns are fetched after the config that sets the mode
      await page.waitForFunction(() => document.getElementById("allowed")?.textContent?.includes("docs.example"), undefined, { timeout: 10_000 });
      expect(await page.textContent("#allowed")).toContain("docs.example");
      expect(urls.some((u) => u.includes(token))).toBe(false);
    } finally {
      await page.close();
    }
  });
});
