// Certificates screen: the five service certificates, who serves which
// version, Replace (dialog#replace-dialog), Rotate, and the cluster CA.

import * as api from './api.js';
import { h, $, showError, clearError, unconfirmedNodes, confirmDialog, busy,
  formatDate, errorText } from './dom.js';

export const CERTS = [
  { name: 'api', what: 'REST API (HTTPS)' },
  { name: 'cm', what: 'management UI, this page (HTTPS)' },
  { name: 'proxy', what: 'database endpoints (TLS); must cover *.<cluster FQDN>' },
  { name: 'syncer', what: 'client certificate for replication (ReplicaOf); needs clientAuth' },
  { name: 'metrics_exporter', what: 'Prometheus metrics (HTTPS)' },
];
export const SOON_DAYS = 45;

// The five, in CERTS order; one that fails to load is {name, error}.
export async function loadCertificates() {
  const got = await Promise.allSettled(CERTS.map((c) =>
    api.get(`/v1/cluster/certificates/${c.name}`)));
  return got.map((g, i) => (g.status === 'fulfilled' ? g.value
    : { name: CERTS[i].name, error: g.reason }));
}

// Whole days left; the server's expires_in_seconds, so that a wrong clock
// on the operator's machine does not change the answer.
export function daysLeft(cert) {
  const secs = typeof cert.expires_in_seconds === 'number' ? cert.expires_in_seconds
    : (Date.parse(cert.not_after) - Date.now()) / 1000;
  return Math.floor(secs / 86400);
}

export function daysText(days) {
  if (days < 0) return `expired ${-days} day${days === -1 ? '' : 's'} ago`;
  const s = `${days} day${days === 1 ? '' : 's'} left`;
  return days < SOON_DAYS ? `${s} (under ${SOON_DAYS}: renew soon)` : s;
}

// Does this node serve the certificate's current version?
export function servedState(node, cert) {
  const v = node.certificates?.[cert.name]?.version;
  if (node.status !== 'active') return { state: 'down', version: v };
  if (v === undefined) return { state: 'unknown', version: v };
  return { state: v === cert.version ? 'current' : 'stale', version: v };
}

function nodeLabel(n) { return `node ${n.uid}${n.addr ? ` (${n.addr})` : ''}`; }

function nodeStatus(cert, nodes) {
  return h('ul', { class: 'node-status' }, nodes.map((n) => {
    const { state, version } = servedState(n, cert);
    const text = {
      current: `serves version ${version} (current)`,
      stale: `serves version ${version}, not yet the current ${cert.version}`,
      down: `down${version !== undefined ? `; last served version ${version}` : ''}`,
      unknown: 'has not reported yet',
    }[state];
    return h('li', { class: state, dataset: { nodeUid: n.uid, state } }, `${nodeLabel(n)}: ${text}`);
  }));
}

let reloadList = null; // the current screen's reload, for the dialog to call

export async function render(view, ctx) {
  view.append(
    h('h1', { tabindex: -1 }, 'Certificates'),
    h('p', { class: 'note' }, 'Every node serves the same certificates. A change is validated first ' +
      '(key, chain, names, expiry, a trial handshake), stored once, and served by each node on its ' +
      'next handshake; open connections are not dropped.'));
  const list = h('div', { class: 'cert-list', 'aria-busy': 'true' }, h('p', {}, 'Loading…'));
  view.append(list, caSection());
  setupReplaceDialog();
  showCaFingerprint(view.querySelector('#ca-fingerprint'));

  // Reload the five; a message for one certificate is put into its fresh section.
  const reload = async (name, message) => {
    const [certs, nodes] = await Promise.all([loadCertificates(), api.get('/v1/nodes')]);
    // Keep the keyboard focus on the same button of the re-drawn section.
    const had = list.contains(document.activeElement) ? document.activeElement : null;
    const where = had && `section[data-cert="${had.closest('section')?.dataset.cert}"] ${had.tagName}.${had.classList[0]}`;
    list.replaceChildren(...certs.map((c) => certSection(c, nodes, ctx, reload)));
    if (where) list.querySelector(where)?.focus();
    list.removeAttribute('aria-busy');
    if (name && message) list.querySelector(`section[data-cert="${name}"] .cert-result`).append(message);
  };
  reloadList = reload;
  await reload();
}

