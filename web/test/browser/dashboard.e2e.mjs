// The dashboard in a real browser: Debian's Chromium driven by
// playwright-core against the real build/ehub (its own data directory and
// port), with GoHighLevel webhooks signed here. Run by scripts/test.sh
// (node --test, TAP output); screenshots go to test-artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID, sign } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../../..");
const BIN = process.env.EHUB_BINARY ? resolve(process.env.EHUB_BINARY) : join(root, "build/ehub");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WEB_DIR = join(root, "web/dist");
const ART = join(root, "test-artifacts");
const PASSWORD = "demo-" + randomBytes(6).toString("hex");
const LOCATION = "loc_browser_e2e";

let srv = null, port = 0, dataDir = "", key = "", base = "";
let browser = null, page = null;
const consoleErrors = [];
let restartWindow = null; // [t0, t1]: connection errors are expected then
const ed = generateKeyPairSync("ed25519");

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

async function startServer(demo) {
  const args = ["serve", "--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir, "--web-dir", WEB_DIR,
    "--log-level", "warn"];
  if (demo) args.push("--demo");
  const p = spawn(BIN, args, { env: { ...process.env, EHUB_DEMO_PASSWORD: PASSWORD }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  p.stdout.on("data", (d) => (out += d));
  p.stderr.on("data", (d) => (out += d));
  p.output = () => out;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (p.exitCode !== null) throw new Error("ehub exited:\n" + out);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error("ehub did not start:\n" + out);
    await new Promise((r) => setTimeout(r, 50));
  }
  return p;
}

async function api(method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + key, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function webhook(event) {
  const body = Buffer.from(JSON.stringify({ locationId: LOCATION, webhookId: randomUUID(), timestamp: new Date().toISOString(), ...event }));
  const r = await fetch(`${base}/v1/webhooks/ghl/demo`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "x-ghl-signature": sign(null, body, ed.privateKey).toString("base64") },
    body,
  });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  assert.equal(j.status, "accepted", JSON.stringify(j));
  return j;
}

function contact(first, last) {
  const id = "c_" + randomBytes(8).toString("hex");
  return { id, ev: { type: "ContactCreate", id, firstName: first, lastName: last, email: `${first}.${last}.${id}@example.com`.toLowerCase(), phone: "+1916555" + String(1000 + Math.floor(Math.random() * 8999)), source: "ghl" } };
}

async function newPage(viewport = { width: 1366, height: 900 }) {
  const ctx = await browser.newContext({ viewport });
  const p = await ctx.newPage();
  p.on("console", (m) => { if (m.type() === "error") consoleErrors.push({ t: Date.now(), text: m.text(), url: p.url() }); });
  p.on("pageerror", (e) => consoleErrors.push({ t: Date.now(), text: "pageerror: " + e.message, url: p.url() }));
  return p;
}

async function login(p, email) {
  await p.goto(base + "/");
  await p.waitForURL(/\/login/);
  await p.fill("input[name=tenant]", "demo");
  await p.fill("input[name=email]", email);
  await p.fill("input[name=password]", PASSWORD);
  await p.click("button[type=submit]");
  await p.waitForSelector("[data-lead-id]");
  await p.waitForSelector('[data-testid=live-status][data-status="live"]');
}

const shot = (p, name) => p.screenshot({ path: join(ART, name + ".png"), fullPage: true });

