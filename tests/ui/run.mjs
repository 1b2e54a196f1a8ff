// node tests/ui/run.mjs <scenario>
//
// One browser scenario against a running moatd.  Arguments come as JSON in
// MOAT_UI_ARGS (see tests/integration/test_ui.py):
//   out      a directory for this run: result.json, run.log, failure-*.png
//   url      the UI's address, https://<addr>:<cm port>/
//   trust    CA files the browser trusts (nothing else)
//   email, password, shots (README screenshot dir, or empty), and what
//   each scenario below reads.
// Exit 0 with out/result.json on success; 1 with "FAIL <scenario>: why" on
// stderr and screenshots of every page in out/ otherwise.

import fs from 'node:fs';
import path from 'node:path';
import {
  Fail, Harness, args, countVisible, csrfToken, fail, hexOnly, hidden,
  openSignIn, pageFetch, screen, sessionCookie, signIn, sleep, text, visible,
} from './lib.mjs';

const CERT_NAMES = ['api', 'cm', 'proxy', 'syncer', 'metrics_exporter'];

function cookieFacts(c) {
  return c && { value: c.value, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path };
}

async function certSection(page, name) {
  return visible(page.locator(`section[data-cert="${name}"]`), `the ${name} certificate`);
}

async function shownFingerprint(page, name, want, what) {
  const loc = page.locator(`section[data-cert="${name}"] .fingerprint`);
  const same = (t) => hexOnly(t) === hexOnly(want);
  same.want = want;
  return text(loc, same, what || `the ${name} fingerprint shown`);
}

// The policy screen, once its fields hold the cluster's values (it fills
// them when GET /v1/cluster answers: a choice made before would be undone).
async function policyScreen(page) {
  await screen(page, 'policy', 'select#min-control');
  try {
    await page.waitForFunction(() => document.querySelector('input#control-ciphers')?.value, null,
      { timeout: 15000 });
  } catch (e) {
    fail('the policy screen never filled input#control-ciphers with the cluster\'s cipher list');
  }
}

