//! Core and cluster kinds: nodes, services, endpoints, config, events, volumes, quotas, RBAC,
//! storage, and the default tables of kinds without a printer.

mod common;

use common::{ago, cells, headers};
use rudder_printers::Printer;
use serde_json::{Value, json};

fn node(conditions: Value, labels: Value, unschedulable: bool) -> Value {
    json!({"metadata": {"name": "n1", "labels": labels, "creationTimestamp": ago(86_400 * 10)},
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.33.0",
            "osImage": "Debian GNU/Linux 13", "kernelVersion": "6.12.0",
            "containerRuntimeVersion": "rudder://0.1.0"},
            "addresses": [{"type": "Hostname", "address": "n1"},
                          {"type": "InternalIP", "address": "192.168.1.10"}]}})
}

#[test]
fn node_status_and_roles() {
    let ready = |s: &str| json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": s}]);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "ready",
            node(ready("True"), json!({}), false),
            "Ready",
            "<none>",
        ),
        (
            "not ready",
            node(ready("False"), json!({}), false),
            "NotReady",
            "<none>",
        ),
        (
            "unknown readiness",
            node(ready("Unknown"), json!({}), false),
            "NotReady",
            "<none>",
        ),
        (
            "no condition",
            node(json!([]), json!({}), false),
            "Unknown",
            "<none>",
        ),
        (
            "cordoned",
            node(ready("True"), json!({}), true),
            "Ready,SchedulingDisabled",
            "<none>",
        ),
        (
            "roles from both label forms",
            node(
                ready("True"),
                json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "",
                       "node-role.kubernetes.io/": "", "kubernetes.io/role": "master",
                       "kubernetes.io/hostname": "n1"}),
                false,
            ),
            "Ready",
            "control-plane,master,worker",
        ),
    ];
    for (what, n, status, roles) in cases {
        let c = cells("", "Node", &n);
        assert_eq!(
            (c[1].clone(), c[2].clone()),
            (json!(status), json!(roles)),
            "{what}"
        );
    }
}

#[test]
fn node_wide_columns() {
    let n = node(json!([]), json!({}), false);
    assert_eq!(
        cells("", "Node", &n)[3..],
        [
            json!("10d"),
            json!("v1.33.0"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 13"),
            json!("6.12.0"),
            json!("rudder://0.1.0"),
        ]
    );
    let bare = json!({"metadata": {"name": "n2"}});
    assert_eq!(
        cells("", "Node", &bare)[7..],
        [json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]
    );
}

fn service(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "web", "creationTimestamp": ago(42)}, "spec": spec, "status": status})
}

#[test]
fn service_cells_table() {
    let cases: Vec<(&str, Value, [&str; 4])> = vec![
        (
            "cluster IP with two ports",
            service(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": [{"port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
                json!({}),
            ),
            ["ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP"],
        ),
        (
            "node port",
            service(
                json!({"type": "NodePort", "clusterIPs": ["10.96.0.11"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
                json!({}),
            ),
            ["NodePort", "10.96.0.11", "<none>", "80:30080/TCP"],
        ),
        (
            "cluster IP with external IPs, no ports, headless",
            service(
                json!({"type": "ClusterIP", "clusterIP": "None", "externalIPs": ["1.2.3.4", "5.6.7.8"]}),
                json!({}),
            ),
            ["ClusterIP", "None", "1.2.3.4,5.6.7.8", "<none>"],
        ),
        (
            "load balancer waiting for an address",
            service(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 443, "nodePort": 31443}]}),
                json!({}),
            ),
            ["LoadBalancer", "10.96.0.12", "<pending>", "443:31443/TCP"],
        ),
        (
            "load balancer with ingress points",
            service(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "ports": [{"port": 80, "protocol": "TCP"}]}),
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"}]}}),
            ),
            [
                "LoadBalancer",
                "10.96.0.13",
                "203.0.113.9,lb.example.com",
                "80/TCP",
            ],
        ),
        (
            "load balancer with ingress and external IPs",
            service(
                json!({"type": "LoadBalancer", "externalIPs": ["1.1.1.1"]}),
                json!({"loadBalancer": {"ingress": [{"ip": "2.2.2.2"}]}}),
            ),
            ["LoadBalancer", "<none>", "2.2.2.2,1.1.1.1", "<none>"],
        ),
        (
            "external name",
            service(
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
            ),
            ["ExternalName", "<none>", "db.example.com", "<none>"],
        ),
    ];
    for (what, svc, want) in cases {
        let c = cells("", "Service", &svc);
        assert_eq!(c[1..5], want.map(|w| json!(w)), "{what}");
        assert_eq!(c[5], json!("42s"), "{what}");
    }
    let selected = service(
        json!({"type": "ClusterIP", "selector": {"tier": "front", "app": "web"}}),
        json!({}),
    );
    assert_eq!(
        cells("", "Service", &selected)[6],
        json!("app=web,tier=front")
    );
    assert_eq!(
        cells("", "Service", &service(json!({}), json!({})))[6],
        json!("<none>")
    );
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
        {"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 80}]}]});
    assert_eq!(
        cells("", "Endpoints", &ep)[1],
        json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...")
    );
    let v6 = json!({"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells("", "Endpoints", &v6)[1], json!("[fd00::3]:80"));
    let headless =
        json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "10.0.0.5"}]}]});
    assert_eq!(cells("", "Endpoints", &headless)[1], json!("10.0.0.5"));
    assert_eq!(
        cells("", "Endpoints", &json!({"metadata": {"name": "e"}}))[1],
        json!("<none>")
    );

    let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}]});
    assert_eq!(
        cells("discovery.k8s.io", "EndpointSlice", &slice)[1..4],
        [
            json!("IPv4"),
            json!("80,metrics,* + 1 more..."),
            json!("10.0.0.1,10.0.0.2,10.0.0.3")
        ]
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
    assert_eq!(
        cells("discovery.k8s.io", "EndpointSlice", &empty)[2..4],
        [json!("<unset>"), json!("<unset>")]
    );
}

