//! High availability: three `rudder server`s on one three-member etcd cluster, sharing one
//! cluster identity (`--pki-from`), and simulated nodes in an agent process that knows all three
//! servers. In the middle of a Deployment's rolling update the server holding the controller
//! manager's Lease is killed (SIGKILL), and a few seconds later the etcd leader. Another server
//! takes the Lease over within the lease duration (15 s) of the kill, the agent moves to another
//! server, and the rollout completes with exactly `replicas` pods: no ReplicaSet ever had a pod
//! more than it should (a watch from before the Deployment sees every pod ever created) and no
//! pod of the new ReplicaSet was lost.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::cluster::{self, Agent, items, servers_sharing_pki};
use common::node::wait_for;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher;
use rudder_store_etcd::testing::EtcdCluster;

const KUBECTL: &str = "/usr/bin/kubectl";
const REPLICAS: usize = 6;
const NODES: usize = 3;
const LEASES: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];
/// Leader election's lease duration: a killed holder is replaced within it.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// Allowance over the lease duration for a loaded test machine (timers firing late, the etcd
/// election after the member kill delaying a write).
const TAKEOVER_MARGIN: Duration = Duration::from_secs(5);

/// `kubectl get ... -o json` through `s`, `None` when it fails (an etcd election, say).
fn try_get(s: &Server, args: &[&str]) -> Option<serde_json::Value> {
    cluster::try_get(s, KUBECTL, args)
}

/// The holder of `kube-system/<name>` and when it acquired it.
fn lease_holder(s: &Server, name: &str) -> Option<(String, Timestamp)> {
    let lease = try_get(s, &["get", "lease", "-n", "kube-system", name])?;
    let holder = lease["spec"]["holderIdentity"].as_str()?.to_owned();
    let acquired = lease["spec"]["acquireTime"].as_str()?.parse().ok()?;
    (!holder.is_empty()).then_some((holder, acquired))
}

/// Which server runs with leader election identity `identity` (each logs it at start).
fn server_of(servers: &[Server], identity: &str) -> Option<usize> {
    servers.iter().position(|s| {
        s.log().lines().any(|l| {
            l.contains("leader election identity of the scheduler") && l.contains(identity)
        })
    })
}

fn deployment(replicas: usize) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ha"},
        "spec": {
            "replicas": replicas,
            // Paced, so that the kills land in the middle of the rollout.
            "minReadySeconds": 2,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "ha"}},
            "template": {
                "metadata": {"labels": {"app": "ha"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    })
    .to_string()
}

/// Whether the Deployment's latest template is fully rolled out and available.
fn rolled_out(d: &serde_json::Value, replicas: usize) -> bool {
    let st = &d["status"];
    let n = |f: &str| st[f].as_u64().unwrap_or(0) as usize;
    st["observedGeneration"] == d["metadata"]["generation"]
        && n("updatedReplicas") == replicas
        && n("replicas") == replicas
        && n("availableReplicas") == replicas
        && n("unavailableReplicas") == 0
}

/// Every pod the watch saw: uid to (name, owning ReplicaSet, seen deleted).
type Seen = Arc<Mutex<BTreeMap<String, (String, String, bool)>>>;

fn record(seen: &Seen, pod: &Pod, deleted: bool) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let owner = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let mut seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = seen.entry(uid).or_insert((name, owner, false));
    entry.2 |= deleted;
}

/// Watches the Deployment's pods through `kubeconfig`'s server, recording every pod it sees.
async fn watch_pods(kubeconfig: PathBuf, seen: Seen) {
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("client config");
    let client = kube::Client::try_from(config).expect("client");
    let api: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let mut events = watcher(api, watcher::Config::default().labels("app=ha")).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => record(&seen, &p, false),
            Ok(watcher::Event::Delete(p)) => record(&seen, &p, true),
            Ok(_) => {}
            // The watcher resumes by itself (an etcd election may interrupt it).
            Err(e) => eprintln!("pod watch: {e}"),
        }
    }
}

