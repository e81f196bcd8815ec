//! End to end: the official Rust client (kube-rs) against `rudder server`, using the kubeconfig
//! the server writes — list, watch, patch (merge, strategic, apply) and typed decoding.

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use common::Server;

async fn client(s: &Server) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(s.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_patch_with_kube_rs() {
    let s = Server::start();
    let client = client(&s).await;
    let info = client.apiserver_version().await.expect("version");
    assert_eq!(info.major, "1");

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("kube-{i}"), "labels": {"from": "kube-rs"}},
            "data": {"n": i.to_string()},
        }))
        .expect("configmap");
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let list = cms
        .list(&ListParams::default().labels("from=kube-rs"))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 3);
    let rv = list
        .metadata
        .resource_version
        .clone()
        .expect("list resourceVersion");

    // Metadata-only lists and gets (what metadata informers use).
    let meta = cms
        .list_metadata(&ListParams::default().labels("from=kube-rs"))
        .await
        .expect("list metadata");
    assert_eq!(meta.items.len(), 3);
    assert!(meta.items.iter().all(|m| {
        m.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l["from"] == "kube-rs")
    }));
    let one = cms.get_metadata("kube-0").await.expect("get metadata");
    assert_eq!(one.metadata.name.as_deref(), Some("kube-0"));

    // Paged listing.
    let page = cms
        .list(&ListParams::default().labels("from=kube-rs").limit(2))
        .await
        .expect("page");
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("continue token");
    let rest = cms
        .list(
            &ListParams::default()
                .labels("from=kube-rs")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .expect("next page");
    assert_eq!(rest.items.len(), 1);

    // A watch from the list's revision sees the later merge patch.
    let mut events = cms
        .watch(&WatchParams::default().labels("from=kube-rs"), &rv)
        .await
        .expect("watch")
        .boxed();
    let patched = cms
        .patch(
            "kube-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": "one"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("n"))
            .map(String::as_str),
        Some("one")
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.try_next())
        .await
        .expect("event in time")
        .expect("watch stream")
        .expect("an event");
    match event {
        WatchEvent::Modified(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("kube-1")),
        other => panic!("unexpected event {other:?}"),
    }

    // Server-side apply of a typed Deployment, then a strategic merge patch by container name.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let desired = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kube-web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "kube-web"}},
            "template": {
                "metadata": {"labels": {"app": "kube-web"}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
            },
        },
    });
    let applied = deployments
        .patch(
            "kube-web",
            &PatchParams::apply("kube-rs-test"),
            &Patch::Apply(&desired),
        )
        .await
        .expect("apply");
    assert_eq!(applied.spec.replicas, Some(1));
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kube-rs-test"]);
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}}});
    let patched = deployments
        .patch("kube-web", &PatchParams::default(), &Patch::Strategic(smp))
        .await
        .expect("strategic patch");
    let containers = patched
        .spec
        .template
        .spec
        .map(|p| p.containers)
        .unwrap_or_default();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("busybox:1.37"));

    // Errors arrive as typed Status values.
    match cms.get("missing").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// The reconciler's error (kube-runtime wants a `std::error::Error`).
#[derive(Debug)]
struct ReconcileError(kube::Error);

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for ReconcileError {}