function certSection(c, nodes, ctx, reload) {
  const info = CERTS.find((x) => x.name === c.name);
  const id = `cert-${c.name}-title`;
  const head = h('h2', { id }, c.name, h('span', { class: 'what' }, ` · ${info.what}`));
  if (c.error) {
    return h('section', { class: 'cert', dataset: { cert: c.name }, 'aria-labelledby': id }, head,
      h('p', { class: 'error', role: 'alert' }, errorText(c.error)));
  }
  const days = daysLeft(c);
  const soon = days < SOON_DAYS;
  const row = (label, ...value) => [h('dt', {}, label), h('dd', {}, ...value)];
  const errorBox = h('div', { class: 'error cert-error', role: 'alert' });
  const resultBox = h('div', { class: 'result cert-result', role: 'status' });

  const actions = [];
  if (ctx.can.editCluster) {
    actions.push(h('button', { type: 'button', class: 'replace', 'aria-label': `Replace the ${c.name} certificate`,
      onclick: () => openReplace(c.name) }, 'Replace…'));
    actions.push(h('button', { type: 'button', class: 'rotate',
      'aria-label': c.issued_by_cluster_ca ? `Rotate the ${c.name} certificate`
        : `Rotate the ${c.name} certificate, replacing your own with one from the cluster CA`,
      onclick: (ev) => rotate(c, ev.currentTarget, errorBox, resultBox, reload) },
    c.issued_by_cluster_ca ? 'Rotate' : 'Rotate (use the cluster CA)…'));
  }

  return h('section', { class: `cert${soon ? ' soon' : ''}`, dataset: { cert: c.name }, 'aria-labelledby': id },
    head,
    c.name === 'cm' && c.issued_by_cluster_ca ? h('p', { class: 'warning' },
      'Browsers warn about this page while this certificate is issued by the cluster CA: ' +
      'trust the CA (below) or replace it with a certificate from your PKI.') : null,
    h('dl', {},
      row('Subject', h('span', { class: 'subject' }, c.subject)),
      row('Names (SANs)', h('span', { class: 'sans' }, (c.san || []).join(', '))),
      row('Issuer', h('span', { class: 'issuer' }, c.issuer)),
      row('Issued by the cluster CA', h('span', { class: 'by-ca', dataset: { byCa: String(!!c.issued_by_cluster_ca) } },
        c.issued_by_cluster_ca ? 'yes' : 'no (an operator supplied it)')),
      row('Valid until', h('time', { class: 'not-after', datetime: c.not_after }, formatDate(c.not_after)),
        ' · ', h('span', { class: `days-left${soon ? ' soon' : ''}`, dataset: { days } }, daysText(days))),
      row('SHA-256 fingerprint', h('code', { class: 'fingerprint' }, c.fingerprint_sha256)),
      row('Key', `${c.key_type} ${c.key_bits} bits · chain of ${c.chain_length} · version ${c.version}`),
      row('Last change', `${formatDate(c.updated_at)}${c.updated_by ? ` by ${c.updated_by}` : ''}`),
      row('Nodes', nodeStatus(c, nodes))),
    actions.length ? h('div', { class: 'actions' }, actions) : null,
    errorBox, resultBox);
}

// The answer of a change: the new fingerprint, or that nothing changed.
function changeResult(cert) {
  if (cert.unchanged) {
    return h('p', {}, 'unchanged: this certificate was already in place; nothing was written ',
      `(version ${cert.version}, fingerprint `, h('code', { class: 'new-fingerprint' }, cert.fingerprint_sha256), ').');
  }
  return h('p', {}, `Done: version ${cert.version}, new fingerprint `,
    h('code', { class: 'new-fingerprint' }, cert.fingerprint_sha256), '.');
}

// Rotate re-issues from the cluster CA. An operator's certificate is only
// rotated with an explicit confirmation (force), since that swaps their
// PKI's certificate for one clients may not trust.
async function rotate(c, button, errorBox, resultBox, reload) {
  clearError(errorBox);
  resultBox.replaceChildren();
  const body = { name: c.name };
  if (!c.issued_by_cluster_ca) {
    const ok = await confirmDialog({
      title: `Replace your ${c.name} certificate with one from the cluster CA?`,
      body: [`The ${c.name} certificate was supplied by an operator (issuer: ${c.issuer}).`,
        'Rotating it replaces it with a new certificate from the cluster CA. Clients that trust ' +
        'only your own CA will stop trusting this service until they trust the cluster CA too.'],
      yes: 'Rotate anyway' });
    if (!ok) return;
    body.force = true;
  }
  await busy(button, async () => {
    let res;
    let pending = null;
    try {
      res = await api.post('/v1/cluster/certificates/rotate', body);
    } catch (e) {
      if (!api.isStoredButUnconfirmed(e)) { showError(errorBox, e); return; }
      res = e.body;
      pending = unconfirmedNodes(e.body);
    }
    const cert = (res.certificates || []).find((x) => x.name === c.name) || {};
    const msg = h('div', {}, h('p', {}, `Rotated ${c.name}.`), changeResult(cert), pending);
    try { await reload(c.name, msg); } catch (e) { showError(errorBox, e); }
  });
}

// ---- Replace dialog (static markup in index.html) ----

let replaceName = null;
let dialogReady = false;

