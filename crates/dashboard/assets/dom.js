// DOM helpers. Elements are built with createElement and textContent only, so names, messages
// and logs from the cluster can never become markup; the CSP forbids inline script besides.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replaces an element's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A table: `columns` are [title, (row) => cell content]; `rowAttrs(row)` gives each <tr>'s
// attributes (the tests find rows by their data-name).
export function table(id, columns, rows, { rowAttrs, empty } = {}) {
  return h(
    'table',
    { id, class: 'grid' },
    h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', {}, title)))),
    h(
      'tbody',
      {},
      rows.length === 0
        ? h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, empty || 'Nothing here.'))
        : rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map(([, cell]) => h('td', {}, cell(r))))),
    ),
  );
}

// A usage bar (fraction 0..1); the width is set through the CSSOM, which the CSP allows.
export function bar(fraction, label) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  const fillEl = h('span', { class: `fill ${f > 0.9 ? 'high' : f > 0.7 ? 'mid' : ''}` });
  fillEl.style.width = `${(f * 100).toFixed(1)}%`;
  return h('span', { class: 'bar', title: label }, fillEl, h('span', { class: 'bar-label' }, label));
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

// The banner of a collection that cannot be listed or watched (forbidden, server gone).
export function errorBanner(collection) {
  if (!collection.error) return null;
  const e = collection.error;
  return h('p', { class: 'error' }, `${collection.path}: ${e.message}${e.status ? ` (${e.status})` : ''}`);
}