#[test]
fn config_secret_account_namespace() {
    let cm = json!({"metadata": {"name": "cm", "creationTimestamp": ago(5)},
        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("", "ConfigMap", &cm),
        [json!("cm"), json!(3), json!("5s")]
    );
    assert_eq!(headers("", "ConfigMap")[1], ("Data".to_owned(), 0));
    let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("", "Secret", &secret)[1..3],
        [json!("kubernetes.io/tls"), json!(2)]
    );
    let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
    assert_eq!(cells("", "ServiceAccount", &sa)[1], json!(1));
    let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
    assert_eq!(cells("", "Namespace", &ns)[1], json!("Active"));
}

#[test]
fn events_of_both_apis() {
    let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{main}"},
        "reason": "BackOff", "type": "Warning", "message": "  Back-off restarting  \n",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 12});
    assert_eq!(
        cells("", "Event", &core),
        [
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-0"),
            json!("spec.containers{main}"),
            json!("kubelet, n1"),
            json!("Back-off restarting"),
            json!("10m"),
            json!(12),
            json!("web.1"),
        ]
    );
    let new_api = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
        "regarding": {"kind": "Node", "name": "n1"}, "reason": "Starting", "type": "Normal",
        "note": "started", "reportingController": "rudder", "reportingInstance": "n1",
        "eventTime": ago(120), "series": {"count": 4, "lastObservedTime": ago(61)}});
    let c = cells("events.k8s.io", "Event", &new_api);
    assert_eq!(c[0], json!("61s"));
    assert_eq!(c[3], json!("node/n1"));
    assert_eq!(
        c[5..9],
        [json!("rudder, n1"), json!("started"), json!("2m"), json!(4)]
    );
    let singleton = json!({"metadata": {"name": "e3"}, "involvedObject": {"kind": "Namespace"},
        "eventTime": ago(10)});
    let c = cells("", "Event", &singleton);
    assert_eq!(
        (c[0].clone(), c[3].clone(), c[8].clone()),
        (json!("10s"), json!("namespace"), json!(1))
    );
    let event_headers: Vec<String> = headers("", "Event")
        .into_iter()
        .filter(|(_, p)| *p == 0)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        event_headers,
        ["Last Seen", "Type", "Reason", "Object", "Message"]
    );
}