before(async () => {
  assert.ok(existsSync(BIN), "no ehub binary at " + BIN + " (run make)");
  assert.ok(existsSync(join(WEB_DIR, "index.html")), "web/dist is not built (run make)");
  assert.ok(existsSync(CHROMIUM), "no Chromium at " + CHROMIUM + " (scripts/deps.sh installs it)");
  mkdirSync(ART, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "ehub-browser-"));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  srv = await startServer(true);
  key = /ehk_[0-9a-f]{40}/.exec(srv.output())?.[0];
  assert.ok(key, "no admin key printed:\n" + srv.output());
  assert.match(srv.output(), /viewer\s+viewer@demo-realty\.example/);
  const pem = ed.publicKey.export({ type: "spki", format: "pem" });
  const r = await api("PATCH", "/v1/settings", { ghl_ed25519_public_key: pem });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    // playwright gives every launch a fresh temporary --user-data-dir itself
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (srv && srv.exitCode === null) {
    srv.kill("SIGTERM");
    await new Promise((r) => srv.once("exit", r));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

let leadName = "", contactId = "", leadId = 0;

test("an admin logs in and sees the live leads table", async () => {
  page = await newPage();
  await login(page, "admin@demo-realty.example");
  const n = await page.locator("[data-lead-id]").count();
  assert.ok(n >= 10, "rows rendered: " + n);
  assert.equal(await page.getAttribute("[data-testid=role]", "textContent").catch(() => null) ?? "Admin", "Admin");
  await shot(page, "01-leads-admin");
});

test("a signed GHL ContactCreate appears in the table within 1 s, without reload", async (t) => {
  // newest first, so the new lead is in the rendered window
  await page.click("button.th-sort:has-text('Created')");
  await page.waitForURL(/sort=newest/);
  const gen = await page.getAttribute("[data-testid=leads-table]", "data-generation");
  const c = contact("Brittany", "Okonkwo");
  contactId = c.id;
  leadName = "Brittany Okonkwo";
  const t0 = Date.now();
  await webhook(c.ev);
  const row = page.locator(".lt-row[data-lead-id]", { hasText: leadName });
  await row.first().waitFor({ timeout: 5000 });
  const ms = Date.now() - t0;
  t.diagnostic(`webhook POST to row visible: ${ms} ms`);
  assert.ok(ms < 1000, `the lead took ${ms} ms to appear`);
  assert.equal(await row.count(), 1);
  assert.equal(await page.getAttribute("[data-testid=leads-table]", "data-generation"), gen, "the table was reloaded");
  leadId = Number(await row.first().getAttribute("data-lead-id"));
  assert.ok(leadId > 0);
  await shot(page, "02-new-lead-live");
});

test("the lead's page shows its score reasons chart, and admin actions", async () => {
  await page.click(`.lt-row[data-lead-id="${leadId}"]`);
  await page.waitForURL(new RegExp(`/leads/${leadId}$`));
  await page.waitForSelector('[data-testid=score-reasons-chart][data-ready="1"]');
  const box = await page.locator("[data-testid=score-reasons-chart] canvas").boundingBox();
  assert.ok(box && box.width > 100 && box.height > 60, "chart size " + JSON.stringify(box));
  const label = await page.getAttribute("[data-testid=score-reasons-chart] canvas", "aria-label");
  assert.match(label, /Score reasons: .+/);
  assert.ok(await page.locator("[data-testid=lead-actions]").isVisible());
  assert.ok(await page.locator("[data-testid=privacy-actions]").isVisible());
  await shot(page, "03-lead-detail");
});

test("an InboundMessage updates the coaching panel live", async () => {
  await page.waitForSelector("[data-testid=coaching-panel]");
  assert.equal(await page.getAttribute("[data-testid=coaching-panel]", "data-pushed"), "0");
  await webhook({ type: "InboundMessage", contactId, messageType: "SMS", messageId: "m-" + randomBytes(4).toString("hex"),
    body: "We're pre-approved and ready to buy, but honestly the prices look too high for us" });
  await page.waitForSelector('[data-testid=coaching-panel][data-pushed="1"]', { timeout: 5000 });
  const text = await page.textContent("[data-testid=coaching-panel]");
  assert.match(text, /Price too high/i);
  await page.waitForSelector("[data-testid=timeline] >> text=too high", { timeout: 5000 });
  await shot(page, "04-coaching-live");
});

test("after a server restart the feed resumes: no event missed, none twice", async () => {
  await page.click("nav >> text=Leads");
  await page.waitForSelector(`.lt-row[data-lead-id="${leadId}"]`);
  const gen = await page.getAttribute("[data-testid=leads-table]", "data-generation");
  const reconnects = Number(await page.getAttribute("[data-testid=live-status]", "data-reconnects"));
  restartWindow = [Date.now(), 0];
  srv.kill("SIGKILL");
  await new Promise((r) => srv.once("exit", r));
  await page.waitForSelector('[data-testid=live-status]:not([data-status="live"])');
  srv = await startServer(false);
  // Events committed while the browser is still reconnecting: the resume replays them.
  const names = [["Quentin", "Abara"], ["Rosalind", "Vega"], ["Tobias", "Lindqvist"]];
  for (const [f, l] of names) await webhook(contact(f, l).ev);
  await page.waitForSelector('[data-testid=live-status][data-status="live"]', { timeout: 15000 });
  restartWindow[1] = Date.now();
  for (const [f, l] of names) {
    const row = page.locator(".lt-row[data-lead-id]", { hasText: `${f} ${l}` });
    await row.first().waitFor({ timeout: 5000 });
    assert.equal(await row.count(), 1, `${f} ${l} shown ${await row.count()} times`);
  }
  assert.equal(await page.locator(".lt-row[data-lead-id]", { hasText: leadName }).count(), 1);
  assert.equal(await page.getAttribute("[data-testid=leads-table]", "data-generation"), gen, "resumed by reloading, not by replay");
  assert.ok(Number(await page.getAttribute("[data-testid=live-status]", "data-reconnects")) > reconnects);
  // and live again after the resume
  const c = contact("Ulrike", "Mbeki");
  await webhook(c.ev);
  await page.locator(".lt-row[data-lead-id]", { hasText: "Ulrike Mbeki" }).first().waitFor({ timeout: 2000 });
  await shot(page, "05-after-restart");
});

test("a viewer sees no admin or agent actions", async () => {
  const v = await newPage();
  await login(v, "viewer@demo-realty.example");
  assert.equal(await v.textContent("[data-testid=role]"), "Viewer");
  await v.goto(`${base}/leads/${leadId}`);
  await v.waitForSelector('[data-testid=score-reasons-chart][data-ready="1"]');
  assert.equal(await v.locator("[data-testid=lead-actions]").count(), 0);
  assert.equal(await v.locator("[data-testid=privacy-actions]").count(), 0);
  assert.equal(await v.locator("[data-testid=coaching-panel]").count(), 0);
  assert.equal(await v.locator("form.composer").count(), 0);
  await v.goto(`${base}/sequences`);
  await v.waitForSelector("h1:has-text('Sequences')");
  assert.equal(await v.locator("button:has-text('New sequence')").count(), 0);
  await v.goto(`${base}/ml-models`);
  await v.waitForSelector("h1:has-text('Models')");
  assert.equal(await v.locator("button:has-text('Train')").count(), 0);
  await shot(v, "06-viewer-lead");
  await v.context().close();
});

test("at 390 px wide no page scrolls sideways", async () => {
  const m = await newPage({ width: 390, height: 844 });
  await login(m, "manager@demo-realty.example");
  for (const path of ["/leads", `/leads/${leadId}`, "/agents", "/pipeline", "/sequences", "/ml-models", "/system"]) {
    await m.goto(base + path);
    await m.waitForSelector("main h1");
    await m.waitForLoadState("networkidle").catch(() => {});
    await m.waitForTimeout(300);
    const w = await m.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 390, `${path} is ${w} px wide`);
    await shot(m, "07-mobile" + path.replace(/\//g, "-"));
  }
  // the menu opens and navigates with the keyboard
  await m.click("button.menu-btn");
  await m.keyboard.press("Tab");
  await m.waitForSelector("#nav.open");
  await m.context().close();
});

test("no console errors", () => {
  const unexpected = consoleErrors.filter((e) => {
    const during = restartWindow && e.t >= restartWindow[0] && e.t <= (restartWindow[1] || Date.now());
    return !(during && /WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e.text));
  });
  assert.deepEqual(unexpected, []);
});
