// Users screen: list, create, change role, delete. A user_manager sees
// admins but may not change them nor make anyone an admin (ctx decides).

import * as api from './api.js';
import { h, $, showError, clearError, confirmDialog, busy, tableBox, announce } from './dom.js';

// What each role may do, shown next to the role names (docs/api.md).
const ROLE_HELP = {
  admin: 'everything',
  cluster_member: 'view the cluster; manage databases',
  cluster_viewer: 'view the cluster and databases',
  db_member: 'view the cluster; manage databases',
  db_viewer: 'view the cluster and databases',
  user_manager: 'view the cluster; manage users other than admins',
  none: 'no access',
};

const ERROR_FIELD = {
  invalid_email: 'user-email', email_already_exists: 'user-email',
  invalid_password: 'user-password', invalid_role: 'user-role',
};

export async function render(view, ctx) {
  const editable = !!ctx.can.editUsers;
  const tbody = h('tbody');
  view.append(h('h1', { tabindex: -1 }, 'Users'));
  if (editable) view.append(createForm(ctx, () => reload()));
  view.append(
    tableBox('Users', h('table', { id: 'users', 'aria-label': 'Users' },
      h('thead', {}, h('tr', {}, ['Email', 'Name', 'Role', editable ? 'Actions' : null]
        .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      tbody)));

  const reload = async (focusUid) => {
    const list = await api.get('/v1/users');
    list.sort((a, b) => a.uid - b.uid);
    tbody.replaceChildren(...list.map((u) => row(u, ctx, reload)));
    if (focusUid) tbody.querySelector(`tr[data-user-uid="${focusUid}"] .user-role`)?.focus();
  };
  await reload();
}

function roleOptions(roles, selected) {
  return roles.map((r) => h('option', { value: r, selected: r === selected }, `${r} (${ROLE_HELP[r]})`));
}

function row(u, ctx, reload) {
  const mayEdit = ctx.canEditUser(u);
  const me = u.uid === ctx.session.uid;
  const rowError = h('div', { class: 'error row-error', role: 'alert' });
  let roleCell;
  if (mayEdit) {
    const select = h('select', { class: 'user-role', 'aria-label': `Role of ${u.email}` },
      roleOptions(ctx.assignableRoles, u.role));
    select.addEventListener('change', async () => {
      clearError(rowError, [select]);
      try {
        await api.put(`/v1/users/${u.uid}`, { role: select.value });
      } catch (e) {
        select.value = u.role; // nothing changed on the server
        showError(rowError, e, [select]);
        return;
      }
      announce(`${u.email} is now ${select.value}.`);
      u.role = select.value;
      // A signed-in user whose own role changed sees the page of the new role.
      if (me) location.reload();
    });
    roleCell = h('td', {}, select, rowError);
  } else {
    roleCell = h('td', {}, u.role);
  }
  return h('tr', { dataset: { userUid: u.uid } },
    h('th', { scope: 'row' }, u.email, me ? h('span', { class: 'note' }, ' (you)') : null),
    h('td', {}, u.name || ''),
    roleCell,
    ctx.can.editUsers ? h('td', { class: 'row-actions' }, mayEdit
      ? h('button', { type: 'button', class: 'user-delete danger', 'aria-label': `Delete ${u.email}`,
        onclick: (ev) => remove(u, me, ev.currentTarget, rowError, reload) }, 'Delete…')
      : h('span', { class: 'note' }, 'only an admin may change an admin')) : null);
}

async function remove(u, me, button, rowError, reload) {
  clearError(rowError);
  const ok = await confirmDialog({
    title: `Delete user ${u.email}?`,
    body: [me ? 'This is you: you will be signed out.' : `${u.email} can no longer sign in or use the API.`],
    yes: `Delete ${u.email}` });
  if (!ok) return;
  await busy(button, async () => {
    try {
      await api.del(`/v1/users/${u.uid}`);
    } catch (e) { showError(rowError, e); return; }
    announce(`User ${u.email} deleted.`);
    await reload();
    $('#user-create')?.focus();
  });
}

function createForm(ctx, reload) {
  const email = h('input', { id: 'user-email', type: 'text', inputmode: 'email', autocomplete: 'off', required: true });
  const name = h('input', { id: 'user-name', type: 'text', autocomplete: 'off' });
  const password = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password', required: true,
    'aria-describedby': 'user-password-help' });
  const role = h('select', { id: 'user-role' }, roleOptions(ctx.assignableRoles, 'db_viewer'));
  const error = h('div', { id: 'user-error', class: 'error', role: 'alert' });
  const fields = { 'user-email': email, 'user-password': password, 'user-role': role };

  const form = h('form', { id: 'user-create-form', class: 'panel', hidden: true, 'aria-labelledby': 'user-create-title' },
    h('h2', { id: 'user-create-title' }, 'New user'),
    h('div', { class: 'grid' },
      h('div', { class: 'field' }, h('label', { for: 'user-email' }, 'Email'), email),
      h('div', { class: 'field' }, h('label', { for: 'user-name' }, 'Name (optional)'), name),
      h('div', { class: 'field' }, h('label', { for: 'user-password' }, 'Password'), password,
        h('span', { id: 'user-password-help', class: 'note' }, 'at least 8 characters')),
      h('div', { class: 'field' }, h('label', { for: 'user-role' }, 'Role'), role)),
    error,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => toggle(false) }, 'Cancel'),
      h('button', { type: 'submit', id: 'user-create-submit', class: 'primary' }, 'Create')));

  const opener = h('button', { type: 'button', id: 'user-create', 'aria-expanded': 'false',
    'aria-controls': 'user-create-form', onclick: () => toggle(form.hidden) }, 'New user…');
  function toggle(open) {
    form.hidden = !open;
    opener.setAttribute('aria-expanded', String(open));
    (open ? email : opener).focus();
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearError(error, Object.values(fields));
    const body = { email: email.value.trim(), password: password.value, role: role.value };
    if (name.value.trim()) body.name = name.value.trim();
    busy($('#user-create-submit'), async () => {
      let created;
      try {
        created = await api.post('/v1/users', body);
      } catch (e) {
        showError(error, e, [fields[ERROR_FIELD[e.code]]]);
        return;
      }
      form.reset();
      form.hidden = true;
      opener.setAttribute('aria-expanded', 'false');
      announce(`User ${created.email} created as ${created.role}.`);
      await reload(created.uid);
    });
  });
  return h('div', {}, opener, form);
}