/// Keeps `<name>-copy` (owned by the source, written by server-side apply) equal to each
/// ConfigMap labelled `copy=yes`.
async fn reconcile(
    cm: std::sync::Arc<ConfigMap>,
    client: std::sync::Arc<kube::Client>,
) -> Result<kube::runtime::controller::Action, ReconcileError> {
    use kube::Resource;
    let ns = cm.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced((*client).clone(), &ns);
    let name = cm.metadata.name.clone().unwrap_or_default();
    let owner = cm.controller_owner_ref(&()).expect("owner reference");
    let copy = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-copy"), "ownerReferences": [owner]},
        "data": cm.data.clone().unwrap_or_default(),
    });
    api.patch(
        &format!("{name}-copy"),
        &PatchParams::apply("copier").force(),
        &Patch::Apply(&copy),
    )
    .await
    .map_err(ReconcileError)?;
    Ok(kube::runtime::controller::Action::await_change())
}

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reflector_and_apply_conflicts_with_kube_runtime() {
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::{WatchStreamExt, reflector, watcher};

    let s = Server::start();
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A reflector keeps a store of what a watcher sees.
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = watcher(cms.clone(), watcher::Config::default().labels("copy=yes"))
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let reflector = tokio::spawn(stream.for_each(|_| futures::future::ready(())));

    // A Controller that owns the copies: it reconciles on changes of either.
    let controller = Controller::new(cms.clone(), watcher::Config::default().labels("copy=yes"))
        .owns(cms.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _: &ReconcileError, _| Action::requeue(std::time::Duration::from_secs(1)),
            std::sync::Arc::new(client.clone()),
        )
        .for_each(|_| futures::future::ready(()));
    let controller = tokio::spawn(controller);

    let source: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "src", "labels": {"copy": "yes"}},
        "data": {"a": "1"},
    }))
    .expect("configmap");
    cms.create(&PostParams::default(), &source)
        .await
        .expect("create source");
    let copy = eventually("the copy", || async {
        cms.get_opt("src-copy").await.ok().flatten()
    })
    .await;
    assert_eq!(copy.data.unwrap_or_default()["a"], "1");
    let owners = copy.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners[0].name, "src");
    assert_eq!(owners[0].controller, Some(true));

    // A change of the source reaches the copy.
    cms.patch(
        "src",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .expect("patch source");
    eventually("the copy to follow", || async {
        let c = cms.get("src-copy").await.ok()?;
        (c.data.unwrap_or_default()["a"] == "2").then_some(())
    })
    .await;

    // Deleting the owned copy triggers a reconcile that makes it again.
    let uid = cms.get("src-copy").await.expect("copy").metadata.uid;
    cms.delete("src-copy", &Default::default())
        .await
        .expect("delete copy");
    eventually("the copy to come back", || async {
        let c = cms.get_opt("src-copy").await.ok()??;
        (c.metadata.uid != uid).then_some(())
    })
    .await;

    // The reflector's store holds the source (the copy has no label).
    eventually("the reflector", || async {
        let names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        (names == ["src"]).then_some(())
    })
    .await;

    // Server-side apply: another manager changing the copier's field conflicts, unless forced.
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "src-copy"}, "data": {"a": "mine"}});
    match cms
        .patch(
            "src-copy",
            &PatchParams::apply("intruder"),
            &Patch::Apply(&theirs),
        )
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert!(status.message.contains("copier"), "{}", status.message);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let forced = cms
        .patch(
            "src-copy",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.unwrap_or_default()["a"], "mine");

    controller.abort();
    reflector.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_port_forward_with_kube_rs() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::AttachParams;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (s, node) = tokio::task::block_in_place(common::node::node_with_busybox);
    let client = client(&s).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "mkdir -p /www && echo hello from kube-rs > /www/index.html && exec httpd -f -p 8080 -h /www"],
            }],
        },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    eventually("the pod to run", || async {
        let p = pods.get("web").await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;

    // exec: stdout, stderr and the exit status.
    let mut proc = pods
        .exec(
            "web",
            ["sh", "-c", "echo out; echo err >&2; exit 3"],
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec");
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = proc.stdout().expect("stdout");
    let mut stderr = proc.stderr().expect("stderr");
    let status = proc.take_status().expect("status");
    let (r1, r2) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err)
    );
    r1.expect("read stdout");
    r2.expect("read stderr");
    let status = status.await.expect("a status");
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(status.status.as_deref(), Some("Failure"), "{status:?}");
    let code = status
        .details
        .and_then(|d| d.causes)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message);
    assert_eq!(code.as_deref(), Some("3"));
    proc.join().await.expect("join");

    // exec with stdin.
    let mut proc = pods
        .exec(
            "web",
            ["sh", "-c", "read line; echo got-$line"],
            &AttachParams::default().stdin(true).stderr(false),
        )
        .await
        .expect("exec with stdin");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(b"hello\n").await.expect("write stdin");
    let mut out = String::new();
    proc.stdout()
        .expect("stdout")
        .read_to_string(&mut out)
        .await
        .expect("read");
    assert_eq!(out, "got-hello\n");
    let status = proc.take_status().expect("status").await.expect("a status");
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");

    // port-forward: an HTTP request to the pod's port 8080.
    let mut pf = pods.portforward("web", &[8080]).await.expect("portforward");
    let mut stream = pf.take_stream(8080).expect("the port's stream");
    stream
        .write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.") && response.contains("hello from kube-rs"),
        "{response}"
    );
    drop(stream);
    // The agent closes the WebSocket once the pod's side of every port closed (as the kubelet
    // does); kube-rs then still sends its own close and reports `SendAfterClosing` — its
    // quirk, the data path above is complete.
    match pf.join().await {
        Ok(()) => {}
        Err(e) if format!("{e:?}").contains("SendAfterClosing") => {}
        Err(e) => panic!("portforward join: {e:?}"),
    }
}
