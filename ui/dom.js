// Small DOM helpers shared by the screens: element building, error and
// status messages, the confirmation dialog, copying text.

// h('button', {class: 'x', onclick: fn}, 'text', child, [more children])
// Event handlers are attached with addEventListener (the page's CSP forbids
// inline handlers); checked/disabled/hidden are set as properties,
// the rest as attributes (so value and selected are the form's defaults).
const PROPS = new Set(['checked', 'disabled', 'hidden', 'multiple', 'required']);
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}
function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

// "error_code: description", the form every error takes on the page.
export function errorText(err) {
  let s = `${err.code || 'error'}: ${err.message}`;
  if (err.retryAfter) s += ` Try again in ${err.retryAfter} s.`;
  return s;
}

// el is an error container with role="alert" (empty ones are hidden by CSS).
// fields, if given, are marked aria-invalid until the next clearError.
export function showError(el, err, fields = []) {
  el.textContent = errorText(err);
  el.dataset.code = err.code || '';
  for (const f of fields) if (f) f.setAttribute('aria-invalid', 'true');
}
export function clearError(el, fields = []) {
  el.textContent = '';
  delete el.dataset.code;
  for (const f of fields) if (f) f.removeAttribute('aria-invalid');
}

// The page-wide polite live region, for results that have no better place.
export function announce(msg) {
  const el = $('#status');
  el.textContent = '';
  // A fresh text node after a tick makes screen readers repeat a message
  // that happens to equal the previous one.
  setTimeout(() => { el.textContent = msg; }, 50);
}

// The body of a 409 not_all_nodes_updated (or any answer with "nodes"):
// which nodes did not confirm yet.
export function unconfirmedNodes(body) {
  const pending = (body.nodes || []).filter((n) => n.status !== 'updated');
  return h('div', { class: 'warning' },
    h('p', {}, 'Stored, but not every node confirmed it yet. They apply it ' +
      'when they can (a node that is down applies it before it serves again); ' +
      'there is nothing to retry.'),
    h('ul', { class: 'unconfirmed-nodes' }, pending.map((n) =>
      h('li', { dataset: { nodeUid: n.uid } },
        `node ${n.uid}${n.addr ? ` (${n.addr})` : ''}: ${n.status}`))));
}

// Confirmation dialog (dialog#confirm in index.html). Resolves to true only
// when the user presses the confirm button; Escape and Cancel give false.
// The cancelling button gets the focus first, so Enter never destroys.
export function confirmDialog({ title, body, yes = 'Confirm', danger = true }) {
  const dlg = $('#confirm');
  const yesBtn = $('#confirm-yes');
  const back = document.activeElement;
  $('#confirm-title').textContent = title;
  $('#confirm-body').replaceChildren(...(Array.isArray(body) ? body : [body])
    .map((b) => (b instanceof Node ? b : h('p', {}, b))));
  yesBtn.textContent = yes;
  yesBtn.classList.toggle('danger', danger);
  dlg.returnValue = '';
  dlg.showModal();
  $('#confirm-no').focus();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => {
      if (back && back.isConnected) back.focus();
      resolve(dlg.returnValue === 'yes');
    }, { once: true });
  });
}

// Copy text to the clipboard; where the browser refuses (no permission),
// select the text so that Ctrl+C copies it.
export async function copyText(text, shownIn) {
  try {
    await navigator.clipboard.writeText(text);
    announce('Copied to the clipboard.');
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(shownIn);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    announce('Could not copy automatically: the command is selected, press Ctrl+C to copy it.');
    return false;
  }
}

// Run fn once at a time per button, so a double click sends once. The
// button is marked busy rather than disabled: disabling would drop the
// keyboard focus to the page's start.
export async function busy(button, fn) {
  if (button.getAttribute('aria-busy') === 'true') return undefined;
  button.setAttribute('aria-busy', 'true');
  try { return await fn(); } finally {
    button.removeAttribute('aria-busy');
  }
}

// Tables scroll sideways inside their own box on a narrow screen; the box
// is focusable so that a keyboard can scroll it too.
export function tableBox(label, table) {
  return h('div', { class: 'table-box', role: 'region', 'aria-label': label, tabindex: 0 }, table);
}

// Split pasted or uploaded text into its PEM blocks (a bundle of client
// certificates becomes one entry per certificate).
export function pemBlocks(text) {
  return text.match(/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----/g) || [];
}

export function formatDate(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || '';
  return d.toISOString().replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
}
