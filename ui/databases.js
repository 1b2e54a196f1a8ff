// Databases screen: list with a copyable redis-cli command per endpoint,
// create, edit TLS and client authentication (dialog#db-edit-dialog), delete.

import * as api from './api.js';
import { h, $, showError, clearError, confirmDialog, busy, tableBox, copyText,
  announce, pemBlocks } from './dom.js';

const MIB = 1024 * 1024;
const TLS_MODES = [
  ['enabled', 'enabled (TLS endpoint)'],
  ['disabled', 'disabled (plain endpoint)'],
  ['replica_ssl', 'replica_ssl (TLS for replication only)'],
];

// How to reach a database from a shell; --cacert ca.pem is the file from
// Download CA. A plaintext endpoint (disabled, replica_ssl) gets no --tls.
export function redisCli(b) {
  const ep = (b.endpoints || [])[0] || {};
  const host = (Array.isArray(ep.addr) ? ep.addr[0] : ep.addr) || ep.dns_name || '<node address>';
  const port = ep.port || b.port;
  if (b.tls_mode !== 'enabled') return `redis-cli -h ${host} -p ${port}`;
  let cmd = `redis-cli --tls --cacert ca.pem -h ${host} -p ${port}`;
  if (b.enforce_client_authentication === 'enabled') cmd += ' --cert client.crt --key client.key';
  return cmd;
}

// The field an error code is about, by input id.
const ERROR_FIELD = {
  name_in_use: 'db-name', port_in_use: 'db-port', invalid_port: 'db-port',
  invalid_memory_size: 'db-memory', invalid_tls_mode: 'db-tls',
  invalid_certificate: 'db-certs', duplicated_certs: 'db-certs', certificate_expired: 'db-certs',
};

