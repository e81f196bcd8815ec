// Pods: status, readiness, restarts, node and age, live; each links to its detail page.

import { resourcePath, remove } from '../api.js';
import { h, fill, table, badge, errorBanner } from '../dom.js';
import { age, podStatus, podReady, podRestarts, statusKind, byName } from '../format.js';

export const podLink = (p) =>
  h('a', { href: `#/pods/${encodeURIComponent(p.metadata.namespace)}/${encodeURIComponent(p.metadata.name)}` }, p.metadata.name);

// Deletes a pod after the user confirms (shared with the Deployment page).
export async function deletePod(ctx, p) {
  const { namespace, name } = p.metadata;
  if (!(await ctx.confirm(`Delete pod ${namespace}/${name}? Its controller, if any, replaces it.`, 'Delete'))) return false;
  try {
    await remove(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`);
    ctx.toast(`Deleting pod ${name}`);
    return true;
  } catch (e) {
    ctx.toast(`Deleting ${name} failed: ${e.message}`, 'error');
    return false;
  }
}

// The pod table's columns; `withDelete` adds a delete button per row.
export function podColumns(ctx, { withDelete = false, withNamespace = true } = {}) {
  const cols = [
    ['Name', podLink],
    withNamespace ? ['Namespace', (p) => p.metadata.namespace] : null,
    ['Status', (p) => {
      const s = podStatus(p);
      return badge(s, statusKind(s));
    }],
    ['Ready', podReady],
    ['Restarts', podRestarts],
    ['Node', (p) => p.spec?.nodeName || ''],
    ['IP', (p) => p.status?.podIP || ''],
    ['Age', (p) => age(p.metadata.creationTimestamp)],
    withDelete
      ? ['', (p) => h('button', { type: 'button', class: 'danger small delete-pod', dataset: { name: p.metadata.name }, disabled: !!p.metadata.deletionTimestamp, onclick: () => deletePod(ctx, p) }, 'Delete')]
      : null,
  ];
  return cols.filter(Boolean);
}

export const podRowAttrs = (p) => ({
  dataset: { name: p.metadata.name, namespace: p.metadata.namespace, status: podStatus(p) },
});

export default function pods(ctx) {
  const col = ctx.watch(resourcePath('', 'pods', ctx.ns));
  const body = h('div');
  fill(ctx.main, h('h1', {}, ctx.ns ? `Pods in ${ctx.ns}` : 'Pods'), body);
  ctx.live([col], () => {
    fill(
      body,
      errorBanner(col),
      table('pods-table', podColumns(ctx, { withDelete: true }), col.list().sort(byName), {
        rowAttrs: podRowAttrs,
        empty: col.loaded ? 'No pods.' : 'Loading…',
      }),
    );
  });
}
