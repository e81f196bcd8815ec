//! Table tests of the pod resolv.conf and hosts file against the kubelet's rules.

use super::*;
use serde_json::{Value, json};

fn pod(spec: Value) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec}),
    )
    .expect("pod")
}

fn cluster() -> ClusterDns {
    ClusterDns {
        nameservers: vec!["10.43.0.10".into()],
        domain: "cluster.local".into(),
    }
}

const HOST: &str = "# generated\nnameserver 192.168.1.1\nnameserver 192.168.1.2 ; second\n\
                    search corp.example. lab.example\noptions edns0 ndots:1\n";

#[test]
fn parse_host_file() {
    let host = ResolvConf::parse(HOST);
    assert_eq!(host.nameservers, ["192.168.1.1", "192.168.1.2"]);
    assert_eq!(host.searches, ["corp.example", "lab.example"]);
    assert_eq!(host.options, ["edns0", "ndots:1"]);
    // The last search/domain line wins.
    let two = ResolvConf::parse("domain a.example\nsearch b.example\n");
    assert_eq!(two.searches, ["b.example"]);
    assert_eq!(ResolvConf::parse(""), ResolvConf::default());
}

#[test]
fn policies() {
    let host = ResolvConf::parse(HOST);
    let cluster_first = "nameserver 10.43.0.10\n\
        search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
        options ndots:5\n";
    let host_conf = "nameserver 192.168.1.1\nnameserver 192.168.1.2\n\
        search corp.example lab.example\noptions edns0 ndots:1\n";
    let cases: Vec<(&str, Value, Option<ClusterDns>, &str)> = vec![
        ("default policy", json!({}), Some(cluster()), cluster_first),
        (
            "ClusterFirst",
            json!({"dnsPolicy": "ClusterFirst"}),
            Some(cluster()),
            cluster_first,
        ),
        (
            "ClusterFirst on the host network uses the node's",
            json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}),
            Some(cluster()),
            host_conf,
        ),
        (
            "ClusterFirstWithHostNet",
            json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}),
            Some(cluster()),
            cluster_first,
        ),
        (
            "Default",
            json!({"dnsPolicy": "Default"}),
            Some(cluster()),
            host_conf,
        ),
        (
            "ClusterFirst without cluster DNS falls back",
            json!({}),
            None,
            host_conf,
        ),
        (
            "ClusterFirst with an empty cluster DNS falls back",
            json!({}),
            Some(ClusterDns {
                nameservers: vec![],
                domain: "cluster.local".into(),
            }),
            host_conf,
        ),
        (
            "None without dnsConfig is empty",
            json!({"dnsPolicy": "None"}),
            Some(cluster()),
            "",
        ),
        (
            "None with dnsConfig",
            json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.1.1.1"], "searches": ["a.example."],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
            Some(cluster()),
            "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 edns0\n",
        ),
        (
            "dnsConfig merged into ClusterFirst: duplicates dropped, options overridden",
            json!({"dnsConfig": {
                "nameservers": ["10.43.0.10", "1.1.1.1"],
                "searches": ["svc.cluster.local", "extra.example"],
                "options": [{"name": "ndots", "value": "3"}, {"name": "single-request"}]}}),
            Some(cluster()),
            "nameserver 10.43.0.10\nnameserver 1.1.1.1\n\
             search shop.svc.cluster.local svc.cluster.local cluster.local corp.example \
             lab.example extra.example\noptions ndots:3 single-request\n",
        ),
    ];
    for (what, spec, cluster, want) in cases {
        let (got, cut) = resolv_conf(&pod(spec), cluster.as_ref(), &host);
        assert_eq!(got, want, "{what}");
        assert!(!cut, "{what}");
    }
}

#[test]
fn limits() {
    let host = ResolvConf::default();
    // Four nameservers: the fourth is dropped.
    let spec = json!({"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]}});
    let (got, cut) = resolv_conf(&pod(spec), None, &host);
    assert!(cut);
    assert_eq!(got.lines().count(), 3, "{got}");
    assert!(!got.contains("1.1.1.4"));
    // 40 search domains: 32 kept, and the line stays within 2048 characters.
    let searches: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
    let spec = json!({"dnsPolicy": "None", "dnsConfig": {"searches": searches}});
    let (got, cut) = resolv_conf(&pod(spec), None, &host);
    assert!(cut);
    let line = got.lines().next().expect("search line");
    assert_eq!(line.split_whitespace().count(), 1 + MAX_SEARCHES);
    // Long domains: cut by length before the count limit.
    let long: Vec<String> = (0..20).map(|i| format!("{i}{}", "x".repeat(200))).collect();
    let spec = json!({"dnsPolicy": "None", "dnsConfig": {"searches": long}});
    let (got, cut) = resolv_conf(&pod(spec), None, &host);
    assert!(cut);
    let line = got.trim_end().trim_start_matches("search ");
    assert!(line.len() <= MAX_SEARCH_CHARS, "{}", line.len());
    assert_eq!(line.split(' ').count(), 10);
}

#[test]
fn hosts() {
    let base = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
        fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";
    let cases: Vec<(Value, &str, String)> = vec![
        (json!({}), "10.42.0.7", format!("{base}10.42.0.7\tweb-0\n")),
        (json!({}), "", base.to_owned()),
        (
            json!({"hostname": "db-1", "subdomain": "db"}),
            "10.42.0.7",
            format!("{base}10.42.0.7\tdb-1.db.shop.svc.cluster.local\tdb-1\n"),
        ),
        (
            json!({"hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}),
            "10.42.0.7",
            format!(
                "{base}10.42.0.7\tweb-0\n\n# Entries added by HostAliases.\n\
                 10.1.2.3\tfoo.local\tbar.local\n"
            ),
        ),
    ];
    for (spec, ip, want) in cases {
        assert_eq!(
            hosts_file(&pod(spec.clone()), ip, "cluster.local"),
            want,
            "{spec}"
        );
    }
}
