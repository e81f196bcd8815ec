// Overview: counts, and every node with its CPU and memory usage (metrics.k8s.io) against what
// it can allocate, and its pods against its pod capacity.

import { getJson } from '../api.js';
import { h, fill, table, bar, badge, errorBanner } from '../dom.js';
import { quantity, cores, bytes, age, condition, statusKind, rolloutState } from '../format.js';

// metrics.k8s.io is refreshed by the API server every --metric-resolution (15 s by default)
// and cannot be watched: poll it at that pace.
const METRICS_EVERY_MS = 15000;

function tile(label, value, detail) {
  return h('div', { class: 'tile' }, h('div', { class: 'tile-value' }, value), h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-detail' }, detail));
}

export default function overview(ctx) {
  const nodes = ctx.watch('/api/v1/nodes');
  const pods = ctx.watch('/api/v1/pods');
  const deployments = ctx.watch('/apis/apps/v1/deployments');
  let metrics = new Map();
  let metricsError = '';

  const tiles = h('div', { class: 'tiles' });
  const body = h('div');
  fill(ctx.main, h('h1', {}, 'Cluster overview'), tiles, h('h2', {}, 'Nodes'), body);

  const poll = async () => {
    try {
      const list = await getJson('/apis/metrics.k8s.io/v1beta1/nodes');
      metrics = new Map(list.items.map((m) => [m.metadata.name, m.usage]));
      metricsError = '';
    } catch (e) {
      metricsError = `node metrics unavailable: ${e.message}`;
    }
    update();
  };
  const timer = setInterval(poll, METRICS_EVERY_MS);
  ctx.onLeave(() => clearInterval(timer));

  const update = () => {
    const nodeList = nodes.list().sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const podList = pods.list();
    const perNode = new Map();
    for (const p of podList) {
      if (p.spec?.nodeName && !['Succeeded', 'Failed'].includes(p.status?.phase)) {
        perNode.set(p.spec.nodeName, (perNode.get(p.spec.nodeName) || 0) + 1);
      }
    }
    const ready = nodeList.filter((n) => condition(n, 'Ready')?.status === 'True').length;
    const running = podList.filter((p) => p.status?.phase === 'Running').length;
    const deps = deployments.list();
    const complete = deps.filter((d) => rolloutState(d)[0] === 'Complete').length;
    fill(
      tiles,
      tile('Nodes', `${ready}/${nodeList.length}`, 'ready'),
      tile('Pods', `${running}/${podList.length}`, 'running'),
      tile('Deployments', `${complete}/${deps.length}`, 'rolled out'),
      tile('Namespaces', new Set(podList.map((p) => p.metadata.namespace)).size, 'with pods'),
    );
    const columns = [
      ['Name', (n) => n.metadata.name],
      ['Status', (n) => {
        const r = condition(n, 'Ready');
        const text = r?.status === 'True' ? 'Ready' : 'NotReady';
        return badge(n.spec?.unschedulable ? `${text},SchedulingDisabled` : text, statusKind(text));
      }],
      ['CPU', (n) => {
        const use = quantity(metrics.get(n.metadata.name)?.cpu);
        const alloc = quantity(n.status?.allocatable?.cpu);
        return Number.isFinite(use) ? bar(use / alloc, `${cores(use)} / ${cores(alloc)}`) : h('span', { class: 'muted' }, `– / ${cores(alloc)}`);
      }],
      ['Memory', (n) => {
        const use = quantity(metrics.get(n.metadata.name)?.memory);
        const alloc = quantity(n.status?.allocatable?.memory);
        return Number.isFinite(use) ? bar(use / alloc, `${bytes(use)} / ${bytes(alloc)}`) : h('span', { class: 'muted' }, `– / ${bytes(alloc)}`);
      }],
      ['Pods', (n) => {
        const count = perNode.get(n.metadata.name) || 0;
        const cap = quantity(n.status?.allocatable?.pods);
        return bar(count / cap, `${count} / ${cap}`);
      }],
      ['Version', (n) => n.status?.nodeInfo?.kubeletVersion || ''],
      ['Age', (n) => age(n.metadata.creationTimestamp)],
    ];
    fill(
      body,
      errorBanner(nodes),
      errorBanner(pods),
      metricsError ? h('p', { class: 'muted' }, metricsError) : null,
      table('nodes-table', columns, nodeList, {
        rowAttrs: (n) => ({ dataset: { name: n.metadata.name } }),
        empty: nodes.loaded ? 'No nodes.' : 'Loading…',
      }),
    );
  };
  ctx.live([nodes, pods, deployments], update);
  poll();
}
