// TLS policy screen: minimum versions and cipher settings, checked with a
// dry run (PUT /v1/cluster?dry_run=true) and applied with PUT /v1/cluster.

import * as api from './api.js';
import { h, showError, clearError, unconfirmedNodes, confirmDialog, busy, tableBox,
  formatDate } from './dom.js';

const VERSIONS = ['1.2', '1.3'];

// The settable fields: API name, input id (a test hook), label, group.
const FIELDS = [
  { key: 'min_control_TLS_version', id: 'min-control', group: 'control', version: true,
    label: 'Minimum TLS version' },
  { key: 'control_cipher_suites', id: 'control-ciphers', group: 'control',
    label: 'Cipher list up to TLS 1.2 (OpenSSL format)' },
  { key: 'min_data_TLS_version', id: 'min-data', group: 'data', version: true,
    label: 'Minimum TLS version' },
  { key: 'data_cipher_list', id: 'data-ciphers', group: 'data',
    label: 'Cipher list up to TLS 1.2 (OpenSSL format)' },
  { key: 'data_cipher_suites_tls_1_3', id: 'data-suites', group: 'data',
    label: 'TLS 1.3 cipher suites (OpenSSL format)' },
];

export async function render(view, ctx) {
  const editable = !!ctx.can.editCluster;
  view.append(h('h1', { tabindex: -1 }, 'TLS policy'));

  const inputs = {};
  for (const f of FIELDS) {
    inputs[f.key] = f.version
      ? h('select', { id: f.id, disabled: !editable }, VERSIONS.map((v) => h('option', { value: v }, `TLS ${v}`)))
      : h('input', { id: f.id, type: 'text', spellcheck: 'false', autocomplete: 'off', disabled: !editable });
  }
  const field = (f) => h('div', { class: 'field' }, h('label', { for: f.id }, f.label), inputs[f.key]);
  const tls13Control = h('code', { id: 'control-suites-13' });

  const error = h('div', { id: 'policy-error', class: 'error', role: 'alert' });
  const preview = h('div', { id: 'policy-preview', 'aria-live': 'polite' });
  const result = h('div', { id: 'policy-result', class: 'result', role: 'status' });
  // Enter in a field runs Check (the form's submit), never Apply.
  const checkBtn = h('button', { type: 'submit', id: 'policy-check' }, 'Check');
  const applyBtn = h('button', { type: 'button', id: 'policy-apply', class: 'primary' }, 'Apply');

  const form = h('form', { id: 'policy-form' },
    h('fieldset', {}, h('legend', {}, 'Control plane: REST API, this UI, metrics'),
      FIELDS.filter((f) => f.group === 'control').map(field),
      h('p', { class: 'note' }, 'TLS 1.3 cipher suites (fixed): ', tls13Control)),
    h('fieldset', {}, h('legend', {}, 'Data plane: database endpoints, syncer'),
      FIELDS.filter((f) => f.group === 'data').map(field)),
    editable ? [error, h('div', { class: 'actions' }, checkBtn, applyBtn)]
      : h('p', { class: 'note' }, 'Only an admin may change the policy.'),
    preview, result);
  // Read before the form shows: a choice made before the values arrive
  // would be overwritten by them.
  const loaded = await api.get('/v1/cluster');
  view.append(
    h('p', { class: 'note' }, 'Changes reach the next handshake on every node with no restart. ' +
      'Raising a minimum also closes the live sessions below it; Check shows how many, and Apply ' +
      'asks before it raises one.'),
    form);

  let current = {};
  const fill = (cluster) => {
    current = cluster;
    for (const f of FIELDS) {
      const el = inputs[f.key];
      const v = cluster[f.key] ?? '';
      // A version this page does not list still shows as it is.
      if (f.version && v && !VERSIONS.includes(v)) el.append(h('option', { value: v }, `TLS ${v}`));
      el.value = v;
    }
    tls13Control.textContent = cluster.control_cipher_suites_tls_1_3 || '';
  };
  fill(loaded);
  if (!editable) return;

  const changes = () => Object.fromEntries(FIELDS
    .filter((f) => inputs[f.key].value !== (current[f.key] ?? ''))
    .map((f) => [f.key, inputs[f.key].value]));
  const raises = (ch) => FIELDS.some((f) => f.version && f.key in ch &&
    parseFloat(ch[f.key]) > parseFloat(current[f.key] || '0'));
  const allInputs = Object.values(inputs);

  // An error names its field when the description does; otherwise mark
  // the changed fields of its kind.
  const fieldsFor = (e, ch) => {
    const named = FIELDS.filter((f) => e.message.includes(f.key));
    const pick = named.length ? named : FIELDS.filter((f) => f.key in ch &&
      (e.code === 'invalid_tls_version' ? f.version : e.code === 'invalid_cipher_list' ? !f.version : true));
    return pick.map((f) => inputs[f.key]);
  };

  const reset = () => { clearError(error, allInputs); result.replaceChildren(); };
  for (const el of allInputs) el.addEventListener('input', () => preview.replaceChildren());

  // Dry run: the server validates and says what would change and close.
  const dryRun = async (ch) => {
    try {
      const res = await api.put('/v1/cluster?dry_run=true', ch);
      preview.replaceChildren(...previewOf(res).filter(Boolean));
      return res;
    } catch (e) {
      preview.replaceChildren();
      showError(error, e, fieldsFor(e, ch));
      return null;
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    reset();
    const ch = changes();
    if (!Object.keys(ch).length) {
      preview.replaceChildren(h('p', {}, 'Nothing changed yet: edit a field, then Check.'));
      return;
    }
    busy(checkBtn, () => dryRun(ch));
  });

  applyBtn.addEventListener('click', () => busy(applyBtn, async () => {
    reset();
    const ch = changes();
    if (!Object.keys(ch).length) {
      result.append(h('p', {}, 'Nothing to apply: the policy is already like this.'));
      return;
    }
    if (raises(ch)) {
      const dry = await dryRun(ch);
      if (!dry) return;
      const total = dry.would_close?.total ?? 0;
      const ok = await confirmDialog({
        title: 'Raise the minimum TLS version?',
        body: [`This closes ${total} live session${total === 1 ? '' : 's'} that use an older TLS version ` +
          '(the numbers per node are under Check result). Their clients must reconnect with the new minimum; ' +
          'clients that cannot will be refused.'],
        yes: total ? `Apply and close ${total}` : 'Apply' });
      if (!ok) return;
    }
    let res;
    let pending = null;
    try {
      res = await api.put('/v1/cluster', ch);
    } catch (e) {
      if (!api.isStoredButUnconfirmed(e)) { showError(error, e, fieldsFor(e, ch)); return; }
      res = e.body;
      pending = unconfirmedNodes(e.body);
    }
    const closed = res.closed_sessions ?? 0;
    result.replaceChildren(h('div', {}, h('p', {}, 'Applied. ', h('span', { class: 'closed-sessions' }, String(closed)),
      ` live session${closed === 1 ? ' was' : 's were'} closed.`), pending));
    preview.replaceChildren();
    try { fill(await api.get('/v1/cluster')); } catch { /* the next visit reloads */ }
  }));
}

