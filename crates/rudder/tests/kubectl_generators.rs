//! End to end: kubectl's object generators (`kubectl create configmap`, `create deployment`, ...)
//! which kubectl 1.32 and later send as protobuf, older ones as JSON.

mod common;

use common::{KUBECTLS, Server, json};

#[test]
fn create_generators_work_with_every_kubectl() {
    let s = Server::start();
    for (i, k) in KUBECTLS.iter().enumerate() {
        let ns = format!("gen-{i}");
        s.ok_kubectl(k, &["create", "namespace", &ns]);
        let run = |args: &[&str]| {
            // Namespace first: anything after `--` belongs to the container command.
            let mut all = vec!["-n", ns.as_str()];
            all.extend(args);
            s.ok_kubectl(k, &all)
        };
        run(&[
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
            "--from-literal=n=1",
        ]);
        run(&[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=hunter2",
        ]);
        run(&[
            "create",
            "deployment",
            "web",
            "--image=busybox:1.36",
            "--replicas=0",
            "--port=8080",
        ]);
        run(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
        run(&[
            "create",
            "job",
            "once",
            "--image=busybox:1.36",
            "--",
            "sh",
            "-c",
            "echo hi",
        ]);
        run(&[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ]);

        let cm = json(&run(&["get", "cm", "cm", "-o", "json"]));
        assert_eq!(cm["data"], serde_json::json!({"a": "b", "n": "1"}), "{k}");
        assert!(
            cm["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{k}: {cm}"
        );
        assert!(
            cm["metadata"]["creationTimestamp"]
                .as_str()
                .is_some_and(|t| !t.starts_with("1970")),
            "{k}: {cm}"
        );

        let secret = json(&run(&["get", "secret", "pw", "-o", "json"]));
        assert_eq!(secret["data"]["password"], "aHVudGVyMg==", "{k}");
        assert_eq!(secret["type"], "Opaque", "{k}");

        let d = json(&run(&["get", "deploy", "web", "-o", "json"]));
        // An explicit zero survives; defaults fill in the rest.
        assert_eq!(d["spec"]["replicas"], 0, "{k}: {d}");
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "{k}");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            8080
        );

        let svc = json(&run(&["get", "svc", "np", "-o", "json"]));
        assert_eq!(svc["spec"]["type"], "NodePort", "{k}");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "{k}");

        let job = json(&run(&["get", "job", "once", "-o", "json"]));
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["command"],
            serde_json::json!(["sh", "-c", "echo hi"])
        );

        let role = json(&run(&["get", "role", "reader", "-o", "json"]));
        assert_eq!(
            role["rules"][0]["verbs"],
            serde_json::json!(["get", "list"]),
            "{k}"
        );
    }
}
