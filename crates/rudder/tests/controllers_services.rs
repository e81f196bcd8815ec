//! End to end: the ServiceAccount controller (a `default` account in every namespace) and the
//! EndpointSlice and Endpoints controllers (pods behind a Service, named target ports, ready
//! and not-ready addresses, pods without an IP left out), driven by real kubectl. Pod IPs and
//! readiness are written through `pods/status`, as a node would, for pods bound to a node that does
//! not exist.

mod common;
mod controllers_support;

use common::Server;
use controllers_support::{K, get, wait_for};

#[test]
fn every_namespace_gets_a_default_service_account() {
    let s = Server::start();
    s.namespace(K, "team");
    wait_for("default account", 60, &s, || {
        get(&s, &["serviceaccount", "default", "-n", "team"])
    });
    s.ok_kubectl(K, &["delete", "serviceaccount", "default", "-n", "team"]);
    wait_for("default account recreated", 60, &s, || {
        get(&s, &["serviceaccount", "default", "-n", "team"])
    });
    // The system namespaces have one too.
    wait_for("kube-system account", 60, &s, || {
        get(&s, &["serviceaccount", "default", "-n", "kube-system"])
    });
}

fn pod(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        // Bound to a node that does not exist: neither the scheduler nor a node agent touches
        // it, so the status written below stays.
        "spec": {"nodeName": "nowhere", "containers": [{
            "name": "main", "image": "rudder.invalid/none:1",
            "ports": [{"name": "http", "containerPort": 8080}],
        }]},
    })
    .to_string()
}

fn set_status(s: &Server, name: &str, ip: &str, ready: bool) {
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    }});
    s.ok_kubectl(
        K,
        &[
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
    );
}

#[test]
fn services_get_endpoint_slices_and_endpoints() {
    // The pods are bound to a node that does not exist: keep the pod GC from removing them.
    let s = Server::start_with(&["--controllers", "*,-podgc"]);
    s.create(K, Some("default"), &serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }).to_string());
    s.create(K, Some("default"), &pod("a"));
    s.create(K, Some("default"), &pod("b"));
    set_status(&s, "a", "10.1.0.5", true);

    // Only the pod with an IP, on the named port's number.
    let slice = wait_for("a slice with pod a", 60, &s, || {
        let list = get(
            &s,
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        )?;
        let slice = list["items"].as_array()?.first()?.clone();
        (slice["endpoints"].as_array().map_or(0, Vec::len) == 1).then_some(slice)
    });
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "10.1.0.5");
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(slice["endpoints"][0]["targetRef"]["name"], "a");
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["ports"][0]["name"], "http");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    wait_for("Endpoints with pod a", 60, &s, || {
        let ep = get(&s, &["endpoints", "web"])?;
        (ep["subsets"][0]["addresses"][0]["ip"] == "10.1.0.5"
            && ep["subsets"][0]["ports"][0]["port"] == 8080)
            .then_some(())
    });

    // A pod that is not ready is listed as such.
    set_status(&s, "b", "10.1.0.6", false);
    wait_for("pod b not ready", 60, &s, || {
        let ep = get(&s, &["endpoints", "web"])?;
        (ep["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.1.0.6").then_some(())
    });
    wait_for("pod b in the slice", 60, &s, || {
        let list = get(
            &s,
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        )?;
        let eps = list["items"][0]["endpoints"].as_array()?.clone();
        eps.iter()
            .any(|e| e["addresses"][0] == "10.1.0.6" && e["conditions"]["ready"] == false)
            .then_some(())
    });

    // Deleting the Service takes both along.
    s.ok_kubectl(K, &["delete", "service", "web"]);
    wait_for("endpoints and slices gone", 60, &s, || {
        // kubectl prints nothing for an empty list with --ignore-not-found.
        let slices = get(
            &s,
            &["endpointslices", "-l", "kubernetes.io/service-name=web"],
        );
        let no_slices = slices.is_none_or(|l| l["items"].as_array().is_none_or(Vec::is_empty));
        let no_endpoints = get(&s, &["endpoints", "web"]).is_none();
        (no_slices && no_endpoints).then_some(())
    });
}

#[test]
fn resource_quota_reports_usage() {
    // The pods are bound to a node that does not exist: keep the pod GC from removing them.
    let s = Server::start_with(&["--controllers", "*,-podgc"]);
    s.namespace(K, "quota");
    // A BestEffort pod is created before `q` exists: quota admission refuses pods that do not
    // request the CPU an unscoped quota limits (`must specify requests.cpu`), as upstream.
    s.create(
        K,
        Some("quota"),
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "idle"},
            "spec": {"nodeName": "nowhere", "activeDeadlineSeconds": 600, "containers": [{
                "name": "main", "image": "rudder.invalid/none:1",
            }]},
        })
        .to_string(),
    );
    s.create(
        K,
        Some("quota"),
        &serde_json::json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "10", "configmaps": "5", "requests.cpu": "2"}},
        })
        .to_string(),
    );
    // Admission refuses what a quota tracks until the controller has counted it.
    wait_for("quota status", 45, &s, || {
        let q = get(&s, &["resourcequota", "q", "-n", "quota"])?;
        q["status"]["used"]["pods"].is_string().then_some(())
    });
    s.configmap(K, "quota", "one", "a", "b");
    s.create(
        K,
        Some("quota"),
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"nodeName": "nowhere", "containers": [{
                "name": "main", "image": "rudder.invalid/none:1",
                "resources": {"requests": {"cpu": "250m"}},
            }]},
        })
        .to_string(),
    );
    // Scoped quotas count only their pods.
    for (name, scopes) in [
        ("best-effort", serde_json::json!({"scopes": ["BestEffort"]})),
        (
            "burstable",
            serde_json::json!({"scopes": ["NotBestEffort", "NotTerminating"]}),
        ),
        (
            "high",
            serde_json::json!({"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
        ),
    ] {
        let mut spec = scopes;
        spec["hard"] = serde_json::json!({"pods": "10"});
        s.create(
            K,
            Some("quota"),
            &serde_json::json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": name}, "spec": spec})
            .to_string(),
        );
    }
    wait_for("quota usage", 45, &s, || {
        let q = get(&s, &["resourcequota", "q", "-n", "quota"])?;
        let used = &q["status"]["used"];
        (used["pods"] == "2"
            && used["requests.cpu"] == "250m"
            // kube-root-ca.crt counts too, as upstream.
            && used["configmaps"] == "2"
            && q["status"]["hard"]["pods"] == "10")
            .then_some(())
    });
    for (name, pods) in [("best-effort", "1"), ("burstable", "1"), ("high", "0")] {
        wait_for(&format!("{name} quota usage"), 45, &s, || {
            let q = get(&s, &["resourcequota", name, "-n", "quota"])?;
            (q["status"]["used"]["pods"] == pods).then_some(())
        });
    }
}