#[test]
fn the_control_plane_survives_losing_its_leader_and_an_etcd_member_mid_rollout() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut etcd = rt
        .block_on(EtcdCluster::start(3))
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let endpoints = etcd.endpoints().join(",");
    let shared = [
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoints,
        "--disable-agent",
        "--disable-ingress",
        "--cluster-cidr",
        "172.30.0.0/16",
        "--node-cidr-mask-size",
        "24",
        "--service-cluster-ip-range",
        "10.96.0.0/24",
    ];
    let mut servers: [Server; 3] = servers_sharing_pki(&shared);
    // One cluster: every server presents a certificate of the same CA and the admin
    // kubeconfig of one works against all (the harness checked each server's own).
    let ca = std::fs::read_to_string(servers[0].data_dir().join("pki/ca.crt")).expect("CA");
    for s in &servers[1..] {
        let other = std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).expect("CA");
        assert_eq!(ca, other, "the servers share one CA");
    }

    // The Leases are held, and we know by whom: the victim holds the controller manager's.
    let holders: Vec<(String, Timestamp)> = wait_for("both Leases held", 60, || {
        LEASES
            .iter()
            .map(|l| lease_holder(&servers[0], l))
            .collect::<Option<Vec<_>>>()
    });
    let victim = server_of(&servers, &holders[0].0).expect("the holder is one of our servers");
    let witness = (victim + 1) % servers.len();
    eprintln!("leases: {holders:?}; victim is server {victim}");

    // Simulated nodes, talking to the victim first so that they must fail over.
    let urls: Vec<String> = (0..servers.len())
        .map(|i| {
            let s = &servers[(victim + i) % servers.len()];
            format!("https://127.0.0.1:{}", s.port)
        })
        .collect();
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = servers[witness].kubeconfig();
    let mut agent = Agent::start(
        work.path(),
        &[
            "--simulate",
            &NODES.to_string(),
            "--simulate-prefix",
            "ha",
            "--kubeconfig",
            kubeconfig.to_str().expect("UTF-8 path"),
            "--server",
            &urls.join(","),
        ],
    );
    let w = &servers[witness];
    wait_for("the simulated nodes Ready", 90, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log());
        let nodes = items(&try_get(w, &["get", "nodes"])?);
        let ready = nodes.iter().filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        });
        (ready.count() == NODES).then_some(())
    });

    // Every pod the Deployment will ever have is seen from here on.
    let seen: Seen = Arc::default();
    let watch = rt.spawn(watch_pods(kubeconfig.clone(), seen.clone()));
    w.create(KUBECTL, Some("default"), &deployment(REPLICAS));
    wait_for("the Deployment available", 120, || {
        rolled_out(&try_get(w, &["get", "deployment", "ha"])?, REPLICAS).then_some(())
    });

    // A rolling update; once it is under way, the leader dies, then the etcd leader.
    w.ok_kubectl(
        KUBECTL,
        &[
            "patch",
            "deployment",
            "ha",
            "-p",
            r#"{"spec":{"template":{"metadata":{"annotations":{"rollout":"2"}}}}}"#,
        ],
    );
    wait_for("the rollout under way", 60, || {
        let d = try_get(w, &["get", "deployment", "ha"])?;
        let updated = d["status"]["updatedReplicas"].as_u64().unwrap_or(0);
        (updated >= 2 && !rolled_out(&d, REPLICAS)).then_some(())
    });
    let (victim_identity, _) = holders[0].clone();
    servers[victim].kill9();
    let killed_at = Timestamp::now();
    let killed = Instant::now();
    let w = &servers[witness];
    std::thread::sleep(Duration::from_secs(3));
    let etcd_leader = rt
        .block_on(etcd.leader_index())
        .expect("etcd status")
        .expect("an etcd leader");
    etcd.kill(etcd_leader).expect("kill the etcd leader");
    eprintln!("killed server {victim} and etcd member {etcd_leader}");

    // Each Lease the victim held moves to a live server within the lease duration.
    for (lease, (holder, _)) in LEASES.iter().zip(&holders) {
        if *holder != victim_identity {
            continue;
        }
        let (new_holder, acquired) = wait_for(&format!("{lease} taken over"), 60, || {
            lease_holder(w, lease).filter(|(h, _)| *h != victim_identity)
        });
        let took = Duration::try_from(acquired.duration_since(killed_at)).unwrap_or_default();
        eprintln!("{lease}: {new_holder} took over {took:?} after the kill");
        assert!(
            took <= LEASE_DURATION + TAKEOVER_MARGIN,
            "{lease} taken over {took:?} after its holder was killed"
        );
        let by = server_of(&servers, &new_holder).expect("the new holder is one of ours");
        assert_ne!(by, victim);
    }
    assert!(killed.elapsed() < Duration::from_secs(60));

    // The rollout completes, and the old pods are gone.
    wait_for("the rollout complete", 180, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log());
        rolled_out(&try_get(w, &["get", "deployment", "ha"])?, REPLICAS).then_some(())
    });
    // The agent went on through another server.
    assert!(
        agent.log().contains("switching to the next one"),
        "the agent never failed over:\n{}",
        agent.log()
    );
    let pods = wait_for("only the new pods left", 120, || {
        let pods = items(&try_get(w, &["get", "pods", "-l", "app=ha"])?);
        (pods.len() == REPLICAS).then_some(pods)
    });
    let d = try_get(w, &["get", "deployment", "ha"]).expect("deployment");
    let replicasets = items(&try_get(w, &["get", "replicasets", "-l", "app=ha"]).expect("sets"));
    let hash = |v: &serde_json::Value| {
        v["metadata"]["labels"]["pod-template-hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let new_rs = replicasets
        .iter()
        .find(|rs| rs["spec"]["template"]["metadata"]["annotations"]["rollout"] == "2")
        .expect("the new ReplicaSet");
    let new_name = new_rs["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert_eq!(new_rs["status"]["replicas"], REPLICAS, "{new_rs}");
    assert_eq!(replicasets.len(), 2, "{replicasets:?}");
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(p["status"]["phase"], "Running", "{name}");
        assert_eq!(hash(p), hash(new_rs), "{name} is of the new template");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"], new_name,
            "{name}"
        );
    }
    assert_eq!(d["status"]["replicas"], REPLICAS);

    // Every pod ever seen: each ReplicaSet made exactly `replicas` (no duplicate was ever
    // created, even briefly), and the new one's are exactly the pods left (none lost).
    std::thread::sleep(Duration::from_secs(1));
    watch.abort();
    let seen = seen.lock().expect("lock").clone();
    let mut per_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, owner, _) in seen.values() {
        per_owner
            .entry(owner.as_str())
            .or_default()
            .push(name.as_str());
    }
    assert_eq!(per_owner.len(), 2, "pods of two ReplicaSets: {per_owner:?}");
    for (owner, names) in &per_owner {
        assert_eq!(names.len(), REPLICAS, "{owner} made {names:?}");
    }
    let mut left: Vec<&str> = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    left.sort_unstable();
    let mut made = per_owner
        .get(new_name.as_str())
        .cloned()
        .unwrap_or_default();
    made.sort_unstable();
    assert_eq!(made, left, "the new ReplicaSet's pods are the ones left");
}
