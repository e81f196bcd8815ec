//! End to end: optimistic concurrency of writes racing on one Deployment, through kube-rs. A
//! write that names no resourceVersion (any PATCH, a PUT without one, on the object or its
//! `scale` and `status` subresources) is re-applied to the fresh object when it loses a race,
//! as kube-apiserver does; only a write naming a stale resourceVersion is a 409 Conflict.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
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

async fn deployment(api: &Api<Deployment>, name: &str) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

/// Rounds of each racing writer: enough that, with several writers on one key, many writes
/// lose a compare-and-swap (the bug showed as 409s on 3–21% of scale PATCHes).
const ROUNDS: i64 = 40;

/// What a failed call returned, for the assertion message.
fn failure(what: String, e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{what}: {} {} {}", s.code, s.reason, s.message),
        other => format!("{what}: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_resource_version_survive_races() {
    let s = Server::start();
    let client = client(&s).await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    deployment(&api, "raced").await;
    let pp = PatchParams::default();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (api, pp) = (api.clone(), pp.clone());
        tasks.spawn(async move {
            let mut failed = Vec::new();
            for i in 0..ROUNDS {
                let patch = Patch::Merge(json!({"spec": {"replicas": (w + i) % 3}}));
                if let Err(e) = api.patch_scale("raced", &pp, &patch).await {
                    failed.push(failure(format!("scale PATCH {w}/{i}"), e));
                }
            }
            failed
        });
    }
    for w in 0..2 {
        let (api, pp) = (api.clone(), pp.clone());
        tasks.spawn(async move {
            let mut failed = Vec::new();
            for i in 0..ROUNDS {
                let patch = Patch::Merge(json!({"status": {"collisionCount": w * ROUNDS + i}}));
                if let Err(e) = api.patch_status("raced", &pp, &patch).await {
                    failed.push(failure(format!("status PATCH {w}/{i}"), e));
                }
            }
            failed
        });
    }
    {
        // PUT of status without a resourceVersion: unconditional too.
        let api = api.clone();
        tasks.spawn(async move {
            let mut failed = Vec::new();
            for i in 0..ROUNDS {
                let mut d = match api.get("raced").await {
                    Ok(d) => d,
                    Err(e) => {
                        failed.push(failure(format!("GET {i}"), e));
                        continue;
                    }
                };
                d.metadata.resource_version = None;
                d.metadata.managed_fields = None;
                let status = d.status.get_or_insert_with(Default::default);
                status.observed_generation = Some(i);
                if let Err(e) = api
                    .replace_status("raced", &PostParams::default(), &d)
                    .await
                {
                    failed.push(failure(format!("status PUT {i}"), e));
                }
            }
            failed
        });
    }
    for w in 0..2 {
        let (api, pp) = (api.clone(), pp.clone());
        tasks.spawn(async move {
            let mut failed = Vec::new();
            for i in 0..ROUNDS {
                let patch = Patch::Merge(
                    json!({"metadata": {"annotations": {format!("race/w{w}"): i.to_string()}}}),
                );
                if let Err(e) = api.patch("raced", &pp, &patch).await {
                    failed.push(failure(format!("metadata PATCH {w}/{i}"), e));
                }
            }
            failed
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        failed.extend(done.expect("writer task"));
    }
    assert!(
        failed.is_empty(),
        "{} racing writes without a resourceVersion failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // Retried writes were re-applied to the fresh object, not written over it: every metadata
    // writer's last annotation is there.
    let d = api.get("raced").await.expect("get");
    let annotations = d.metadata.annotations.unwrap_or_default();
    for w in 0..2 {
        assert_eq!(
            annotations.get(&format!("race/w{w}")).map(String::as_str),
            Some((ROUNDS - 1).to_string().as_str()),
            "{annotations:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_put_with_stale_resource_version_conflicts() {
    let s = Server::start();
    let client = client(&s).await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    deployment(&api, "pinned").await;
    let mut stale = api.get_scale("pinned").await.expect("get scale");
    assert!(stale.metadata.resource_version.is_some(), "{stale:?}");
    // Another writer moves the Deployment on.
    api.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"moved": "on"}}})),
    )
    .await
    .expect("label");
    stale.spec.get_or_insert_with(Default::default).replicas = Some(5);
    match api
        .replace_scale("pinned", &PostParams::default(), &stale)
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409, "{status:?}");
            assert_eq!(status.reason, "Conflict", "{status:?}");
            assert!(status.is_failure(), "{status:?}");
        }
        other => panic!("a stale scale PUT must be a 409 Conflict, got {other:?}"),
    }
    let d = api.get("pinned").await.expect("get");
    assert_eq!(d.spec.replicas, Some(1), "the stale PUT wrote");

    // Without a resourceVersion the same PUT succeeds even though the Deployment controller
    // is writing the Deployment's status meanwhile.
    let mut unpinned = stale.clone();
    unpinned.metadata.resource_version = None;
    unpinned.spec.get_or_insert_with(Default::default).replicas = Some(3);
    let written = api
        .replace_scale("pinned", &PostParams::default(), &unpinned)
        .await
        .expect("scale PUT without a resourceVersion");
    assert_eq!(written.spec.and_then(|s| s.replicas), Some(3));
    // At the current resourceVersion it succeeds too, once it is not overtaken by such a write
    // (a 409 then is right: the client asked for that version).
    let mut last = None;
    for _ in 0..20 {
        let mut fresh = api.get_scale("pinned").await.expect("get scale");
        fresh.spec.get_or_insert_with(Default::default).replicas = Some(2);
        match api
            .replace_scale("pinned", &PostParams::default(), &fresh)
            .await
        {
            Ok(written) => {
                assert_eq!(written.spec.and_then(|s| s.replicas), Some(2));
                return;
            }
            Err(kube::Error::Api(status)) if status.code == 409 => last = Some(status),
            Err(e) => panic!("scale PUT at the current resourceVersion: {e}"),
        }
    }
    panic!("scale PUT at the current resourceVersion kept conflicting: {last:?}");
}