export async function render(view, ctx) {
  const editable = !!ctx.can.editDbs;
  const tbody = h('tbody');
  view.append(h('h1', { tabindex: -1 }, 'Databases'));
  if (editable) view.append(createForm(() => reload()));
  view.append(
    tableBox('Databases', h('table', { id: 'bdbs', 'aria-label': 'Databases' },
      h('thead', {}, h('tr', {}, ['Name', 'Port', 'TLS', 'Status', 'Endpoint', 'Connect with redis-cli',
        editable ? 'Actions' : null].filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    h('p', { class: 'note' }, 'ca.pem in the commands is the cluster CA: ',
      h('a', { href: '/ca.pem', download: true }, 'download it'),
      ' (it saves as ca.pem). A database that ' +
      'requires client certificates also needs --cert and --key with a certificate it accepts.'));

  let dbs = [];
  const reload = async (focusUid) => {
    dbs = await api.get('/v1/bdbs');
    dbs.sort((a, b) => a.uid - b.uid);
    tbody.replaceChildren(...(dbs.length ? dbs.map((b) => row(b, editable, reload))
      : [h('tr', {}, h('td', { colspan: editable ? 7 : 6 }, 'No databases yet.'))]));
    if (focusUid) tbody.querySelector(`tr[data-bdb-uid="${focusUid}"] .db-copy`)?.focus();
    pollPending();
  };

  // A new or changed database is "pending" until its shard answers; follow
  // it, updating only the status cells so the focus stays where it is.
  let polling = false;
  const pollPending = () => {
    if (polling || !dbs.some((b) => b.status === 'pending')) return;
    polling = true;
    setTimeout(async () => {
      polling = false;
      if (!view.isConnected) return;
      try { dbs = await api.get('/v1/bdbs'); } catch { return; }
      for (const b of dbs) {
        const cell = tbody.querySelector(`tr[data-bdb-uid="${b.uid}"] .db-status`);
        if (cell) cell.textContent = b.status;
      }
      pollPending();
    }, 2000);
  };

  setupEditDialog(() => reload());
  await reload();
}

function row(b, editable, reload) {
  const ep = (b.endpoints || [])[0] || {};
  const cmd = redisCli(b);
  const code = h('code', { class: 'redis-cli' }, cmd);
  const rowError = h('div', { class: 'error row-error', role: 'alert' });
  const addr = Array.isArray(ep.addr) ? ep.addr.join(', ') : ep.addr;
  return h('tr', { dataset: { bdbUid: b.uid } },
    h('th', { scope: 'row' }, b.name),
    h('td', { class: 'num' }, String(b.port)),
    h('td', {}, b.tls_mode + (b.enforce_client_authentication === 'enabled' ? ' + client certificates' : '')),
    h('td', { class: 'db-status' }, b.status),
    h('td', {}, ep.dns_name || '', addr ? h('div', { class: 'note' }, `${addr}:${ep.port || b.port}`) : null),
    h('td', { class: 'cli' }, code, ' ',
      h('button', { type: 'button', class: 'db-copy', 'aria-label': `Copy the redis-cli command for ${b.name}`,
        onclick: () => copyText(cmd, code) }, 'Copy')),
    editable ? h('td', { class: 'row-actions' },
      h('button', { type: 'button', class: 'db-edit', 'aria-label': `Edit TLS settings of ${b.name}`,
        onclick: () => openEdit(b) }, 'Edit TLS…'),
      h('button', { type: 'button', class: 'db-delete danger', 'aria-label': `Delete ${b.name}`,
        onclick: (ev) => remove(b, ev.currentTarget, rowError, reload) }, 'Delete…'),
      rowError) : null);
}

async function remove(b, button, rowError, reload) {
  clearError(rowError);
  const ok = await confirmDialog({
    title: `Delete database ${b.name}?`,
    body: [`Database ${b.name} (port ${b.port}) and all its data are removed on every node. ` +
      'This cannot be undone.'],
    yes: `Delete ${b.name}` });
  if (!ok) return;
  await busy(button, async () => {
    try {
      await api.del(`/v1/bdbs/${b.uid}`);
    } catch (e) { showError(rowError, e); return; }
    announce(`Database ${b.name} deleted.`);
    await reload();
    $('#db-create')?.focus();
  });
}

// ---- create ----

function createForm(reload) {
  const name = h('input', { id: 'db-name', type: 'text', required: true, autocomplete: 'off', 'aria-describedby': 'db-name-help' });
  const port = h('input', { id: 'db-port', type: 'text', inputmode: 'numeric',
    placeholder: 'first free', 'aria-describedby': 'db-port-help' });
  const memory = h('input', { id: 'db-memory', type: 'text', inputmode: 'decimal', value: '100', required: true });
  const tls = h('select', { id: 'db-tls' }, TLS_MODES.map(([v, t]) => h('option', { value: v }, t)));
  tls.value = 'enabled';
  const enforce = h('input', { id: 'db-enforce', type: 'checkbox' });
  const certs = h('textarea', { id: 'db-certs', rows: 4, spellcheck: 'false',
    placeholder: '-----BEGIN CERTIFICATE-----' });
  const error = h('div', { id: 'db-error', class: 'error', role: 'alert' });
  const fields = { 'db-name': name, 'db-port': port, 'db-memory': memory, 'db-tls': tls, 'db-certs': certs };

  const form = h('form', { id: 'db-create-form', class: 'panel', hidden: true, 'aria-labelledby': 'db-create-title' },
    h('h2', { id: 'db-create-title' }, 'New database'),
    h('div', { class: 'grid' },
      h('div', { class: 'field' }, h('label', { for: 'db-name' }, 'Name'), name,
        h('span', { id: 'db-name-help', class: 'note' }, 'letters, digits, - and _')),
      h('div', { class: 'field' }, h('label', { for: 'db-port' }, 'Port'), port,
        h('span', { id: 'db-port-help', class: 'note' }, '10000–19999; empty: the first free one')),
      h('div', { class: 'field' }, h('label', { for: 'db-memory' }, 'Memory (MiB)'), memory),
      h('div', { class: 'field' }, h('label', { for: 'db-tls' }, 'TLS'), tls)),
    h('details', {}, h('summary', {}, 'Client certificates (optional)'),
      h('div', { class: 'check' }, enforce,
        h('label', { for: 'db-enforce' }, 'Require a client certificate (needs TLS enabled)')),
      h('label', { for: 'db-certs' }, 'Accepted client certificates or CAs (PEM, one or more)'), certs),
    error,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: () => toggle(false) }, 'Cancel'),
      h('button', { type: 'submit', id: 'db-create-submit', class: 'primary' }, 'Create')));

  const opener = h('button', { type: 'button', id: 'db-create', 'aria-expanded': 'false',
    'aria-controls': 'db-create-form', onclick: () => toggle(form.hidden) }, 'New database…');
  function toggle(open) {
    form.hidden = !open;
    opener.setAttribute('aria-expanded', String(open));
    (open ? name : opener).focus();
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearError(error, Object.values(fields));
    const body = { name: name.value.trim(), memory_size: Math.round(Number(memory.value) * MIB), tls_mode: tls.value };
    if (port.value) body.port = Number(port.value);
    const pems = pemBlocks(certs.value);
    if (pems.length) body.authentication_ssl_client_certs = pems.map((p) => ({ client_cert: p }));
    if (enforce.checked) body.enforce_client_authentication = 'enabled';
    busy($('#db-create-submit'), async () => {
      let created;
      try {
        created = await api.post('/v1/bdbs', body);
      } catch (e) {
        showError(error, e, [fields[ERROR_FIELD[e.code]]
          || (e.code === 'invalid_configuration' && (enforce.checked || pems.length) ? certs : null)]);
        return;
      }
      form.reset();
      tls.value = 'enabled';
      form.hidden = true;
      opener.setAttribute('aria-expanded', 'false');
      announce(`Database ${created.name} created on port ${created.port}.`);
      await reload(created.uid);
    });
  });
  return h('div', {}, opener, form);
}

