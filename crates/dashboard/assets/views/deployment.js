// A Deployment: rollout state and conditions, a scale control (a merge patch of its `scale`
// subresource, after confirmation), its pods with delete buttons, and its YAML.

import { patchMerge, withQuery } from '../api.js';
import { h, fill, table, badge, errorBanner } from '../dom.js';
import { age, rolloutState, statusKind, selects, byName } from '../format.js';
import { podColumns, podRowAttrs } from './pods.js';
import { yamlPane } from './pod.js';

export default function deployment(ctx, ns, name) {
  const nsPath = `/apis/apps/v1/namespaces/${encodeURIComponent(ns)}/deployments`;
  const col = ctx.watch(withQuery(nsPath, { fieldSelector: `metadata.name=${name}` }));
  const pods = ctx.watch(`/api/v1/namespaces/${encodeURIComponent(ns)}/pods`);
  const summary = h('div', { id: 'deployment-summary' });
  const podsBox = h('div');
  const yaml = yamlPane('deployment-yaml', 'apps/v1', 'Deployment');

  const replicas = h('input', { type: 'number', id: 'scale-replicas', min: 0, step: 1, class: 'narrow' });
  // Live updates fill the box only until the user types in it.
  let edited = false;
  replicas.addEventListener('input', () => {
    edited = true;
  });
  const scale = async () => {
    const d = col.list()[0];
    const want = Number(replicas.value);
    if (!d || !Number.isInteger(want) || want < 0) {
      ctx.toast('Replicas must be a whole number, 0 or more.', 'error');
      return;
    }
    const from = d.spec?.replicas ?? 1;
    if (!(await ctx.confirm(`Scale deployment ${ns}/${name} from ${from} to ${want} replicas?`, 'Scale'))) return;
    try {
      await patchMerge(`${nsPath}/${encodeURIComponent(name)}/scale`, { spec: { replicas: want } });
      edited = false;
      ctx.toast(`Scaled ${name} to ${want}`);
    } catch (e) {
      ctx.toast(`Scaling failed: ${e.message}`, 'error');
    }
  };
  const scaleBox = h('div', { class: 'toolbar' },
    h('label', { for: 'scale-replicas' }, 'Replicas'), replicas,
    h('button', { type: 'button', id: 'scale-apply', onclick: scale }, 'Scale'));

  fill(
    ctx.main,
    h('div', { class: 'title' }, h('h1', {}, `Deployment ${ns}/${name}`), scaleBox),
    summary,
    h('h2', {}, 'Pods'),
    podsBox,
    h('details', { id: 'yaml-details' }, h('summary', {}, 'YAML'), yaml.el),
  );

  ctx.live([col, pods], () => {
    const d = col.list()[0];
    yaml.show(d);
    if (!d) {
      fill(summary, errorBanner(col), h('p', { class: 'muted' }, col.loaded ? 'This Deployment does not exist (any more).' : 'Loading…'));
      fill(podsBox);
      return;
    }
    if (!edited && document.activeElement !== replicas) replicas.value = String(d.spec?.replicas ?? 1);
    const st = d.status || {};
    const [state, why] = rolloutState(d);
    const images = (d.spec.template.spec.containers || []).map((c) => c.image).join(', ');
    fill(
      summary,
      errorBanner(col),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Rollout'), h('dd', {}, badge(state, statusKind(state)), ' ', h('span', { id: 'rollout-detail', class: 'muted' }, why)),
        h('dt', {}, 'Replicas'), h('dd', { id: 'deployment-replicas' },
          `${d.spec?.replicas ?? 1} desired · ${st.updatedReplicas || 0} updated · ${st.readyReplicas || 0} ready · ${st.availableReplicas || 0} available`),
        h('dt', {}, 'Strategy'), h('dd', {}, d.spec.strategy?.type || 'RollingUpdate'),
        h('dt', {}, 'Images'), h('dd', {}, images),
        h('dt', {}, 'Age'), h('dd', {}, age(d.metadata.creationTimestamp))),
      h('h2', {}, 'Conditions'),
      table('deployment-conditions', [
        ['Type', (c) => c.type],
        ['Status', (c) => badge(c.status, statusKind(c.status))],
        ['Reason', (c) => c.reason || ''],
        ['Message', (c) => h('span', { class: 'message' }, c.message || '')],
        ['Updated', (c) => age(c.lastUpdateTime || c.lastTransitionTime)],
      ], st.conditions || []),
    );
    const mine = pods.list().filter((p) => selects(d.spec.selector, p.metadata.labels)).sort(byName);
    fill(
      podsBox,
      errorBanner(pods),
      table('deployment-pods', podColumns(ctx, { withDelete: true, withNamespace: false }), mine, {
        rowAttrs: podRowAttrs,
        empty: pods.loaded ? 'No pods.' : 'Loading…',
      }),
    );
  });
}
