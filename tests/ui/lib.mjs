// The browser side of moat's UI tests: Debian's chromium driven by
// playwright-core.  tests/integration/test_ui.py starts moatd and runs
// `node tests/ui/run.mjs <scenario>` with its arguments as JSON in
// MOAT_UI_ARGS; run.mjs holds the scenarios, this file the harness.
//
// Trust: the browser trusts exactly the CA files it is given (an NSS
// database in a throw-away HOME, the way Chromium on Linux learns local
// roots) and nothing else; no test ignores certificate errors.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

// A failed expectation: the message is what the test prints.
export class Fail extends Error {}

export function fail(msg) {
  throw new Fail(msg);
}

export function args() {
  const raw = process.env.MOAT_UI_ARGS;
  if (!raw) fail('MOAT_UI_ARGS is not set (run through tests/integration/test_ui.py)');
  const a = JSON.parse(raw);
  for (const k of ['out']) if (!a[k]) fail(`MOAT_UI_ARGS lacks "${k}"`);
  return a;
}

// An NSS database that trusts the given CA certificates (PEM files) as
// issuers of server certificates, in <home>/.pki/nssdb.
function nssdb(home, cafiles) {
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  const certutil = process.env.MOAT_CERTUTIL || 'certutil';
  execFileSync(certutil, ['-N', '-d', `sql:${db}`, '--empty-password'], { stdio: 'pipe' });
  cafiles.forEach((f, i) => {
    execFileSync(certutil, ['-A', '-d', `sql:${db}`, '-n', `moat-test-ca-${i}`,
      '-t', 'C,,', '-i', f], { stdio: 'pipe' });
  });
}

export async function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// One browser for one scenario: every page it opens is watched (errors,
// requests to other hosts) and photographed if the scenario fails.
export class Harness {
  constructor(a) {
    this.a = a;
    this.out = a.out;
    this.pages = [];
    this.contexts = [];
    this.log = [];
    this.pageErrors = [];
    this.foreign = [];
    this.requests = []; // [ms since start, method, url]
    this.t0 = Date.now();
    this.browser = null;
  }

  note(msg) {
    const line = `[${((Date.now() - this.t0) / 1000).toFixed(2)}s] ${msg}`;
    this.log.push(line);
    if (process.env.MOAT_UI_VERBOSE) console.error(line);
  }

  async launch(trust) {
    const home = path.join(this.out, 'home');
    fs.mkdirSync(home, { recursive: true });
    nssdb(home, trust || []);
    this.browser = await chromium.launch({
      executablePath: this.a.chromium || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      env: { ...process.env, HOME: home },
      timeout: 30000,
    });
    this.note(`chromium ${this.browser.version()}`);
    return this.browser;
  }

  // A new browser context (its own cookie jar and connections); options as
  // playwright's newContext.  Never ignores certificate errors.
  async context(opts = {}) {
    const ctx = await this.browser.newContext({
      viewport: { width: 1280, height: 800 },
      ...opts,
      ignoreHTTPSErrors: false,
    });
    ctx.setDefaultTimeout(this.a.step_timeout_ms || 15000);
    this.contexts.push(ctx);
    return ctx;
  }

