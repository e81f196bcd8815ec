//! Service addresses and node ports: allocated by the API server, checked for range and
//! conflicts with `Invalid` errors, kept across updates and released on deletion.

mod common;

use common::{KUBECTLS, Server, json};

fn service(name: &str, spec: serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

#[test]
fn cluster_ips_and_node_ports() {
    let s = Server::start_with(&["--service-cluster-ip-range", "10.43.0.0/16"]);
    for (i, k) in KUBECTLS.iter().enumerate() {
        let ns = format!("svc{i}");
        s.namespace(k, &ns);
        let get =
            |name: &str| json(&s.ok_kubectl(k, &["get", "svc", name, "-n", &ns, "-o", "json"]));

        // An address from the range, in clusterIP and clusterIPs.
        s.ok_kubectl(
            k,
            &[
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
                "-n",
                &ns,
            ],
        );
        let web = get("web");
        let ip = web["spec"]["clusterIP"]
            .as_str()
            .expect("an address")
            .to_owned();
        assert!(ip.starts_with("10.43."), "{ip}");
        assert_eq!(web["spec"]["clusterIPs"][0], ip.as_str());
        assert!(
            s.ok_kubectl(k, &["get", "svc", "web", "-n", &ns])
                .contains(&ip)
        );

        // Asking for the same address again is refused; an address outside the range too.
        let taken = s.fail_kubectl(
            k,
            &["create", "-n", &ns, "-f", "-"],
            Some(&service(
                "copy",
                serde_json::json!({"clusterIP": ip, "ports": [{"port": 80}]}),
            )),
        );
        assert!(
            taken.contains("provided IP is already allocated"),
            "{taken}"
        );
        let outside = s.fail_kubectl(
            k,
            &["create", "-n", &ns, "-f", "-"],
            Some(&service(
                "far",
                serde_json::json!({"clusterIP": "192.168.9.9", "ports": [{"port": 80}]}),
            )),
        );
        assert!(
            outside.contains("The range of valid IPs is 10.43.0.0/16"),
            "{outside}"
        );

        // The address cannot change; an update without it keeps it.
        let changed = s.fail_kubectl(
            k,
            &[
                "patch",
                "svc",
                "web",
                "-n",
                &ns,
                "--type=merge",
                "-p",
                r#"{"spec":{"clusterIP":"10.43.200.200","clusterIPs":["10.43.200.200"]}}"#,
            ],
            None,
        );
        assert!(changed.contains("may not change once set"), "{changed}");
        s.ok_kubectl(k, &["label", "svc", "web", "-n", &ns, "tier=front"]);
        assert_eq!(get("web")["spec"]["clusterIP"], ip.as_str());

        // Headless Services get none.
        s.ok_kubectl(
            k,
            &[
                "create",
                "service",
                "clusterip",
                "db",
                "--clusterip=None",
                "-n",
                &ns,
            ],
        );
        assert_eq!(get("db")["spec"]["clusterIP"], "None");

        // Node ports: allocated in range, a taken one refused.
        s.ok_kubectl(
            k,
            &[
                "create",
                "service",
                "nodeport",
                "np",
                "--tcp=80:8080",
                "-n",
                &ns,
            ],
        );
        let port = get("np")["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .expect("a node port");
        assert!((30000..=32767).contains(&port), "{port}");
        let dup = s.fail_kubectl(
            k,
            &["create", "-n", &ns, "-f", "-"],
            Some(&service(
                "np2",
                serde_json::json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
            )),
        );
        assert!(dup.contains("provided port is already allocated"), "{dup}");

        // Deleting gives both back: they can be asked for by name again.
        s.ok_kubectl(k, &["delete", "svc", "web", "np", "-n", &ns]);
        s.create(
            k,
            Some(&ns),
            &service(
                "again",
                serde_json::json!({"type": "NodePort", "clusterIP": ip, "ports": [{"port": 80, "nodePort": port}]}),
            ),
        );
        let again = get("again");
        assert_eq!(again["spec"]["clusterIP"], ip.as_str());
        assert_eq!(again["spec"]["ports"][0]["nodePort"], port);
        s.ok_kubectl(k, &["delete", "svc", "again", "db", "-n", &ns]);
    }
}
