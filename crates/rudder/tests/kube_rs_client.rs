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
