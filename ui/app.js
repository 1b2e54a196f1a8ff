// moat management UI: session, permissions, navigation. Each screen lives
// in its own module and exports render(view, ctx).

import { request, setCsrfToken, onSessionLost, lastRequestAt } from './api.js';
import { h, $, showError, clearError, busy, errorText } from './dom.js';
import * as overview from './overview.js';
import * as certificates from './certificates.js';
import * as policy from './policy.js';
import * as databases from './databases.js';
import * as users from './users.js';

// What each role may do: docs/api.md's role table (RS's permissions), in
// the page's words. The server enforces the same with 403; this table only
// decides what the page shows, so that no button is offered that can only fail.
const ROLE_CAN = {
  admin:          ['viewCluster', 'editCluster', 'viewDbs', 'editDbs', 'viewUsers', 'editUsers'],
  cluster_member: ['viewCluster', 'viewDbs', 'editDbs'],
  cluster_viewer: ['viewCluster', 'viewDbs'],
  db_member:      ['viewCluster', 'viewDbs', 'editDbs'],
  db_viewer:      ['viewCluster', 'viewDbs'],
  user_manager:   ['viewCluster', 'viewDbs', 'viewUsers', 'editUsers'],
  none:           [],
};
const ROLES = Object.keys(ROLE_CAN);

// The screens, in nav order: route (#/<id>), title, and what one needs to see it.
const SCREENS = [
  { id: 'overview',     title: 'Overview',     needs: 'viewCluster', module: overview },
  { id: 'certificates', title: 'Certificates', needs: 'viewCluster', module: certificates },
  { id: 'policy',       title: 'TLS policy',   needs: 'viewCluster', module: policy },
  { id: 'databases',    title: 'Databases',    needs: 'viewDbs',     module: databases },
  { id: 'users',        title: 'Users',        needs: 'viewUsers',   module: users },
];

let session = null;   // {email, role, uid, csrf_token, idle_timeout} while signed in
let idleTimer = null;

// What the screens get: who is signed in and what they may do.
function contextFor(s) {
  const can = Object.fromEntries((ROLE_CAN[s.role] || []).map((p) => [p, true]));
  return {
    session: s,
    can,
    // A user_manager may not touch admins nor make anyone one (it could
    // otherwise make itself an admin).
    canEditUser: (u) => !!can.editUsers && (s.role === 'admin' || u.role !== 'admin'),
    assignableRoles: s.role === 'admin' ? ROLES : ROLES.filter((r) => r !== 'admin'),
  };
}
let ctx = null;

function allowedScreens() {
  return ctx ? SCREENS.filter((s) => ctx.can[s.needs]) : [];
}

// ---- signed in / signed out ----

function showSignin(note) {
  session = null;
  ctx = null;
  setCsrfToken(null);
  clearTimeout(idleTimer);
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  // Nothing of the cluster stays on screen once the session is gone.
  $('#screen').replaceChildren();
  $('#nav').hidden = true;
  $('#who').hidden = true;
  $('#signin-view').hidden = false;
  $('#signin-note').textContent = note || '';
  document.title = 'Sign in · moat';
  const email = $('#email');
  (email.value ? $('#password') : email).focus();
}

function showApp(s) {
  session = s;
  ctx = contextFor(s);
  setCsrfToken(s.csrf_token);
  $('#signin-view').hidden = true;
  clearError($('#signin-error'));
  $('#signin-note').textContent = '';
  $('#password').value = '';
  $('#whoami').textContent = `${s.email} (${s.role})`;
  $('#who').hidden = false;
  $('#nav-list').replaceChildren(...allowedScreens().map((sc) =>
    h('li', {}, h('a', { href: `#/${sc.id}`, dataset: { screen: sc.id },
      // The current screen's link reloads it (no hashchange fires).
      onclick: () => { if (location.hash === `#/${sc.id}`) route(true); } }, sc.title))));
  $('#nav').hidden = false;
  armIdleCheck();
  route(false);
}

onSessionLost(() => {
  if (session) showSignin('Your session has ended (idle too long, signed out elsewhere, or the node restarted). Sign in again to continue.');
});

// The server ends a session after idle_timeout seconds without a request.
// Check when that time is up, so an unattended screen does not keep showing
// the cluster; GET /ui/session answers 401 (→ sign-in form) if it ended.
function armIdleCheck() {
  clearTimeout(idleTimer);
  const idleMs = (session?.idle_timeout || 900) * 1000;
  const due = lastRequestAt() + idleMs + 1000 - Date.now();
  idleTimer = setTimeout(async () => {
    if (!session) return;
    if (Date.now() - lastRequestAt() >= idleMs) {
      try { await request('GET', '/ui/session'); } catch { /* 401 handled by onSessionLost */ }
    }
    if (session) armIdleCheck();
  }, Math.max(due, 1000));
}

$('#signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('#signin-error');
  clearError(err, [$('#email'), $('#password')]);
  await busy($('#signin-submit'), async () => {
    try {
      const s = await request('POST', '/ui/session',
        { email: $('#email').value.trim(), password: $('#password').value }, { signin: true });
      showApp(s);
    } catch (e) {
      showError(err, e, e.status === 401 ? [$('#email'), $('#password')] : []);
      $('#password').select();
    }
  });
});

// The browser presents its client certificate when the cm port asks for
// one (only while the cluster signs in with certificates); the server
// checks it and opens a session as the user with that subject.
$('#signin-cert').addEventListener('click', async () => {
  const err = $('#signin-error');
  clearError(err, [$('#email'), $('#password')]);
  await busy($('#signin-cert'), async () => {
    try {
      showApp(await request('POST', '/ui/session', { certificate: true }, { signin: true }));
    } catch (e) {
      showError(err, e, []);
    }
  });
});

$('#signout').addEventListener('click', async () => {
  try { await request('DELETE', '/ui/session'); } catch { /* signed out either way */ }
  showSignin('You are signed out.');
});

// ---- navigation ----

// Render the screen the hash names (or the first one the role may see).
// focusHeading: move focus to the new screen's heading, so a screen reader
// hears where it landed after following a nav link.
async function route(focusHeading = true) {
  if (!ctx) return;
  const screens = allowedScreens();
  const wanted = location.hash.replace(/^#\/?/, '');
  const screen = screens.find((s) => s.id === wanted) || screens[0];
  const box = $('#screen');
  if (!screen) {
    box.replaceChildren(h('h1', {}, 'No access'),
      h('p', {}, `Your role (${session.role}) may not see anything in this cluster. Ask an admin for a role.`));
    return;
  }
  if (wanted !== screen.id) history.replaceState(null, '', `#/${screen.id}`);
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.screen === screen.id) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${screen.title} · moat`;
  // A fresh container per visit: a slow answer for a screen the user has
  // already left fills a detached element instead of the current screen.
  const view = h('div', { class: 'view', dataset: { view: screen.id } });
  box.replaceChildren(view);
  try {
    const done = screen.module.render(view, ctx);
    if (focusHeading) view.querySelector('h1')?.focus();
    await done;
  } catch (e) {
    if (e.status !== 401) view.append(h('p', { class: 'error', role: 'alert' }, errorText(e)));
  }
}
window.addEventListener('hashchange', () => route(true));

// ---- start ----

(async () => {
  try {
    showApp(await request('GET', '/ui/session', undefined, { signin: true }));
  } catch (e) {
    showSignin(e.status === 401 ? '' : errorText(e));
  }
})();