function setupReplaceDialog() {
  if (dialogReady) return;
  dialogReady = true;
  const dlg = $('#replace-dialog');
  const certTa = $('#replace-cert');
  const keyTa = $('#replace-key');

  // A chosen file fills its textarea: one path to submit, and the operator
  // sees what will be sent (the key never leaves the browser except in the PUT).
  for (const [fileId, ta] of [['#replace-cert-file', certTa], ['#replace-key-file', keyTa]]) {
    $(fileId).addEventListener('change', async (ev) => {
      const f = ev.target.files[0];
      if (!f) return;
      if (f.size > 1024 * 1024) {
        showError($('#replace-error'), { code: 'payload_too_large', message: `${f.name} is over 1 MiB.` }, [ta]);
        return;
      }
      ta.value = await f.text();
    });
  }
  $('#replace-cancel').addEventListener('click', () => dlg.close());
  dlg.addEventListener('close', () => {
    keyTa.value = ''; // do not keep a private key in the page longer than needed
    const back = document.querySelector(`section[data-cert="${replaceName}"] button.replace`);
    if (back) back.focus();
  });

  $('#replace-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('#replace-error');
    const result = $('#replace-result');
    clearError(err, [certTa, keyTa]);
    result.replaceChildren();
    const name = replaceName;
    await busy($('#replace-submit'), async () => {
      let res;
      let pending = null;
      try {
        res = await api.put('/v1/cluster/update_cert',
          { name, certificate: certTa.value, key: keyTa.value });
      } catch (e) {
        if (!api.isStoredButUnconfirmed(e)) {
          showError(err, e, fieldsFor(e, certTa, keyTa));
          return;
        }
        res = e.body;
        pending = unconfirmedNodes(e.body);
      }
      keyTa.value = '';
      result.replaceChildren(h('div', {}, changeResult(res), pending));
      $('#replace-cancel').textContent = 'Close';
      if (reloadList) await reloadList().catch(() => {});
    });
  });
}

// Which field an error concerns, to mark it invalid.
function fieldsFor(e, certTa, keyTa) {
  if (['key_values_mismatch', 'weak_key'].includes(e.code)) return [keyTa];
  if (e.code === 'invalid_pem') return [/key/i.test(e.message) ? keyTa : certTa];
  if (e.code === 'invalid_schema') return [certTa, keyTa];
  return [certTa];
}

function openReplace(name) {
  replaceName = name;
  const info = CERTS.find((x) => x.name === name);
  $('#replace-title').textContent = `Replace the ${name} certificate`;
  $('#replace-help').textContent = `${name}: ${info.what}. The certificate must cover the cluster's ` +
    'name and be valid now; nothing changes unless every check passes.';
  for (const id of ['#replace-cert', '#replace-key', '#replace-cert-file', '#replace-key-file']) $(id).value = '';
  clearError($('#replace-error'), [$('#replace-cert'), $('#replace-key')]);
  $('#replace-result').replaceChildren();
  $('#replace-cancel').textContent = 'Cancel';
  $('#replace-dialog').showModal();
  $('#replace-cert-file').focus();
}

// ---- cluster CA ----

function caSection() {
  return h('section', { class: 'ca', 'aria-labelledby': 'ca-title' },
    h('h2', { id: 'ca-title' }, 'Cluster CA'),
    h('p', {}, 'The cluster made its own certificate authority when it was created and issued the ' +
      'certificates above from it. A client that trusts this one file trusts every certificate it ' +
      'issued, on every node (redis-cli --cacert ca.pem, curl --cacert ca.pem, your browser).'),
    h('p', {}, h('a', { id: 'download-ca', class: 'button', href: '/ca.pem', download: true }, 'Download CA'),
      ' SHA-256 fingerprint: ', h('code', { id: 'ca-fingerprint' }, '…')),
    h('h3', {}, 'Why the browser warns about this page, and how to fix it'),
    h('p', {}, 'This page is served with the cm certificate. While the cluster CA issued it, your ' +
      'browser does not know who vouches for it and shows a "connection not private" notice. ' +
      'The connection is encrypted either way; the notice is about identity. Two fixes:'),
    h('ol', {},
      h('li', {}, 'Trust the cluster CA: download it (ca.pem), check that its fingerprint matches ',
        h('code', {}, 'openssl x509 -in <data-dir>/certs/ca.pem -noout -fingerprint -sha256'),
        ' run on a node (the one shown here came over the untrusted connection), then import it as a ' +
        'trusted authority in your system (Debian: copy it to /usr/local/share/ca-certificates/moat-ca.crt ' +
        'and run update-ca-certificates; macOS: Keychain Access) or browser (Firefox: Settings › Privacy ' +
        '& Security › Certificates › View Certificates › Authorities › Import).'),
      h('li', {}, 'Or replace the cm certificate with one from your own PKI that covers the name you ' +
        'open this page by (Replace on the cm certificate above). Browsers that trust your PKI then ' +
        'trust this page without importing anything.')));
}

// Fingerprint of the CA as openssl prints it, so that it can be compared
// with what a node's shell says. Needs WebCrypto (HTTPS or localhost).
async function showCaFingerprint(el) {
  try {
    const pem = await (await fetch('/ca.pem', { credentials: 'same-origin' })).text();
    const b64 = pem.match(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/)[1].replace(/\s+/g, '');
    const der = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', der));
    el.textContent = [...sum].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
  } catch {
    el.textContent = '(not available here; use the openssl command below)';
  }
}