// What a dry run answered: the changes and the sessions it would close.
function previewOf(res) {
  const changes = Object.entries(res.changes || {});
  const wc = res.would_close || { total: 0, nodes: [] };
  const rows = [];
  for (const n of wc.nodes || []) {
    for (const [port, byVersion] of Object.entries(n)) {
      if (!byVersion || typeof byVersion !== 'object') continue; // uid, addr, as_of
      for (const [version, count] of Object.entries(byVersion)) {
        rows.push(h('tr', {}, h('td', {}, `${n.uid}${n.addr ? ` (${n.addr})` : ''}`), h('td', {}, port),
          h('td', {}, version), h('td', { class: 'num' }, String(count)),
          h('td', {}, n.as_of ? formatDate(n.as_of) : '')));
      }
    }
  }
  return [
    h('h2', {}, 'Check result'),
    h('p', {}, 'The policy is valid: every check passed in a trial, and nothing was written.'),
    changes.length
      ? h('ul', { class: 'changes' }, changes.map(([k, v]) =>
        h('li', {}, h('code', {}, k), `: ${v.from || '(empty)'} → ${v.to || '(empty)'}`)))
      : h('p', {}, 'No change: the policy is already like this.'),
    h('p', {}, 'Live sessions this would close: ', h('strong', { class: 'would-close-total' }, String(wc.total ?? 0))),
    rows.length ? tableBox('Sessions that would close, per node',
      h('table', { class: 'would-close' },
        h('thead', {}, h('tr', {}, ['Node', 'Port', 'TLS version', 'Sessions', 'Counted at']
          .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows))) : null,
    rows.length ? h('p', { class: 'note' }, 'The node you are connected to counts at once; the ' +
      'others count what they last reported (every few seconds).') : null,
  ];
}
