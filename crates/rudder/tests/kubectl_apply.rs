//! End to end: server-side apply through kubectl — field managers, conflicts, forcing, pruning
//! of fields a manager stops applying, and `managedFields` as kubectl shows them.

mod common;

use common::{KUBECTLS, Server, json};

fn deployment(replicas: u32, sidecar: bool) -> String {
    let side = if sidecar {
        "\n      - name: sidecar\n        image: busybox:1.36"
    } else {
        ""
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36{side}
"#
    )
}

#[test]
fn server_side_apply_conflicts_force_and_prune() {
    let s = Server::start();
    for k in [KUBECTLS[0], KUBECTLS[KUBECTLS.len() - 1]] {
        let ns = format!("ssa-{}", k.rsplit('.').next().unwrap_or("x"));
        s.ok_kubectl(k, &["create", "namespace", &ns]);
        let apply = |manifest: &str, extra: &[&str]| {
            let mut args = vec!["apply", "--server-side", "-n", ns.as_str(), "-f", "-"];
            args.extend(extra);
            s.kubectl_in(k, &args, manifest)
        };
        let out = apply(&deployment(2, true), &[]);
        assert!(out.contains("serverside-applied"), "{k}: {out}");

        // Another manager changes replicas.
        s.ok_kubectl(
            k,
            &[
                "patch",
                "deploy",
                "web",
                "-n",
                &ns,
                "--type=merge",
                "-p",
                r#"{"spec":{"replicas":4}}"#,
            ],
        );
        let err = s.fail_kubectl(
            k,
            &["apply", "--server-side", "-n", &ns, "-f", "-"],
            Some(&deployment(3, true)),
        );
        assert!(
            err.contains("conflict")
                && err.contains("kubectl-patch")
                && err.contains(".spec.replicas"),
            "{k}: {err}"
        );
        let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-n", &ns, "-o", "json"]));
        assert_eq!(
            d["spec"]["replicas"], 4,
            "a conflicting apply writes nothing"
        );

        // Forcing takes the field over.
        apply(&deployment(3, true), &["--force-conflicts"]);
        let d = json(&s.ok_kubectl(
            k,
            &[
                "get",
                "deploy",
                "web",
                "-n",
                &ns,
                "-o",
                "json",
                "--show-managed-fields",
            ],
        ));
        assert_eq!(d["spec"]["replicas"], 3, "{k}");
        let managers: Vec<(String, String)> = d["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap_or("").into(),
                    e["operation"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        assert!(
            managers.contains(&("kubectl".into(), "Apply".into())),
            "{k}: {managers:?}"
        );
        let patcher = d["metadata"]["managedFields"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["manager"] == "kubectl-patch"))
            .cloned();
        assert!(
            patcher.is_none_or(|p| p["fieldsV1"]["f:spec"].get("f:replicas").is_none()),
            "{k}: forced field moved"
        );

        // Dropping the sidecar from the configuration removes it.
        apply(&deployment(3, false), &[]);
        let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-n", &ns, "-o", "json"]));
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["main"], "{k}");
        // kubectl hides managedFields unless asked.
        let plain = s.ok_kubectl(k, &["get", "deploy", "web", "-n", &ns, "-o", "yaml"]);
        assert!(!plain.contains("managedFields"), "{k}");
    }
}
