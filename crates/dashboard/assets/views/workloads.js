// Workloads: Deployments with their rollout state, StatefulSets and DaemonSets.

import { resourcePath } from '../api.js';
import { h, fill, table, badge, errorBanner } from '../dom.js';
import { age, rolloutState, statusKind, byName, condition } from '../format.js';

const link = (kind, o) =>
  h('a', { href: `#/${kind}/${encodeURIComponent(o.metadata.namespace)}/${encodeURIComponent(o.metadata.name)}` }, o.metadata.name);

export default function workloads(ctx) {
  const deployments = ctx.watch(resourcePath('apps/v1', 'deployments', ctx.ns));
  const statefulsets = ctx.watch(resourcePath('apps/v1', 'statefulsets', ctx.ns));
  const daemonsets = ctx.watch(resourcePath('apps/v1', 'daemonsets', ctx.ns));
  const body = h('div');
  fill(ctx.main, h('h1', {}, 'Workloads'), body);
  const rowAttrs = (o) => ({ dataset: { name: o.metadata.name, namespace: o.metadata.namespace } });

  ctx.live([deployments, statefulsets, daemonsets], () => {
    fill(
      body,
      h('h2', {}, 'Deployments'),
      errorBanner(deployments),
      table('deployments-table', [
        ['Name', (d) => link('deployments', d)],
        ['Namespace', (d) => d.metadata.namespace],
        ['Ready', (d) => `${d.status?.readyReplicas || 0}/${d.spec?.replicas ?? 1}`],
        ['Up-to-date', (d) => d.status?.updatedReplicas || 0],
        ['Available', (d) => d.status?.availableReplicas || 0],
        ['Rollout', (d) => {
          const [state, why] = rolloutState(d);
          return h('span', { class: 'rollout', title: why }, badge(state, statusKind(state)), ' ', h('span', { class: 'muted' }, why));
        }],
        ['Available condition', (d) => {
          const c = condition(d, 'Available');
          return c ? badge(`${c.status}${c.reason ? ` (${c.reason})` : ''}`, statusKind(c.status)) : '';
        }],
        ['Age', (d) => age(d.metadata.creationTimestamp)],
      ], deployments.list().sort(byName), { rowAttrs, empty: deployments.loaded ? 'No Deployments.' : 'Loading…' }),
      h('h2', {}, 'StatefulSets'),
      errorBanner(statefulsets),
      table('statefulsets-table', [
        ['Name', (s) => s.metadata.name],
        ['Namespace', (s) => s.metadata.namespace],
        ['Ready', (s) => `${s.status?.readyReplicas || 0}/${s.spec?.replicas ?? 1}`],
        ['Revision', (s) => {
          const st = s.status || {};
          const done = st.currentRevision && st.currentRevision === st.updateRevision;
          return badge(done ? 'Complete' : `Updating (${st.updatedReplicas || 0} updated)`, done ? 'ok' : 'warn');
        }],
        ['Age', (s) => age(s.metadata.creationTimestamp)],
      ], statefulsets.list().sort(byName), { rowAttrs, empty: statefulsets.loaded ? 'No StatefulSets.' : 'Loading…' }),
      h('h2', {}, 'DaemonSets'),
      errorBanner(daemonsets),
      table('daemonsets-table', [
        ['Name', (d) => d.metadata.name],
        ['Namespace', (d) => d.metadata.namespace],
        ['Desired', (d) => d.status?.desiredNumberScheduled || 0],
        ['Current', (d) => d.status?.currentNumberScheduled || 0],
        ['Ready', (d) => d.status?.numberReady || 0],
        ['Up-to-date', (d) => d.status?.updatedNumberScheduled || 0],
        ['Available', (d) => d.status?.numberAvailable || 0],
        ['Age', (d) => age(d.metadata.creationTimestamp)],
      ], daemonsets.list().sort(byName), { rowAttrs, empty: daemonsets.loaded ? 'No DaemonSets.' : 'Loading…' }),
    );
  });
}
