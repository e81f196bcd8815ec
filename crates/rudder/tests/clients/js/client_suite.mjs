// The JavaScript client (@kubernetes/client-node) against a rudder server: CRUD, list with
// selectors and paging, watch (and resume from a resourceVersion), an informer, patch types and
// the generic object API. Run by crates/rudder/tests/js_client.rs with KUBECONFIG pointing at the
// server and NAMESPACE a namespace to create; any failed assert exits non-zero.
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';

const NS = process.env.NAMESPACE;
const step = (name) => console.log(`== ${name}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, secs, f) {
    const deadline = Date.now() + secs * 1000;
    for (;;) {
        const v = await f();
        if (v) return v;
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
        await sleep(200);
    }
}
async function expectCode(code, f) {
    try {
        await f();
    } catch (e) {
        assert.equal(e.code, code, `expected ${code}: ${e}`);
        return e;
    }
    assert.fail(`expected an error ${code}, got success`);
}

const kc = new k8s.KubeConfig();
kc.loadFromDefault();
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);

step('version and namespace');
const version = await kc.makeApiClient(k8s.VersionApi).getCode();
assert.equal(version.major, '1');
await core.createNamespace({ body: { metadata: { name: NS } } });

step('CRUD');
for (let i = 0; i < 3; i++) {
    await core.createNamespacedConfigMap({
        namespace: NS,
        body: { metadata: { name: `cm-${i}`, labels: { app: 'js', idx: `${i}` } }, data: { n: `${i}` } },
    });
}
const cm = await core.readNamespacedConfigMap({ name: 'cm-0', namespace: NS });
assert.deepEqual(cm.data, { n: '0' });
cm.data.n = 'zero';
const updated = await core.replaceNamespacedConfigMap({ name: 'cm-0', namespace: NS, body: cm });
assert.equal(updated.data.n, 'zero');
assert.ok(Number(updated.metadata.resourceVersion) > Number(cm.metadata.resourceVersion));
await expectCode(409, () => core.replaceNamespacedConfigMap({ name: 'cm-0', namespace: NS, body: cm }));
await expectCode(409, () => core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'cm-1' } } }));
await expectCode(404, () => core.readNamespacedConfigMap({ name: 'nope', namespace: NS }));
await core.deleteNamespacedConfigMap({ name: 'cm-2', namespace: NS });
await expectCode(404, () => core.readNamespacedConfigMap({ name: 'cm-2', namespace: NS }));

step('list with selectors and paging');
let list = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=js' });
assert.deepEqual(list.items.map((c) => c.metadata.name).sort(), ['cm-0', 'cm-1']);
list = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=js,idx notin (0)' });
assert.deepEqual(list.items.map((c) => c.metadata.name), ['cm-1']);
list = await core.listNamespacedConfigMap({ namespace: NS, fieldSelector: 'metadata.name=cm-0' });
assert.deepEqual(list.items.map((c) => c.metadata.name), ['cm-0']);
const page = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=js', limit: 1 });
assert.equal(page.items.length, 1);
assert.ok(page.metadata._continue, 'a continue token');
const rest = await core.listNamespacedConfigMap({
    namespace: NS, labelSelector: 'app=js', limit: 1, _continue: page.metadata._continue,
});
assert.equal(rest.items.length, 1);
assert.notEqual(rest.items[0].metadata.name, page.items[0].metadata.name);

step('watch, and resume from a resourceVersion');
const rv = (await core.listNamespacedConfigMap({ namespace: NS })).metadata.resourceVersion;
const watch = new k8s.Watch(kc);
const path = `/api/v1/namespaces/${NS}/configmaps`;
function collect(params, until) {
    const seen = [];
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`watch saw only ${JSON.stringify(seen)}`)), 15000);
        // The watch resolves to its AbortController (the callback runs only after that).
        const controller = watch.watch(path, params, (type, obj) => {
            seen.push([type, obj.metadata.name, obj.metadata.resourceVersion, (obj.data || {}).k]);
            if (until(seen)) {
                clearTimeout(timer);
                controller.then((c) => c.abort());
                resolve(seen);
            }
        }, (err) => {
            if (err && err.name !== 'AbortError') reject(err);
        });
        controller.catch(reject);
    });
}
const first = collect({ labelSelector: 'w=1', resourceVersion: rv, allowWatchBookmarks: true }, (s) => s.length >= 1);
await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'w-1', labels: { w: '1' } } } });
const seen1 = await first;
assert.deepEqual(seen1.map((e) => [e[0], e[1]]), [['ADDED', 'w-1']]);
const lastRv = seen1[0][2];
await core.patchNamespacedConfigMap(
    { name: 'w-1', namespace: NS, body: { data: { k: 'v1' } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
);
await core.deleteNamespacedConfigMap({ name: 'w-1', namespace: NS });
const seen2 = await collect({ labelSelector: 'w=1', resourceVersion: lastRv }, (s) => s.some((e) => e[0] === 'DELETED'));
assert.deepEqual(seen2.map((e) => [e[0], e[3]]), [['MODIFIED', 'v1'], ['DELETED', 'v1']]);

step('informer');
const informer = k8s.makeInformer(kc, path, () => core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=js' }), 'app=js');
const events = [];
informer.on('add', (o) => events.push(['add', o.metadata.name]));
informer.on('update', (o) => events.push(['update', o.metadata.name]));
informer.on('delete', (o) => events.push(['delete', o.metadata.name]));
informer.on('error', (e) => events.push(['error', String(e)]));
await informer.start();
await waitFor('the informer to list', 10, () => events.filter((e) => e[0] === 'add').length === 2);
await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'cm-9', labels: { app: 'js' } } } });
await core.patchNamespacedConfigMap(
    { name: 'cm-9', namespace: NS, body: [{ op: 'add', path: '/data', value: { x: 'y' } }] },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
);
await core.deleteNamespacedConfigMap({ name: 'cm-9', namespace: NS });
await waitFor('the informer to see cm-9 go', 15, () => events.some((e) => e[0] === 'delete' && e[1] === 'cm-9'));
assert.ok(events.some((e) => e[0] === 'add' && e[1] === 'cm-9'), JSON.stringify(events));
assert.ok(events.some((e) => e[0] === 'update' && e[1] === 'cm-9'), JSON.stringify(events));
assert.ok(!events.some((e) => e[0] === 'error'), JSON.stringify(events));
assert.equal(informer.list().length, 2);
await informer.stop();

step('patch types');
let p = await core.patchNamespacedConfigMap(
    { name: 'cm-0', namespace: NS, body: { metadata: { labels: { s: '1' } }, data: { m: 'x' } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
);
assert.deepEqual(p.data, { n: 'zero', m: 'x' });
p = await core.patchNamespacedConfigMap(
    { name: 'cm-0', namespace: NS, body: [{ op: 'remove', path: '/data/m' }] },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
);
assert.deepEqual(p.data, { n: 'zero' });
p = await core.patchNamespacedConfigMap(
    { name: 'cm-0', namespace: NS, body: { data: { n: null, merged: 'yes' } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
);
assert.deepEqual(p.data, { merged: 'yes' });

step('generic objects and server-side apply');
const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'js-web', namespace: NS },
    spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'js-web' } },
        template: { metadata: { labels: { app: 'js-web' } }, spec: { containers: [{ name: 'web', image: 'busybox:1.36' }] } },
    },
};
const created = await objects.create(deployment);
assert.equal(created.kind, 'Deployment');
assert.ok(created.metadata.uid);
const read = await objects.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'js-web', namespace: NS } });
assert.equal(read.spec.template.spec.containers[0].image, 'busybox:1.36');
const applied = await objects.patch(
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'js-web', namespace: NS }, spec: { replicas: 3 } },
    undefined, undefined, 'js-apply', true, k8s.PatchStrategy.ServerSideApply,
);
assert.equal(applied.spec.replicas, 3);
assert.ok(applied.metadata.managedFields.some((m) => m.manager === 'js-apply' && m.operation === 'Apply'));
const scale = await apps.readNamespacedDeploymentScale({ name: 'js-web', namespace: NS });
assert.equal(scale.spec.replicas, 3);
const listed = await objects.list('apps/v1', 'Deployment', NS);
assert.deepEqual(listed.items.map((d) => d.metadata.name), ['js-web']);
await objects.delete({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'js-web', namespace: NS } });
await waitFor('the deployment to go', 10, async () => {
    try {
        await apps.readNamespacedDeployment({ name: 'js-web', namespace: NS });
        return false;
    } catch (e) {
        return e.code === 404;
    }
});

step('delete');
await core.deleteCollectionNamespacedConfigMap({ namespace: NS, labelSelector: 'app=js' });
list = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=js' });
assert.equal(list.items.length, 0);
await core.deleteNamespace({ name: NS });
console.log('js client: all checks passed');
