// Events, newest first, live.

import { resourcePath } from '../api.js';
import { h, fill, table, badge, errorBanner } from '../dom.js';
import { age, statusKind } from '../format.js';

// A busy cluster keeps thousands of events (for --event-ttl); the page shows the newest.
const SHOWN = 300;

const when = (e) => e.lastTimestamp || e.eventTime || e.series?.lastObservedTime || e.firstTimestamp || e.metadata.creationTimestamp;

export default function events(ctx) {
  const col = ctx.watch(resourcePath('', 'events', ctx.ns));
  const body = h('div');
  fill(ctx.main, h('h1', {}, ctx.ns ? `Events in ${ctx.ns}` : 'Events'), body);
  ctx.live([col], () => {
    const list = col.list().sort((a, b) => Date.parse(when(b) || 0) - Date.parse(when(a) || 0));
    fill(
      body,
      errorBanner(col),
      table('events-table', [
        ['Last seen', (e) => age(when(e))],
        ['Type', (e) => badge(e.type || '', statusKind(e.type))],
        ['Reason', (e) => e.reason || ''],
        ['Object', (e) => {
          const o = e.involvedObject || {};
          const text = `${(o.kind || '').toLowerCase()}/${o.name || ''}`;
          return o.kind === 'Pod' && o.namespace
            ? h('a', { href: `#/pods/${encodeURIComponent(o.namespace)}/${encodeURIComponent(o.name)}` }, text)
            : text;
        }],
        ['Namespace', (e) => e.metadata.namespace || ''],
        ['Message', (e) => h('span', { class: 'message' }, e.message || e.note || '')],
        ['Count', (e) => e.count || e.series?.count || 1],
      ], list.slice(0, SHOWN), {
        rowAttrs: (e) => ({ dataset: { name: e.metadata.name, reason: e.reason || '' } }),
        empty: col.loaded ? 'No events.' : 'Loading…',
      }),
    );
  });
}
