// Overview screen: the cluster, its nodes, and what needs attention.

import * as api from './api.js';
import { h, tableBox, formatDate, errorText } from './dom.js';
import { CERTS, SOON_DAYS, loadCertificates, daysLeft, daysText, servedState } from './certificates.js';

export async function render(view) {
  const name = h('span', { id: 'cluster-name' }, '…');
  const attention = h('ul', { id: 'attention', 'aria-busy': 'true' }, h('li', {}, 'Checking…'));
  const nodesBody = h('tbody');
  view.append(
    h('h1', { tabindex: -1 }, 'Cluster ', name),
    h('h2', { id: 'attention-title' }, 'Needs attention'),
    attention,
    h('h2', { id: 'nodes-title' }, 'Nodes'),
    tableBox('Nodes', h('table', { id: 'nodes', 'aria-labelledby': 'nodes-title' },
      h('thead', {}, h('tr', {}, ['Node', 'Address', 'Status', 'Software', 'Certificates served']
        .map((t) => h('th', { scope: 'col' }, t)))),
      nodesBody)));

  const [cluster, nodes, certs, alerts] = await Promise.all([
    api.get('/v1/cluster'), api.get('/v1/nodes'), loadCertificates(),
    api.get('/v1/cluster/alerts').catch(() => ({}))]);
  name.textContent = cluster.name;

  nodesBody.replaceChildren(...nodes.map((n) => h('tr', { dataset: { nodeUid: n.uid } },
    h('td', {}, String(n.uid)),
    h('td', {}, n.addr),
    h('td', {}, h('span', { class: `badge ${n.status}` }, n.status)),
    h('td', {}, n.software_version || ''),
    h('td', {}, h('ul', { class: 'served' }, CERTS.map(({ name: cn }) => {
      const cert = certs.find((c) => c.name === cn);
      const v = n.certificates?.[cn]?.version;
      const stale = cert && !cert.error && v !== undefined && v !== cert.version;
      return h('li', { class: stale ? 'stale' : '' },
        `${cn} v${v ?? '?'}${stale ? ` (current: v${cert.version})` : ''}`);
    }))))));

  const items = [...alertItems(alerts), ...attentionItems(nodes, certs)];
  attention.removeAttribute('aria-busy');
  attention.replaceChildren(...(items.length ? items
    : [h('li', { class: 'ok', dataset: { kind: 'none' } }, 'Nothing needs attention.')]));
}

// The cluster's alerts that are on (GET /v1/cluster/alerts), by RS's names.
const ALERT_TEXT = {
  cluster_certs_about_to_expire: 'Certificates expire within',
  node_internal_certs_about_to_expire: 'The cluster CA expires within',
};

function alertItems(alerts) {
  return Object.entries(alerts || {}).filter(([, a]) => a && a.state).map(([name, a]) => {
    const certs = (a.change_value?.certificates || [])
      .map((c) => `${c.name} (${daysText(c.days_left)}, ${formatDate(c.not_after)})`).join(', ');
    return h('li', { class: 'warning', dataset: { kind: 'alert', alert: name } },
      h('strong', {}, name), `: ${ALERT_TEXT[name] || 'Alert:'} ${a.threshold} days: ${certs}. ` +
      `On since ${formatDate(a.change_time)}.`);
  });
}

// Everything an operator should act on, worst first.
function attentionItems(nodes, certs) {
  const items = [];
  const item = (kind, ...content) => items.push(h('li', { class: 'warning', dataset: { kind } }, ...content));
  const certsLink = h('a', { href: '#/certificates' }, 'Certificates');

  for (const n of nodes.filter((x) => x.status !== 'active')) {
    item('node-down', `Node ${n.uid} (${n.addr}) is ${n.status}. Changes are stored without it and it ` +
      'applies them before it serves again; if it is gone for good, remove it (DELETE /v1/nodes/' +
      `${n.uid}, or moatadm).` + (n.updated_at ? ` Last report: ${formatDate(n.updated_at)}.` : ''));
  }
  for (const c of certs) {
    if (c.error) { item('cert-error', `Could not read the ${c.name} certificate: ${errorText(c.error)}`); continue; }
    const days = daysLeft(c);
    if (days < SOON_DAYS) {
      item('expiry', `The ${c.name} certificate ${days < 0 ? 'has expired' : 'expires soon'}: ` +
        `${daysText(days)}, on ${formatDate(c.not_after)}. ` +
        (c.issued_by_cluster_ca ? 'Rotate it on ' : 'Replace it with a new one from your PKI on '),
      h('a', { href: '#/certificates' }, 'Certificates'), '.');
    }
    for (const n of nodes) {
      if (servedState(n, c).state === 'stale') {
        item('stale', `Node ${n.uid} (${n.addr}) still serves ${c.name} version ` +
          `${n.certificates[c.name].version}, not the current ${c.version}; it has not applied the last change yet.`);
      }
    }
  }
  const cm = certs.find((c) => c.name === 'cm' && !c.error);
  if (cm && cm.issued_by_cluster_ca) {
    item('self-issued-cm', 'The management UI (cm) certificate is issued by the cluster\'s own CA, ' +
      'so browsers warn that this connection is not private: they do not know that CA. Fix it by ' +
      'trusting the cluster CA (Download CA on ', certsLink, ') or by replacing cm with a ' +
      'certificate from your own PKI.');
  }
  return items;
}