#[test]
fn volumes_and_quotas() {
    let pv = json!({"metadata": {"name": "pv1", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                 "claimRef": {"namespace": "ns", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}});
    let c = cells("", "PersistentVolume", &pv);
    assert_eq!(
        c[1..9],
        [
            "10Gi", "RWO,RWX", "Retain", "Bound", "ns/data", "old", "<unset>", ""
        ]
        .map(|s| json!(s))
    );
    assert_eq!(c[10], json!("Filesystem"));

    let pending = json!({"metadata": {"name": "data"}, "spec": {"storageClassName": "fast",
        "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells("", "PersistentVolumeClaim", &pending)[1..7],
        ["Pending", "", "", "", "fast", "<unset>"].map(|s| json!(s))
    );
    let bound = json!({"metadata": {"name": "data", "deletionTimestamp": ago(1)},
        "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
        "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        cells("", "PersistentVolumeClaim", &bound)[1..5],
        ["Terminating", "pv1", "10Gi", "RWO"].map(|s| json!(s))
    );

    let quota = json!({"metadata": {"name": "q"}, "status": {
        "hard": {"pods": "10", "limits.cpu": "4", "requests.memory": "1Gi", "limits.memory": "2Gi"},
        "used": {"pods": "3", "limits.cpu": "500m", "requests.memory": "256Mi"}}});
    assert_eq!(
        cells("", "ResourceQuota", &quota)[1..3],
        [
            json!("pods: 3/10, requests.memory: 256Mi/1Gi"),
            json!("limits.cpu: 500m/4, limits.memory: 0/2Gi")
        ]
    );
}

#[test]
fn rbac_networking_and_cluster_kinds() {
    let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                     {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                     {"kind": "User", "name": "bob"}]});
    let c = cells("rbac.authorization.k8s.io", "RoleBinding", &rb);
    assert_eq!(c[1], json!("ClusterRole/view"));
    assert_eq!(
        c[3..],
        [json!("alice, bob"), json!("devs"), json!("build/ci")]
    );
    assert_eq!(
        headers("rbac.authorization.k8s.io", "ClusterRoleBinding")[3],
        ("Users".to_owned(), 1)
    );

    let ing = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx",
        "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}],
        "tls": [{"hosts": ["a.example"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.1.1.1"}]}}});
    assert_eq!(
        cells("networking.k8s.io", "Ingress", &ing)[1..5],
        [
            "nginx",
            "a.example,b.example,c.example + 2 more...",
            "10.1.1.1",
            "80, 443"
        ]
        .map(|s| json!(s))
    );
    let bare_ing = json!({"metadata": {"name": "i"}, "spec": {}});
    assert_eq!(
        cells("networking.k8s.io", "Ingress", &bare_ing)[1..5],
        ["<none>", "*", "", "80"].map(|s| json!(s))
    );
    let np = json!({"metadata": {"name": "deny"}, "spec": {}});
    assert_eq!(
        cells("networking.k8s.io", "NetworkPolicy", &np)[1],
        json!("<none>")
    );
    let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("policy", "PodDisruptionBudget", &pdb)[1..4],
        [json!("50%"), json!("N/A"), json!(1)]
    );
    let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "node-a"}});
    assert_eq!(
        cells("coordination.k8s.io", "Lease", &lease)[1],
        json!("node-a")
    );
    let pc = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": true, "preemptionPolicy": "Never"});
    let c = cells("scheduling.k8s.io", "PriorityClass", &pc);
    assert_eq!(
        (c[1].clone(), c[2].clone(), c[4].clone()),
        (json!(1000), json!(true), json!("Never"))
    );
    let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rudder.io/local"});
    assert_eq!(
        cells("storage.k8s.io", "StorageClass", &sc)[..5],
        [
            json!("standard (default)"),
            json!("rudder.io/local"),
            json!("Delete"),
            json!("Immediate"),
            json!(false)
        ]
    );
    let driver = json!({"metadata": {"name": "d"}, "spec": {"tokenRequests": [{"audience": "a"}, {"audience": "b"}]}});
    assert_eq!(
        cells("storage.k8s.io", "CSIDriver", &driver)[1..7],
        [
            json!(true),
            json!(false),
            json!(false),
            json!("a,b"),
            json!(false),
            json!("<none>")
        ]
    );
    let va = json!({"metadata": {"name": "va"}, "spec": {"attacher": "csi.x", "nodeName": "n1",
        "source": {"persistentVolumeName": "pv1"}}, "status": {"attached": true}});
    assert_eq!(
        cells("storage.k8s.io", "VolumeAttachment", &va)[1..5],
        [json!("csi.x"), json!("pv1"), json!("n1"), json!(true)]
    );
    let csinode = json!({"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": "a"}]}});
    assert_eq!(cells("storage.k8s.io", "CSINode", &csinode)[1], json!(1));
    let csr = json!({"metadata": {"name": "c"}, "spec": {"username": "u", "signerName": "kubernetes.io/kubelet-serving",
        "expirationSeconds": 86_400}, "status": {"conditions": [{"type": "Approved"}], "certificate": "AAA="}});
    assert_eq!(
        cells("certificates.k8s.io", "CertificateSigningRequest", &csr)[2..6],
        [
            json!("kubernetes.io/kubelet-serving"),
            json!("u"),
            json!("24h"),
            json!("Approved,Issued")
        ]
    );
}

#[test]
fn kinds_without_a_printer() {
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2026-05-01T10:00:00Z"}});
    for (group, kind) in [
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("", "LimitRange"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ] {
        let printer = Printer::for_kind(group, kind);
        assert_eq!(printer, Printer::CreatedAt, "{kind}");
        let cols = printer.columns();
        assert_eq!(
            (cols[1].name.as_str(), cols[1].type_name.as_str()),
            ("Created At", "date")
        );
        assert_eq!(
            cells(group, kind, &role),
            [json!("reader"), json!("2026-05-01T10:00:00Z")]
        );
    }
    let unknown = Printer::for_kind("example.com", "Gadget");
    assert_eq!(unknown, Printer::NameAge);
    assert_eq!(
        cells(
            "example.com",
            "Gadget",
            &json!({"metadata": {"name": "g", "creationTimestamp": ago(90)}})
        ),
        [json!("g"), json!("90s")]
    );
}