  async page(ctx) {
    ctx = ctx || await this.context();
    const page = await ctx.newPage();
    const n = this.pages.length;
    this.pages.push(page);
    // Where the page may load from: its own origin (and origins a scenario
    // visits on purpose).
    const allowed = new Set([this.a.url, ...(this.a.also_visits || [])]
      .filter(Boolean).map((u) => new URL(u).origin));
    page.on('pageerror', (e) => {
      this.pageErrors.push(`page ${n}: ${e.message}`);
      this.note(`pageerror: ${e.message}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') this.note(`console.${m.type()}: ${m.text()}`);
    });
    page.on('request', (r) => {
      const u = r.url();
      this.requests.push([Date.now() - this.t0, r.method(), u]);
      if (allowed.size && /^(https?|wss?):/.test(u) && !allowed.has(new URL(u).origin)) {
        this.foreign.push(u);
      }
    });
    page.on('requestfailed', (r) => this.note(`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) this.note(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    return page;
  }

  // Screenshots (and the DOM) of every open page, into out/<prefix>-<n>.*
  async photograph(prefix) {
    const files = [];
    for (let i = 0; i < this.pages.length; i++) {
      const p = this.pages[i];
      if (p.isClosed()) continue;
      const png = path.join(this.out, `${prefix}-${i}.png`);
      try {
        await p.screenshot({ path: png, fullPage: true, timeout: 5000 });
        files.push(png);
      } catch (e) {
        this.note(`screenshot ${png}: ${e.message}`);
      }
      try {
        fs.writeFileSync(path.join(this.out, `${prefix}-${i}.html`), await p.content());
      } catch (e) { /* page gone */ }
    }
    return files;
  }

  // A screenshot for the README (only when test_ui.py asks for them).
  async readmeShot(page, name, opts = {}) {
    if (!this.a.shots) return;
    fs.mkdirSync(this.a.shots, { recursive: true });
    const f = path.join(this.a.shots, name);
    await page.screenshot({ path: f, ...opts });
    this.note(`README screenshot ${f}`);
  }

  // What every scenario must also hold: the page threw nothing and loaded
  // nothing from another host.
  checkHygiene() {
    if (this.foreign.length) fail(`the page loaded from another host: ${this.foreign.slice(0, 5).join(', ')}`);
    if (this.pageErrors.length) fail(`uncaught errors in the page: ${this.pageErrors.slice(0, 5).join(' | ')}`);
  }

  async close() {
    if (this.browser) {
      const b = this.browser;
      this.browser = null;
      await b.close();
    }
  }
}

// -- expectations (each fails with a sentence that says what was wanted) --

export async function visible(loc, what, timeout) {
  try {
    await loc.first().waitFor({ state: 'visible', timeout });
  } catch (e) {
    fail(`${what}: not visible (${loc})`);
  }
  return loc.first();
}

export async function hidden(loc, what, timeout) {
  try {
    await loc.first().waitFor({ state: 'hidden', timeout });
  } catch (e) {
    fail(`${what}: still visible (${loc})`);
  }
}

// Wait until loc's text satisfies pred (a RegExp, a substring or a
// function); return the text.
export async function text(loc, pred, what, timeout = 15000) {
  const test = typeof pred === 'function' ? pred
    : pred instanceof RegExp ? (t) => pred.test(t)
    : (t) => t.includes(pred);
  const deadline = Date.now() + timeout;
  let last = null;
  for (;;) {
    try {
      if (await loc.count() > 0) {
        last = (await loc.first().innerText({ timeout: 1000 })).trim();
        if (test(last)) return last;
      }
    } catch (e) { /* detached while re-rendering: try again */ }
    if (Date.now() > deadline) {
      const want = typeof pred === 'function' ? (pred.want || 'a match') : JSON.stringify(String(pred));
      fail(`${what}: want ${want}, `
        + `got ${last === null ? 'no element' : JSON.stringify(last.slice(0, 300))} (${loc})`);
    }
    await sleep(100);
  }
}

// How many elements of a selector are visible right now.
export async function countVisible(page, selector) {
  return page.locator(`${selector}:visible`).count();
}

export function hexOnly(s) {
  return String(s).toUpperCase().replace(/[^0-9A-F]/g, '');
}

// -- the page's own flows --------------------------------------------------

export async function openSignIn(page, url) {
  const r = await page.goto(url, { waitUntil: 'load' });
  if (!r || !r.ok()) fail(`GET ${url}: ${r ? r.status() : 'no response'}`);
  await visible(page.locator('form#signin'), 'the sign-in form');
  return r;
}

export async function signIn(page, url, email, password, { open = true, enter = false } = {}) {
  if (open) await openSignIn(page, url);
  await page.locator('input#email').fill(email);
  await page.locator('input#password').fill(password);
  if (enter) await page.locator('input#password').press('Enter');
  else await page.locator('button#signin-submit').click();
  await text(page.locator('#whoami'), email, `after signing in as ${email}, #whoami`);
  await hidden(page.locator('form#signin'), 'the sign-in form after signing in');
}

export async function screen(page, name, ready, what) {
  await page.locator(`nav a[data-screen="${name}"]`).first().click();
  if (ready) await visible(page.locator(ready), what || `the ${name} screen (${ready})`);
}

// The session's CSRF token, the way the page gets it.
export async function csrfToken(page) {
  return page.evaluate(async () => {
    const r = await fetch('/ui/session', { credentials: 'same-origin' });
    if (!r.ok) return null;
    return (await r.json()).csrf_token;
  });
}

// fetch() from inside the page (its cookie, its origin); returns
// {status, body} where body is the parsed JSON or the text.
export async function pageFetch(page, method, urlPath, body, headers = {}) {
  return page.evaluate(async ([m, u, b, h]) => {
    const init = { method: m, credentials: 'same-origin', headers: { ...h } };
    if (b !== null && b !== undefined) {
      init.body = JSON.stringify(b);
      init.headers['Content-Type'] = 'application/json';
    }
    const r = await fetch(u, init);
    const t = await r.text();
    let parsed = t;
    try { parsed = JSON.parse(t); } catch (e) { /* not JSON */ }
    return { status: r.status, body: parsed };
  }, [method, urlPath, body ?? null, headers]);
}

export async function sessionCookie(ctx) {
  const c = (await ctx.cookies()).find((k) => k.name === 'moat_session');
  return c || null;
}
