// A pod: its status and containers, its logs streaming (`pods/log?follow=true`), its YAML, and
// a delete button behind a confirmation.

import { streamLog, withQuery } from '../api.js';
import { h, fill, table, badge, errorBanner } from '../dom.js';
import { age, podStatus, podReady, podRestarts, statusKind } from '../format.js';
import { toYaml } from '../yaml.js';
import { deletePod } from './pods.js';

// The log pane keeps the last lines only: a chatty container must not grow the page for ever.
const MAX_LOG_CHARS = 512 * 1024;
const TAIL_LINES = 500;

// The object as `kubectl get -o yaml` shows it: kind first; managedFields only on request.
export function yamlOf(obj, apiVersion, kind, withManaged) {
  const copy = { apiVersion, kind, ...obj };
  if (!withManaged && copy.metadata) {
    copy.metadata = { ...copy.metadata };
    delete copy.metadata.managedFields;
  }
  return toYaml(copy);
}

// A YAML pane that follows a live object; shared with the Deployment page.
export function yamlPane(id, apiVersion, kind) {
  const pre = h('pre', { id, class: 'yaml' });
  const managed = h('input', { type: 'checkbox' });
  let last = null;
  const show = (obj) => {
    last = obj;
    if (obj) pre.textContent = yamlOf(obj, apiVersion, kind, managed.checked);
  };
  managed.addEventListener('change', () => show(last));
  const el = h('div', { class: 'yaml-pane' }, h('label', { class: 'muted' }, managed, ' show managedFields'), pre);
  return { el, show };
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export default function pod(ctx, ns, name) {
  const col = ctx.watch(withQuery(`/api/v1/namespaces/${encodeURIComponent(ns)}/pods`, { fieldSelector: `metadata.name=${name}` }));
  const summary = h('div', { id: 'pod-summary' });
  const logs = h('pre', { id: 'logs', class: 'logs' });
  const logStatus = h('span', { id: 'logs-status', class: 'muted' });
  const containerSelect = h('select', { id: 'logs-container' });
  const follow = h('input', { type: 'checkbox', id: 'logs-follow', checked: true });
  const yaml = yamlPane('pod-yaml', 'v1', 'Pod');
  const panes = {
    summary,
    logs: h('div', {}, h('div', { class: 'toolbar' }, h('label', {}, 'Container ', containerSelect), h('label', {}, follow, ' follow'), logStatus), logs),
    yaml: yaml.el,
  };
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const pane = h('div', { class: 'pane' });
  let active = 'summary';
  let stream = null;

  const deleteButton = h('button', { type: 'button', id: 'pod-delete', class: 'danger', onclick: async () => {
    const p = col.list()[0];
    if (p && (await deletePod(ctx, p))) location.hash = '#/pods';
  } }, 'Delete pod');
  fill(ctx.main, h('div', { class: 'title' }, h('h1', {}, `Pod ${ns}/${name}`), deleteButton), tabs, pane);

  const stopLogs = () => {
    if (stream) stream.abort();
    stream = null;
  };
  ctx.onLeave(stopLogs);

  const startLogs = () => {
    stopLogs();
    const container = containerSelect.value;
    if (!container) return;
    const abort = new AbortController();
    stream = abort;
    logs.textContent = '';
    logStatus.textContent = follow.checked ? 'streaming…' : 'loading…';
    const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}/log`;
    const params = { container, follow: follow.checked ? 'true' : '', tailLines: TAIL_LINES };
    const onText = (text) => {
      // Follow the end only when the reader is already there.
      const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 8;
      logs.append(text);
      if (logs.textContent.length > MAX_LOG_CHARS) logs.textContent = logs.textContent.slice(-MAX_LOG_CHARS / 2);
      if (atEnd) logs.scrollTop = logs.scrollHeight;
    };
    const onStatus = (text) => {
      if (!abort.signal.aborted) logStatus.textContent = text;
    };
    streamLog(path, params, abort.signal, { onText, onStatus })
      .then(() => {
        if (!abort.signal.aborted) logStatus.textContent = follow.checked ? 'stream ended' : '';
      })
      .catch((e) => {
        if (!abort.signal.aborted) logStatus.textContent = `logs unavailable: ${e.message}`;
      });
  };
  containerSelect.addEventListener('change', startLogs);
  follow.addEventListener('change', startLogs);

  const selectTab = (t) => {
    active = t;
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.tab === t));
    fill(pane, panes[t]);
    if (t === 'logs' && !stream) startLogs();
    if (t !== 'logs') stopLogs();
  };
  fill(tabs, ['summary', 'logs', 'yaml'].map((t) =>
    h('button', { type: 'button', role: 'tab', id: `tab-${t}`, dataset: { tab: t }, onclick: () => selectTab(t) }, t === 'yaml' ? 'YAML' : t[0].toUpperCase() + t.slice(1))));

  ctx.live([col], () => {
    const p = col.list()[0];
    yaml.show(p);
    if (!p) {
      fill(summary, errorBanner(col), h('p', { class: 'muted' }, col.loaded ? 'This pod does not exist (any more).' : 'Loading…'));
      return;
    }
    const names = [...(p.spec.initContainers || []), ...p.spec.containers].map((c) => c.name);
    if ([...containerSelect.options].map((o) => o.value).join() !== names.join()) {
      const keep = containerSelect.value;
      fill(containerSelect, names.map((n) => h('option', { value: n }, n)));
      containerSelect.value = names.includes(keep) ? keep : p.spec.containers[0].name;
    }
    const status = podStatus(p);
    const statuses = new Map([...(p.status?.initContainerStatuses || []), ...(p.status?.containerStatuses || [])].map((s) => [s.name, s]));
    const owner = (p.metadata.ownerReferences || []).find((o) => o.controller);
    fill(
      summary,
      errorBanner(col),
      kv([
        ['Status', badge(status, statusKind(status))],
        ['Ready', podReady(p)],
        ['Restarts', String(podRestarts(p))],
        ['Node', p.spec.nodeName || '(not scheduled)'],
        ['Pod IP', p.status?.podIP || ''],
        ['Controlled by', owner ? `${owner.kind}/${owner.name}` : ''],
        ['QoS class', p.status?.qosClass || ''],
        ['Age', age(p.metadata.creationTimestamp)],
        ['Labels', Object.entries(p.metadata.labels || {}).map(([k, v]) => badge(`${k}=${v}`, 'label'))],
      ]),
      h('h2', {}, 'Containers'),
      table('containers-table', [
        ['Name', (c) => c.name],
        ['Image', (c) => c.image],
        ['State', (c) => {
          const st = statuses.get(c.name)?.state || {};
          const [k] = Object.keys(st);
          const reason = k ? (st[k].reason ? `${k}: ${st[k].reason}` : k) : 'unknown';
          return badge(reason, statusKind(k === 'running' ? 'Running' : reason));
        }],
        ['Ready', (c) => String(!!statuses.get(c.name)?.ready)],
        ['Restarts', (c) => statuses.get(c.name)?.restartCount || 0],
      ], [...(p.spec.initContainers || []), ...p.spec.containers]),
      h('h2', {}, 'Conditions'),
      table('conditions-table', [
        ['Type', (c) => c.type],
        ['Status', (c) => badge(c.status, statusKind(c.status))],
        ['Reason', (c) => c.reason || ''],
        ['Last transition', (c) => age(c.lastTransitionTime)],
      ], p.status?.conditions || []),
    );
    if (!panes[active].isConnected) selectTab(active);
  });
}
