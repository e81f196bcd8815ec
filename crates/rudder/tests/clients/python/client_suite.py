"""The official Python client (`kubernetes` on PyPI) against a rudder server.

Run by crates/rudder/tests/python_client.rs with KUBECONFIG pointing at the server, NODE naming
its node (which has the busybox test image) and NAMESPACE a namespace to create and use. Every
check is an assert: any failure exits non-zero.
"""

import os
import sys
import tempfile
import time

from kubernetes import client, config, dynamic, utils, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

NS = os.environ["NAMESPACE"]
NODE = os.environ["NODE"]


def step(name):
    print(f"== {name}", flush=True)


def wait_for(what, secs, f):
    deadline = time.time() + secs
    while True:
        v = f()
        if v:
            return v
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def expect_status(code, f):
    try:
        f()
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected an error {code}, got success")


config.load_kube_config()
api = client.ApiClient()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)

step("version and namespace")
version = client.VersionApi(api).get_code()
assert version.major == "1", version
core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))

step("CRUD")
for i in range(3):
    core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=f"cm-{i}", labels={"app": "py", "idx": str(i)}
            ),
            data={"n": str(i)},
        ),
    )
cm = core.read_namespaced_config_map("cm-0", NS)
assert cm.data == {"n": "0"}, cm.data
assert cm.metadata.resource_version
cm.data["n"] = "zero"
updated = core.replace_namespaced_config_map("cm-0", NS, cm)
assert updated.data["n"] == "zero"
assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
# A stale resourceVersion is a conflict; an existing name AlreadyExists; a missing one NotFound.
expect_status(409, lambda: core.replace_namespaced_config_map("cm-0", NS, cm))
expect_status(
    409,
    lambda: core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-1"))
    ),
)
expect_status(404, lambda: core.read_namespaced_config_map("nope", NS))
core.delete_namespaced_config_map("cm-2", NS)
expect_status(404, lambda: core.read_namespaced_config_map("cm-2", NS))

step("list with selectors and paging")
lst = core.list_namespaced_config_map(NS, label_selector="app=py")
assert sorted(c.metadata.name for c in lst.items) == ["cm-0", "cm-1"], lst.items
lst = core.list_namespaced_config_map(NS, label_selector="app=py,idx in (1,2)")
assert [c.metadata.name for c in lst.items] == ["cm-1"]
lst = core.list_namespaced_config_map(NS, label_selector="idx!=0,app")
assert [c.metadata.name for c in lst.items] == ["cm-1"]
lst = core.list_namespaced_config_map(NS, field_selector="metadata.name=cm-0")
assert [c.metadata.name for c in lst.items] == ["cm-0"]
page = core.list_namespaced_config_map(NS, label_selector="app=py", limit=1)
assert len(page.items) == 1 and page.metadata._continue
rest = core.list_namespaced_config_map(
    NS, label_selector="app=py", limit=1, _continue=page.metadata._continue
)
assert len(rest.items) == 1 and rest.items[0].metadata.name != page.items[0].metadata.name
everywhere = core.list_config_map_for_all_namespaces(label_selector="app=py")
assert sorted(c.metadata.name for c in everywhere.items if c.metadata.namespace == NS) == ["cm-0", "cm-1"]

step("watch, and resume from a resourceVersion")
rv = core.list_namespaced_config_map(NS).metadata.resource_version
core.create_namespaced_config_map(
    NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w-1", labels={"w": "1"}))
)
w = watch.Watch()
seen = []
for ev in w.stream(
    core.list_namespaced_config_map,
    NS,
    label_selector="w=1",
    resource_version=rv,
    timeout_seconds=10,
):
    seen.append((ev["type"], ev["object"].metadata.name))
    last_rv = ev["object"].metadata.resource_version
    w.stop()
assert seen == [("ADDED", "w-1")], seen
# Changes made while no one watches are delivered when the watch resumes from the last seen rv.
core.patch_namespaced_config_map("w-1", NS, {"data": {"k": "v1"}})
core.delete_namespaced_config_map("w-1", NS)
w = watch.Watch()
seen = []
for ev in w.stream(
    core.list_namespaced_config_map,
    NS,
    label_selector="w=1",
    resource_version=last_rv,
    timeout_seconds=10,
):
    seen.append((ev["type"], (ev["object"].data or {}).get("k")))
    if ev["type"] == "DELETED":
        w.stop()
assert seen == [("MODIFIED", "v1"), ("DELETED", "v1")], seen
# The Watch helper resumes by itself; a watch that times out ends cleanly.
events = list(
    watch.Watch().stream(core.list_namespaced_config_map, NS, label_selector="none=here", timeout_seconds=1)
)
assert events == [], events

