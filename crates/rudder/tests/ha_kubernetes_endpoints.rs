//! The `kubernetes` Service's endpoints with several servers on one etcd (the lease endpoint
//! reconciler, ADR 0026): three servers on 127.0.0.1, each on its own port, are all named, as
//! (ip, port) pairs in valid Endpoints and EndpointSlices; a server killed with SIGKILL leaves
//! them within the Lease duration plus one reconcile period; one stopped with SIGTERM leaves
//! them at once, and its Lease with it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Server;
use common::cluster::{self, servers_sharing_pki};
use common::node::wait_for;
use rudder_store_etcd::testing::EtcdProcess;

const KUBECTL: &str = "/usr/bin/kubectl";
/// The endpoint Lease duration and the reconcile period (upstream's 15 s and 10 s).
const LEASE: Duration = Duration::from_secs(15);
const PERIOD: Duration = Duration::from_secs(10);
/// Allowance for a loaded 2-core test machine (timers firing late, kubectl's own time).
const MARGIN: Duration = Duration::from_secs(5);

fn get(s: &Server, args: &[&str]) -> Option<serde_json::Value> {
    cluster::try_get(s, KUBECTL, args)
}

fn array(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// The `ip:port`s `kubectl get endpoints kubernetes` names, checking each subset's port names
/// are unique (what validation asks).
fn endpoints(s: &Server) -> Option<BTreeSet<String>> {
    let eps = get(s, &["get", "endpoints", "kubernetes"])?;
    let mut set = BTreeSet::new();
    for subset in array(&eps["subsets"]) {
        let ports = array(&subset["ports"]);
        let names: BTreeSet<&str> = ports.iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names.len(), ports.len(), "port names unique in {subset}");
        for a in array(&subset["addresses"]) {
            for p in &ports {
                set.insert(format!("{}:{}", a["ip"].as_str()?, p["port"].as_u64()?));
            }
        }
    }
    Some(set)
}

/// The `ip:port`s the `kubernetes` EndpointSlices name.
fn slices(s: &Server) -> Option<BTreeSet<String>> {
    let list = get(
        s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=kubernetes",
        ],
    )?;
    let mut set = BTreeSet::new();
    for slice in array(&list["items"]) {
        assert_eq!(slice["addressType"], "IPv4", "{slice}");
        for e in array(&slice["endpoints"]) {
            assert_eq!(e["conditions"]["ready"], true, "{slice}");
            for p in array(&slice["ports"]) {
                set.insert(format!(
                    "{}:{}",
                    e["addresses"][0].as_str()?,
                    p["port"].as_u64()?
                ));
            }
        }
    }
    Some(set)
}

/// The names of the API servers' endpoint Leases.
fn leases(s: &Server) -> Option<BTreeSet<String>> {
    let list = get(
        s,
        &[
            "get",
            "leases",
            "-n",
            "kube-system",
            "-l",
            "apiserver.kubernetes.io/identity=kube-apiserver",
        ],
    )?;
    array(&list["items"])
        .iter()
        .map(|l| l["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn addresses(servers: &[&Server]) -> BTreeSet<String> {
    servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect()
}

#[test]
fn the_kubernetes_endpoints_name_every_live_server() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Declared first, dropped last: the servers stop before their store does.
    let etcd = rt
        .block_on(EtcdProcess::start())
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let endpoint = etcd.endpoint();
    let shared = [
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoint,
        "--advertise-address",
        "127.0.0.1",
        "--disable-agent",
        "--disable-ingress",
        "--disable-controllers",
        "--disable-scheduler",
        "--service-cluster-ip-range",
        "10.96.0.0/24",
    ];
    let [mut a, mut b, c] = servers_sharing_pki(&shared);

    // Each server adds itself at start: all three are named once the last is ready.
    let all = addresses(&[&a, &b, &c]);
    wait_for("all three servers in the endpoints", 30, || {
        (endpoints(&c)? == all && slices(&c)? == all).then_some(())
    });
    assert_eq!(leases(&c).map(|l| l.len()), Some(3));
    let eps = get(&c, &["get", "endpoints", "kubernetes"]).expect("endpoints");
    assert_eq!(
        eps["subsets"].as_array().map(Vec::len),
        Some(3),
        "one subset per port: {eps}"
    );

    // SIGKILL: the address stays until the Lease expires and a survivor's round notices.
    a.kill9();
    let killed = Instant::now();
    let survivors = addresses(&[&b, &c]);
    wait_for(
        "the killed server out of the endpoints",
        (LEASE + PERIOD + MARGIN).as_secs() + 30,
        || {
            let now = endpoints(&c)?;
            assert!(
                now.is_superset(&survivors),
                "a live server dropped: {now:?}"
            );
            (now == survivors && slices(&c)? == survivors).then_some(())
        },
    );
    let took = killed.elapsed();
    eprintln!("the killed server left the endpoints {took:?} after the kill");
    assert!(
        took <= LEASE + PERIOD + MARGIN,
        "the killed server's address stayed {took:?}"
    );
    assert_eq!(
        leases(&c).map(|l| l.len()),
        Some(2),
        "its Lease deleted once expired"
    );

    // SIGTERM: the server takes itself out before it exits.
    b.stop();
    let stopped = Instant::now();
    let last = addresses(&[&c]);
    wait_for("the stopped server out of the endpoints", 3, || {
        (endpoints(&c)? == last && slices(&c)? == last).then_some(())
    });
    assert!(
        stopped.elapsed() < LEASE,
        "a clean stop does not wait for the Lease"
    );
    assert_eq!(
        leases(&c),
        Some(BTreeSet::from([format!("apiserver-127.0.0.1-{}", c.port)]))
    );
    drop((a, b, c));
    drop(etcd);
}