// ---- edit (static dialog in index.html) ----

let editing = null;
let editReload = null;
let editReady = false;

function setupEditDialog(reload) {
  editReload = reload;
  if (editReady) return;
  editReady = true;
  const dlg = $('#db-edit-dialog');
  const certs = $('#db-edit-certs');
  $('#db-edit-certs-file').addEventListener('change', async (ev) => {
    const texts = await Promise.all([...ev.target.files].map((f) => f.text()));
    certs.value = [certs.value.trim(), ...texts].filter(Boolean).join('\n');
  });
  $('#db-edit-cancel').addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => {
    document.querySelector(`tr[data-bdb-uid="${editing?.uid}"] .db-edit`)?.focus();
  });
  $('#db-edit-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const error = $('#db-edit-error');
    clearError(error, [certs, $('#db-edit-tls')]);
    const body = {
      tls_mode: $('#db-edit-tls').value,
      enforce_client_authentication: $('#db-edit-enforce').checked ? 'enabled' : 'disabled',
      authentication_ssl_client_certs: pemBlocks(certs.value).map((p) => ({ client_cert: p })),
    };
    busy($('#db-edit-submit'), async () => {
      try {
        await api.put(`/v1/bdbs/${editing.uid}`, body);
      } catch (e) {
        showError(error, e, [e.code === 'invalid_tls_mode' ? $('#db-edit-tls') : certs]);
        return;
      }
      announce(`Database ${editing.name} updated; new connections use the new settings.`);
      dlg.close();
      await editReload();
      document.querySelector(`tr[data-bdb-uid="${editing.uid}"] .db-edit`)?.focus();
    });
  });
}

function openEdit(b) {
  editing = b;
  $('#db-edit-title').textContent = `TLS settings of ${b.name}`;
  $('#db-edit-tls').value = b.tls_mode;
  $('#db-edit-enforce').checked = b.enforce_client_authentication === 'enabled';
  $('#db-edit-certs').value = (b.authentication_ssl_client_certs || []).map((c) => c.client_cert.trim()).join('\n');
  $('#db-edit-certs-file').value = '';
  clearError($('#db-edit-error'), [$('#db-edit-certs'), $('#db-edit-tls')]);
  $('#db-edit-dialog').showModal();
  $('#db-edit-tls').focus();
}