step("patch types")
# Strategic merge (a dict), JSON patch (a list), merge patch and server-side apply (dynamic).
p = core.patch_namespaced_config_map("cm-0", NS, {"metadata": {"labels": {"s": "1"}}, "data": {"m": "x"}})
assert p.metadata.labels["s"] == "1" and p.data == {"n": "zero", "m": "x"}, p
p = core.patch_namespaced_config_map(
    "cm-0", NS, [{"op": "replace", "path": "/data/n", "value": "0"}, {"op": "remove", "path": "/data/m"}]
)
assert p.data == {"n": "0"}, p.data
expect_status(
    422,
    lambda: core.patch_namespaced_config_map(
        "cm-0", NS, [{"op": "test", "path": "/data/n", "value": "wrong"}]
    ),
)
dyn = dynamic.DynamicClient(api)
cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
p = cms.patch(
    name="cm-0",
    namespace=NS,
    body={"data": {"n": None, "merged": "yes"}},
    content_type="application/merge-patch+json",
)
assert dict(p.data) == {"merged": "yes"}, p.data
applied = cms.server_side_apply(
    body={
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa", "namespace": NS},
        "data": {"a": "1"},
    },
    field_manager="python-ssa",
)
assert dict(applied.data) == {"a": "1"}
assert any(m.manager == "python-ssa" for m in applied.metadata.managedFields)
# Deployments: strategic merge on containers by name.
apps.create_namespaced_deployment(
    NS,
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "smp"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "smp"}},
            "template": {
                "metadata": {"labels": {"app": "smp"}},
                "spec": {"containers": [{"name": "a", "image": "busybox:1.36"}, {"name": "b", "image": "busybox:1.36"}]},
            },
        },
    },
)
d = apps.patch_namespaced_deployment(
    "smp", NS, {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox:1.37"}]}}}}
)
images = [(c.name, c.image) for c in d.spec.template.spec.containers]
assert images == [("a", "busybox:1.36"), ("b", "busybox:1.37")], images
scale = apps.patch_namespaced_deployment_scale("smp", NS, {"spec": {"replicas": 0}})
assert scale.spec.replicas == 0

step("create_from_yaml")
manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: from-yaml
  namespace: {NS}
data:
  k: v
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: from-yaml
  namespace: {NS}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: from-yaml}}
  template:
    metadata:
      labels: {{app: from-yaml}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: from-yaml
  namespace: {NS}
spec:
  selector: {{app: from-yaml}}
  ports:
  - port: 80
"""
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write(manifest)
created = utils.create_from_yaml(api, f.name)
os.unlink(f.name)
assert len(created) == 3, created
assert core.read_namespaced_config_map("from-yaml", NS).data == {"k": "v"}
assert apps.read_namespaced_deployment("from-yaml", NS).spec.selector.match_labels == {"app": "from-yaml"}
assert core.read_namespaced_service("from-yaml", NS).spec.cluster_ip
# Creating the same objects again fails with FailToCreateError (409s).
try:
    utils.create_from_yaml(api, yaml_objects=[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-yaml", "namespace": NS}}])
    raise AssertionError("create_from_yaml of an existing object succeeded")
except utils.FailToCreateError as e:
    assert e.api_exceptions[0].status == 409

step("pod logs")
core.create_namespaced_pod(
    NS,
    client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod"),
        spec=client.V1PodSpec(
            node_name=NODE,
            termination_grace_period_seconds=1,
            containers=[
                client.V1Container(
                    name="main",
                    image="busybox:1.36",
                    image_pull_policy="IfNotPresent",
                    command=["sh", "-c", "echo line-1; echo line-2; echo line-3; exec sleep 3600"],
                )
            ],
        ),
    ),
)
wait_for(
    "the pod to run",
    90,
    lambda: core.read_namespaced_pod("py-pod", NS).status.phase == "Running",
)
logs = wait_for(
    "the pod's logs",
    30,
    lambda: (lambda l: l if "line-3" in l else None)(core.read_namespaced_pod_log("py-pod", NS)),
)
assert logs == "line-1\nline-2\nline-3\n", repr(logs)
tail = core.read_namespaced_pod_log("py-pod", NS, container="main", tail_lines=1)
assert tail == "line-3\n", repr(tail)
# Following the log, as a stream.
resp = core.read_namespaced_pod_log("py-pod", NS, follow=True, _preload_content=False)
first = resp.read(7)
resp.release_conn()
assert first == b"line-1\n", first

step("exec over WebSocket")
out = stream(
    core.connect_get_namespaced_pod_exec,
    "py-pod",
    NS,
    command=["sh", "-c", "echo out-$((6*7)); echo err >&2"],
    stderr=False,
    stdin=False,
    stdout=True,
    tty=False,
)
assert out == "out-42\n", repr(out)
# Interactive: stdin, separate stdout/stderr and the exit code (the error channel).
ws = stream(
    core.connect_get_namespaced_pod_exec,
    "py-pod",
    NS,
    command=["sh", "-c", "read x; echo got-$x; echo oops >&2; exit 3"],
    stderr=True,
    stdin=True,
    stdout=True,
    tty=False,
    _preload_content=False,
)
ws.write_stdin("hello\n")
stdout, stderr = "", ""
deadline = time.time() + 20
while ws.is_open() and time.time() < deadline:
    ws.update(timeout=1)
    stdout += ws.read_stdout(timeout=0) if ws.peek_stdout() else ""
    stderr += ws.read_stderr(timeout=0) if ws.peek_stderr() else ""
stdout += ws.read_stdout(timeout=0) if ws.peek_stdout() else ""
stderr += ws.read_stderr(timeout=0) if ws.peek_stderr() else ""
ws.close()
assert stdout == "got-hello\n", repr(stdout)
assert stderr == "oops\n", repr(stderr)
assert ws.returncode == 3, ws.returncode

step("delete")
core.delete_namespaced_pod("py-pod", NS, grace_period_seconds=0)
apps.delete_namespaced_deployment("smp", NS, propagation_policy="Foreground")
core.delete_collection_namespaced_config_map(NS, label_selector="app=py")
assert core.list_namespaced_config_map(NS, label_selector="app=py").items == []
core.delete_namespace(NS)
ns = core.read_namespace(NS)
assert ns.status.phase == "Terminating", ns.status
print("python client: all checks passed", flush=True)
sys.exit(0)