const scenarios = {
  // The harness itself: chromium starts, trusts what it is told to and
  // nothing else.  a.url serves a page whose #hello says "hello".
  async harness(h, a) {
    const page = await h.page();
    const r = await page.goto(a.url);
    if (!r.ok()) fail(`GET ${a.url}: ${r.status()}`);
    const hello = await text(page.locator('#hello'), 'hello', 'the test page');
    const sec = await r.securityDetails();
    const out = { version: h.browser.version(), hello, issuer: sec?.issuer, protocol: sec?.protocol };
    if (a.untrusted_url) {
      const p2 = await h.page();
      try {
        await p2.goto(a.untrusted_url);
        out.untrusted = 'loaded';
      } catch (e) {
        out.untrusted = (e.message.match(/net::ERR_[A-Z_]+/) || [e.message])[0];
      }
    }
    return out;
  },

  // Wrong password, then the right one (typed and submitted with Enter).
  async signin(h, a) {
    const page = await h.page();
    await openSignIn(page, a.url);
    await page.locator('input#email').fill(a.email);
    await page.locator('input#password').fill(a.wrong_password);
    await page.locator('button#signin-submit').click();
    const err = await text(page.locator('#signin-error'), 'unauthorized',
      'after a wrong password, #signin-error (with the error_code)');
    if (await countVisible(page, '#whoami') > 0 && (await page.locator('#whoami').innerText()).includes(a.email)) {
      fail('a wrong password signed in');
    }
    if (await sessionCookie(page.context())) fail('a wrong password got a moat_session cookie');
    await visible(page.locator('form#signin'), 'the sign-in form after a wrong password');

    await page.locator('input#password').fill(a.password);
    await page.locator('input#password').press('Enter');
    await text(page.locator('#whoami'), a.email, 'after the right password, #whoami');
    await hidden(page.locator('form#signin'), 'the sign-in form after signing in');
    const name = await text(page.locator('#cluster-name'), a.fqdn, 'the overview\'s #cluster-name');
    const nodes = await text(page.locator('table#nodes'), a.addr, 'the overview\'s table#nodes (the node\'s address)');
    const attention = await text(page.locator('ul#attention'), /\bcm\b/,
      'ul#attention (the cm certificate is issued by the cluster\'s own CA)');
    for (const s of ['overview', 'certificates', 'policy', 'databases', 'users']) {
      await visible(page.locator(`nav a[data-screen="${s}"]`), `the admin's nav link to ${s}`);
    }
    return { signin_error: err, cluster_name: name, nodes, attention,
      cookie: cookieFacts(await sessionCookie(page.context())) };
  },

  // The overview lists the alerts that are on (GET /v1/cluster/alerts):
  // a.alert is the alert's name, a.cert a certificate it must name.
  async overview_alert(h, a) {
    const page = await h.page();
    await signIn(page, a.url, a.email, a.password);
    const item = page.locator(`ul#attention li[data-kind="alert"][data-alert="${a.alert}"]`);
    const said = await text(item, a.cert, `ul#attention's item for the ${a.alert} alert`);
    const others = await page.locator('ul#attention li[data-kind="alert"]').count();
    return { said, alert_items: others };
  },

  // Certificate sign-in: the browser context holds a client certificate
  // (a.cert_file, a.key_file) for the UI's origin; the button signs in as
  // the user with its subject, without a password.
  async cert_signin(h, a) {
    const ctx = await h.context({
      clientCertificates: [{ origin: new URL(a.url).origin, certPath: a.cert_file, keyPath: a.key_file }],
    });
    const page = await h.page(ctx);
    await openSignIn(page, a.url);
    await page.locator('button#signin-cert').click();
    const who = await text(page.locator('#whoami'), a.cert_email, 'after "Sign in with my certificate", #whoami');
    await hidden(page.locator('form#signin'), 'the sign-in form after a certificate sign-in');
    await text(page.locator('#cluster-name'), a.fqdn, 'the overview\'s #cluster-name');
    // A browser without the certificate gets a clear refusal.
    const bare = await h.page();
    await openSignIn(bare, a.url);
    await bare.locator('button#signin-cert').click();
    const err = await text(bare.locator('#signin-error'), 'unauthorized',
      'without a client certificate, #signin-error');
    return { whoami: who, refusal: err, cookie: cookieFacts(await sessionCookie(ctx)) };
  },

  async signout(h, a) {
    const page = await h.page();
    await signIn(page, a.url, a.email, a.password);
    const cookie = cookieFacts(await sessionCookie(page.context()));
    if (!cookie) fail('no moat_session cookie after signing in');
    await page.locator('button#signout').click();
    await visible(page.locator('form#signin'), 'the sign-in form after signing out');
    await page.reload();
    await visible(page.locator('form#signin'), 'the sign-in form after signing out and reloading');
    if (await countVisible(page, '#whoami') > 0 && (await page.locator('#whoami').innerText()).includes(a.email)) {
      fail('still signed in after signing out and reloading');
    }
    return { cookie };
  },

  // moatd runs with --ui-idle-timeout a.idle_timeout (seconds).
  async idle(h, a) {
    const page = await h.page();
    const idle = a.idle_timeout * 1000;
    await signIn(page, a.url, a.email, a.password);
    const cookie = cookieFacts(await sessionCookie(page.context()));
    // Activity keeps the session: a request every idle/2, for longer than
    // the timeout in all.
    const steps = [['certificates', 'section[data-cert="cm"]'], ['overview', '#cluster-name'],
      ['certificates', 'section[data-cert="cm"]']];
    for (const [s, ready] of steps) {
      await sleep(idle / 2);
      await screen(page, s, ready, `the ${s} screen while the session is in use`);
      await hidden(page.locator('form#signin'), `the sign-in form while in use (${s})`, 1000);
    }
    // Then nothing for longer than the timeout.
    await page.waitForLoadState('networkidle');
    const quietFrom = Date.now() - h.t0;
    await sleep(idle + 2000);
    const during = h.requests.filter(([t]) => t > quietFrom).map(([, m, u]) => `${m} ${u}`);
    // The page may have noticed by itself; if not, the next click must.
    const noticed = await page.locator('form#signin').isVisible();
    if (!noticed) await screen(page, 'overview');
    try {
      await visible(page.locator('form#signin'), 'x', 5000);
    } catch (e) {
      fail(`still signed in after ${(idle + 2000) / 1000} s without a click (timeout ${a.idle_timeout} s)`
        + (during.length ? `; the page itself made requests meanwhile, which keep the session alive: ${during.slice(0, 5).join(', ')}` : ''));
    }
    // And one can sign in again.
    await signIn(page, a.url, a.email, a.password, { open: false });
    return { cookie, requests_while_idle: during, page_noticed: noticed };
  },

  // The certificates screen, the CA download, and a cm replacement whose key
  // does not match (pasted): the error shows with its code, nothing changes.
  async replace_mismatch(h, a) {
    const ctx = await h.context({ acceptDownloads: true });
    const page = await h.page(ctx);
    await signIn(page, a.url, a.email, a.password);
    await screen(page, 'certificates', 'section[data-cert="cm"]');
    const shown = {};
    for (const name of CERT_NAMES) {
      const want = a.certs[name];
      const sec = `section[data-cert="${name}"]`;
      await certSection(page, name);
      await shownFingerprint(page, name, want.fingerprint_sha256);
      const days = await text(page.locator(`${sec} .days-left`), /\d+/, `${name}: .days-left`);
      const d = Number(days.match(/\d+/)[0]);
      const wantDays = Math.floor(want.expires_in_seconds / 86400);
      if (Math.abs(d - wantDays) > 1) fail(`${name}: .days-left says ${d}, the API says ${wantDays} days`);
      const notAfter = await text(page.locator(`${sec} .not-after`), a.certs[name].not_after.slice(0, 10),
        `${name}: .not-after (the date)`);
      const sans = await text(page.locator(`${sec} .sans`), a.fqdn, `${name}: .sans`);
      const issuer = await text(page.locator(`${sec} .issuer`), /\S/, `${name}: .issuer`);
      const byCa = await text(page.locator(`${sec} .by-ca`), /\S/, `${name}: .by-ca`);
      const nodeStatus = await text(page.locator(`${sec} .node-status`), /\S/, `${name}: .node-status`);
      await visible(page.locator(`${sec} button.replace`), `${name}: the Replace button`);
      await visible(page.locator(`${sec} button.rotate`), `${name}: the Rotate button`);
      shown[name] = { days, notAfter, sans, issuer, byCa, nodeStatus };
    }
    await h.readmeShot(page, 'ui-certificates.png');

    // Download CA gives the cluster CA.
    const dl = await visible(page.locator('a#download-ca'), 'the Download CA link');
    const [download] = await Promise.all([page.waitForEvent('download'), dl.click()]);
    const caText = fs.readFileSync(await download.path(), 'utf8');
    if (caText.trim() !== fs.readFileSync(a.ca_file, 'utf8').trim()) {
      fail('Download CA did not give the cluster CA (certs/ca.pem)');
    }

    const cm = page.locator('section[data-cert="cm"]');
    await cm.locator('button.replace').click();
    const dialog = await visible(page.locator('dialog#replace-dialog'), 'the replace dialog');
    await dialog.locator('textarea#replace-cert').fill(fs.readFileSync(a.cert_file, 'utf8'));
    await dialog.locator('textarea#replace-key').fill(fs.readFileSync(a.key_file, 'utf8'));
    await dialog.locator('button#replace-submit').click();
    const err = await text(page.locator('#replace-error'), 'key_values_mismatch',
      '#replace-error after a key that does not match');
    await visible(page.locator('dialog#replace-dialog'), 'the replace dialog after the error (it stays open)');
    await h.readmeShot(page, 'ui-replace-error.png');
    await page.locator('button#replace-cancel').click();
    await hidden(page.locator('dialog#replace-dialog'), 'the replace dialog after Cancel');
    await shownFingerprint(page, 'cm', a.certs.cm.fingerprint_sha256, 'the cm fingerprint after the refused replacement');
    return { error: err, shown };
  },

  // A good pair, uploaded as two files: the page shows the new fingerprint
  // and the same session goes on, also over a new connection.
  async replace_good(h, a) {
    const ctx = await h.context();
    const page = await h.page(ctx);
    await signIn(page, a.url, a.email, a.password);
    await screen(page, 'certificates', 'section[data-cert="cm"]');
    await shownFingerprint(page, 'cm', a.old_fingerprint, 'the cm fingerprint before');
    await page.locator('section[data-cert="cm"] button.replace').click();
    const dialog = await visible(page.locator('dialog#replace-dialog'), 'the replace dialog');
    await dialog.locator('input#replace-cert-file').setInputFiles(a.cert_file);
    await dialog.locator('input#replace-key-file').setInputFiles(a.key_file);
    await dialog.locator('button#replace-submit').click();
    const result = await text(page.locator('#replace-result'), /\S/, '#replace-result after a good pair', 30000);
    if (await countVisible(page, '#replace-error') > 0) {
      const e = (await page.locator('#replace-error').innerText()).trim();
      if (e) fail(`#replace-error shows "${e}" after a good pair`);
    }
    await page.keyboard.press('Escape');
    await shownFingerprint(page, 'cm', a.new_fingerprint, 'the cm fingerprint after the replacement');
    const cookie = cookieFacts(await sessionCookie(ctx));

    // The same page goes on: reload, no sign-in.
    await page.reload();
    await text(page.locator('#whoami'), a.email, 'after reloading, #whoami (still signed in)');
    await hidden(page.locator('form#signin'), 'the sign-in form after reloading');
    await screen(page, 'certificates', 'section[data-cert="cm"]');
    await shownFingerprint(page, 'cm', a.new_fingerprint, 'the cm fingerprint after reloading');

    // The same session over a new connection (a second context has its own
    // connection pool): the new certificate, the browser's trust in it, and
    // no sign-in.
    const ctx2 = await h.context({ storageState: await ctx.storageState() });
    const page2 = await h.page(ctx2);
    const r = await page2.goto(a.url);
    if (!r.ok()) fail(`GET ${a.url} in a new connection: ${r.status()}`);
    const sec = await r.securityDetails();
    if (!sec || sec.issuer !== a.new_issuer) {
      fail(`a new connection got a certificate issued by ${JSON.stringify(sec?.issuer)}, want ${JSON.stringify(a.new_issuer)}`);
    }
    await text(page2.locator('#whoami'), a.email, 'in a new connection with the same cookie, #whoami');
    await hidden(page2.locator('form#signin'), 'the sign-in form in a new connection with the same cookie');
    await page.bringToFront();
    await screen(page, 'overview', '#cluster-name');
    return { result, cookie, new_connection: sec };
  },

  // Raise min_control_TLS_version to 1.3: dry run, confirm, apply.
  async policy_tls13(h, a) {
    const page = await h.page();
    await signIn(page, a.url, a.email, a.password);
    await policyScreen(page);
    await page.locator('select#min-control').selectOption('1.3');
    await page.locator('button#policy-check').click();
    const total = await text(page.locator('#policy-preview .would-close-total'), /\d+/,
      'the dry run\'s .would-close-total');
    const n = Number(total.match(/\d+/)[0]);
    if (n < a.min_would_close) fail(`the dry run says ${n} sessions would close; want at least ${a.min_would_close} (the test holds a TLS 1.2 session on the API port)`);
    await page.locator('button#policy-apply').click();
    const confirm = await visible(page.locator('dialog#confirm'), 'the confirmation before raising a minimum');
    const confirmText = (await confirm.innerText()).trim();
    await page.locator('button#confirm-yes').click();
    const result = await text(page.locator('#policy-result'), /\S/, '#policy-result after applying');
    const err = await page.locator('#policy-error').count() ? (await page.locator('#policy-error').first().innerText()).trim() : '';
    if (err) fail(`#policy-error shows "${err}" after applying`);
    // The browser speaks TLS 1.3: the session goes on.
    await page.reload();
    await text(page.locator('#whoami'), a.email, 'after raising the minimum and reloading, #whoami');
    await policyScreen(page);
    let shownMin = null;
    for (const deadline = Date.now() + 15000; Date.now() < deadline; await sleep(100)) {
      shownMin = await page.locator('select#min-control').inputValue();
      if (shownMin === '1.3') break;
    }
    if (shownMin !== '1.3') fail(`select#min-control shows ${shownMin} after reloading, want 1.3`);
    return { would_close_total: n, confirm: confirmText, result };
  },

  // Create a TLS database; hand back the command the page shows.
  async db_create(h, a) {
    const ctx = await h.context();
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(a.url).origin });
    const page = await h.page(ctx);
    await signIn(page, a.url, a.email, a.password);
    await screen(page, 'databases', 'button#db-create');
    await page.locator('button#db-create').click();
    await visible(page.locator('input#db-name'), 'the new database form');
    await page.locator('input#db-name').fill(a.db_name);
    await page.locator('input#db-port').fill(String(a.db_port));
    await page.locator('select#db-tls').selectOption('enabled');
    await page.locator('button#db-create-submit').click();
    const row = page.locator('tr[data-bdb-uid]').filter({ hasText: a.db_name });
    await visible(row, `the row of database ${a.db_name}`, 30000);
    const err = await page.locator('#db-error').count() ? (await page.locator('#db-error').first().innerText()).trim() : '';
    if (err) fail(`#db-error shows "${err}" after creating`);
    const uid = Number(await row.first().getAttribute('data-bdb-uid'));
    const command = await text(row.locator('code.redis-cli'), /redis-cli/, `${a.db_name}: code.redis-cli`);
    await row.locator('button.db-copy').first().click();
    let copied = null;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      copied = await page.evaluate(() => navigator.clipboard.readText());
      if (copied) break;
      await sleep(100);
    }
    if ((copied || '').trim() !== command.trim()) fail(`Copy put ${JSON.stringify(copied)} on the clipboard, want the command shown: ${JSON.stringify(command)}`);
    return { uid, command };
  },

  // A db_viewer: no buttons it may not press; a forged change gets 403.
  async viewer(h, a) {
    const page = await h.page();
    await signIn(page, a.url, a.email, a.password);
    await screen(page, 'certificates', 'section[data-cert="cm"]');
    for (const name of CERT_NAMES) {
      await certSection(page, name);
      await shownFingerprint(page, name, a.certs[name], `${name}: the fingerprint a viewer sees`);
    }
    const seen = {};
    const none = async (sel) => {
      const c = await countVisible(page, sel);
      seen[sel] = c;
      if (c) fail(`a db_viewer sees ${c} ${sel}`);
    };
    await none('button.replace');
    await none('button.rotate');
    await screen(page, 'databases');
    await visible(page.locator(`tr[data-bdb-uid="${a.bdb_uid}"]`), 'the database row a viewer may see');
    await none('button#db-create');
    await none('button.db-delete');
    await screen(page, 'policy', 'select#min-control');
    await none('button#policy-apply');
    if (await countVisible(page, 'nav a[data-screen="users"]')) {
      await screen(page, 'users');
      await sleep(500);
      await none('button#user-create');
      await none('button.user-delete');
    }
    const token = await csrfToken(page);
    if (!token) fail('GET /ui/session gave no csrf_token to a signed-in viewer');
    const forged = await pageFetch(page, 'PUT', '/v1/cluster', { min_control_TLS_version: '1.3' }, { 'X-CSRF-Token': token });
    const rotate = await pageFetch(page, 'POST', '/v1/cluster/certificates/rotate', { name: 'cm' }, { 'X-CSRF-Token': token });
    const del = await pageFetch(page, 'DELETE', `/v1/bdbs/${a.bdb_uid}`, null, { 'X-CSRF-Token': token });
    return { forged, rotate, delete: del, seen };
  },

  // Changes without the session's CSRF token are refused; with it, allowed.
  async csrf(h, a) {
    const page = await h.page();
    await signIn(page, a.url, a.email, a.password);
    const token = await csrfToken(page);
    if (!token) fail('GET /ui/session gave no csrf_token');
    const out = {};
    out.put_without = await pageFetch(page, 'PUT', '/v1/cluster', { min_control_TLS_version: '1.3' });
    out.put_wrong = await pageFetch(page, 'PUT', '/v1/cluster', { min_control_TLS_version: '1.3' },
      { 'X-CSRF-Token': token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A') });
    out.user_without = await pageFetch(page, 'POST', '/v1/users', a.user_without);
    out.signout_without = await pageFetch(page, 'DELETE', '/ui/session');
    out.session_after = await pageFetch(page, 'GET', '/ui/session');
    out.user_with = await pageFetch(page, 'POST', '/v1/users', a.user_with, { 'X-CSRF-Token': token });
    // The page still works.
    await screen(page, 'certificates', 'section[data-cert="cm"]');
    return out;
  },
};

async function main() {
  const name = process.argv[2];
  const a = args();
  const fn = scenarios[name];
  if (!fn) {
    console.error(`FAIL: unknown scenario ${JSON.stringify(name)}; known: ${Object.keys(scenarios).join(', ')}`);
    return 2;
  }
  const h = new Harness(a);
  let rc = 0;
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Fail(`scenario did not finish in ${a.timeout_ms / 1000} s`)),
      a.timeout_ms || 120000);
  });
  try {
    await h.launch(a.trust);
    const result = await Promise.race([fn(h, a), deadline]);
    h.checkHygiene();
    fs.writeFileSync(path.join(a.out, 'result.json'), JSON.stringify(result ?? {}, null, 1));
    await h.photograph('final');
  } catch (e) {
    rc = 1;
    const shots = await h.photograph('failure').catch(() => []);
    const why = e instanceof Fail ? e.message : (e.stack || String(e));
    console.error(`FAIL ${name}: ${why}`);
    if (shots.length) console.error(`screenshots: ${shots.join(' ')}`);
  } finally {
    clearTimeout(timer);
    fs.writeFileSync(path.join(a.out, 'run.log'), h.log.join('\n') + '\n');
    await h.close().catch((e) => console.error(`closing chromium: ${e.message}`));
  }
  return rc;
}

process.exitCode = await main();
