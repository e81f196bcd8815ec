//! End to end: the real `rudder server` driven by real kubectl (1.27, 1.32, 1.33).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{KUBECTLS, Server, json};

#[test]
fn discovery_version_and_api_resources() {
    let s = Server::start();
    for k in KUBECTLS {
        let resources = s.ok_kubectl(k, &["api-resources"]);
        for want in [
            "pods",
            "deployments",
            "customresourcedefinitions",
            "leases",
            "endpointslices",
            "horizontalpodautoscalers",
        ] {
            assert!(
                resources.contains(want),
                "{k}: api-resources lacks {want}:\n{resources}"
            );
        }
        let version = json(&s.ok_kubectl(k, &["version", "-o", "json"]));
        assert_eq!(version["serverVersion"]["major"], "1", "{k}");
        let namespaced = s.ok_kubectl(k, &["api-resources", "--namespaced=false", "-o", "name"]);
        assert!(
            namespaced.lines().any(|l| l == "nodes") && !namespaced.lines().any(|l| l == "pods"),
            "{namespaced}"
        );
    }
    let api = s.get_json("/api");
    assert_eq!(api["versions"][0], "v1");
    let groups = s.get_json("/apis");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for g in [
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "coordination.k8s.io",
    ] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    let namespaces = s.ok_kubectl("/usr/bin/kubectl", &["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
}

const CONFIGMAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web, tier: front}
data:
  color: blue
"#;

#[test]
fn create_get_list_describe_delete_with_every_kubectl() {
    let s = Server::start();
    for (i, k) in KUBECTLS.iter().enumerate() {
        let ns = format!("crud-{i}");
        s.namespace(k, &ns);
        s.create(k, Some(&ns), CONFIGMAP);
        s.configmap(k, &ns, "other", "a", "b");
        let cm = json(&s.ok_kubectl(
            k,
            &["get", "configmap", "settings", "-n", &ns, "-o", "json"],
        ));
        assert_eq!(cm["data"]["color"], "blue", "{k}");
        assert!(
            cm["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| u.len() == 36)
        );
        assert!(
            cm["metadata"]["resourceVersion"]
                .as_str()
                .is_some_and(|r| r.parse::<u64>().is_ok())
        );
        let table = s.ok_kubectl(k, &["get", "configmaps", "-n", &ns]);
        assert!(
            table.contains("settings") && table.contains("other") && table.contains("DATA"),
            "{k}: {table}"
        );
        let by_label = s.ok_kubectl(
            k,
            &[
                "get",
                "cm",
                "-n",
                &ns,
                "-l",
                "app=web,tier in (front,back)",
                "-o",
                "name",
            ],
        );
        assert_eq!(by_label.trim(), "configmap/settings", "{k}");
        let by_field = s.ok_kubectl(
            k,
            &[
                "get",
                "cm",
                "-n",
                &ns,
                "--field-selector",
                "metadata.name=other",
                "-o",
                "name",
            ],
        );
        assert_eq!(by_field.trim(), "configmap/other", "{k}");
        let all_ns = s.ok_kubectl(k, &["get", "cm", "-A", "-l", "app=web", "-o", "name"]);
        assert!(all_ns.lines().count() >= 1, "{all_ns}");
        let described = s.ok_kubectl(k, &["describe", "configmap", "settings", "-n", &ns]);
        assert!(
            described.contains("color") && described.contains("blue"),
            "{k}: {described}"
        );
        let deleted = s.ok_kubectl(k, &["delete", "configmap", "settings", "-n", &ns]);
        assert!(deleted.contains("deleted"), "{deleted}");
        let err = s.fail_kubectl(k, &["get", "configmap", "settings", "-n", &ns], None);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "{k}: {err}"
        );
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        env:
        - {name: A, value: "1"}
      - name: sidecar
        image: busybox:1.36
"#;

#[test]
fn apply_twice_client_side_and_server_side() {
    let s = Server::start();
    for k in [KUBECTLS[0], KUBECTLS[2]] {
        let ns = if k.ends_with("1.27") {
            "apply-old"
        } else {
            "apply-new"
        };
        s.namespace(k, ns);
        let out = s.kubectl_in(k, &["apply", "-n", ns, "-f", "-"], DEPLOYMENT);
        assert!(out.contains("created"), "{out}");
        let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3").replace(
            "image: busybox:1.36\n        env",
            "image: busybox:1.37\n        env",
        );
        let out = s.kubectl_in(k, &["apply", "-n", ns, "-f", "-"], &changed);
        assert!(out.contains("configured"), "{out}");
        let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-n", ns, "-o", "json"]));
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox:1.37"
        );
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][1]["name"],
            "sidecar"
        );
        assert_eq!(d["metadata"]["generation"], 2);
        // Defaults filled in by the server.
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        let out = s.kubectl_in(k, &["apply", "-n", ns, "-f", "-"], &changed);
        assert!(out.contains("unchanged"), "{out}");

        let ssa_ns = format!("{ns}-ssa");
        s.namespace(k, &ssa_ns);
        s.kubectl_in(
            k,
            &["apply", "--server-side", "-n", &ssa_ns, "-f", "-"],
            DEPLOYMENT,
        );
        s.kubectl_in(
            k,
            &["apply", "--server-side", "-n", &ssa_ns, "-f", "-"],
            &changed,
        );
        let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-n", &ssa_ns, "-o", "json"]));
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox:1.37"
        );
    }
}

#[test]
fn patch_of_each_type() {
    let s = Server::start();
    let k = "/usr/bin/kubectl";
    s.kubectl_in(k, &["apply", "-f", "-"], DEPLOYMENT);
    // Strategic merge: containers merge by name, the sidecar stays.
    s.ok_kubectl(k, &["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"busybox:2"}]}}}}"#]);
    let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-o", "json"]));
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .clone();
    assert_eq!(
        containers.len(),
        2,
        "strategic merge must keep the sidecar: {containers:?}"
    );
    assert_eq!(containers[0]["image"], "busybox:2");
    // Merge patch: lists are replaced.
    s.ok_kubectl(
        k,
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"patched":"merge"}},"spec":{"replicas":5}}"#,
        ],
    );
    // JSON patch.
    s.ok_kubectl(k, &["patch", "deploy", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/annotations","value":{"x":"y"}}]"#]);
    let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"]["patched"], "merge");
    assert_eq!(d["metadata"]["annotations"]["x"], "y");
    // A failing JSON patch test leaves the object untouched.
    let err = s.fail_kubectl(k, &["patch", "deploy", "web", "--type=json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":9},{"op":"replace","path":"/spec/replicas","value":1}]"#], None);
    assert!(!err.is_empty());
    let d = json(&s.ok_kubectl(k, &["get", "deploy", "web", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 4);
    // Scale subresource.
    s.ok_kubectl(k, &["scale", "deploy", "web", "--replicas=7"]);
    let scale = s.get_json("/apis/apps/v1/namespaces/default/deployments/web/scale");
    assert_eq!(scale["spec"]["replicas"], 7);
    assert_eq!(scale["kind"], "Scale");
}

#[test]
fn get_watch_sees_later_changes() {
    let s = Server::start();
    for k in [KUBECTLS[0], KUBECTLS[2]] {
        let ns = if k.ends_with("1.27") {
            "watch-old"
        } else {
            "watch-new"
        };
        s.namespace(k, ns);
        s.configmap(k, ns, "before", "a", "1");
        let mut watch = s.kubectl_stream(k, &["get", "configmaps", "-n", ns, "-w", "-o", "name"]);
        std::thread::sleep(Duration::from_millis(500));
        s.configmap(k, ns, "after", "a", "2");
        s.ok_kubectl(
            k,
            &["label", "configmap", "before", "-n", ns, "changed=yes"],
        );
        watch.until(&format!("{k}: the watch showing the changes"), |seen| {
            seen.iter().any(|l| l.contains("after"))
                && seen.iter().filter(|l| l.contains("before")).count() >= 2
        });
    }
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let s = Server::start();
    let k = "/usr/bin/kubectl";
    s.kubectl_in(k, &["create", "-f", "-"], r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","finalizers":["example.com/hold"]}}"#);
    s.ok_kubectl(k, &["delete", "configmap", "held", "--wait=false"]);
    let cm = json(&s.ok_kubectl(k, &["get", "configmap", "held", "-o", "json"]));
    assert!(cm["metadata"]["deletionTimestamp"].is_string(), "{cm}");
    s.ok_kubectl(
        k,
        &[
            "patch",
            "configmap",
            "held",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    let err = s.fail_kubectl(k, &["get", "configmap", "held"], None);
    assert!(err.contains("not found"), "{err}");
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"#;

#[test]
fn custom_resource_definitions_serve_custom_resources() {
    let s = Server::start();
    for (i, k) in [KUBECTLS[0], KUBECTLS[2]].iter().enumerate() {
        if i == 0 {
            s.kubectl_in(k, &["apply", "-f", "-"], CRD);
            s.ok_kubectl(
                k,
                &[
                    "wait",
                    "--for=condition=established",
                    "crd/widgets.example.com",
                    "--timeout=30s",
                ],
            );
        }
        if i == 0 {
            // kubectl 1.27 reads custom resources' schemas from /openapi/v2.
            let explained = s.ok_kubectl(
                k,
                &["explain", "widget.spec", "--output=plaintext-openapiv2"],
            );
            assert!(
                explained.contains("size") && explained.contains("<integer>"),
                "{k}: {explained}"
            );
        }
        let name = format!("w{i}");
        s.kubectl_in(k, &["apply", "-f", "-"], &format!("apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{size: 3}}\n"));
        let got = json(&s.ok_kubectl(k, &["get", "widgets", &name, "-o", "json"]));
        assert_eq!(got["spec"]["size"], 3, "{k}");
        let short = s.ok_kubectl(k, &["get", "wg", "-o", "name"]);
        assert!(
            short.contains(&format!("widget.example.com/{name}")),
            "{k}: {short}"
        );
        s.ok_kubectl(k, &["delete", "widget", &name]);
    }
}

#[test]
fn explain_prints_field_descriptions_from_openapi_v2_and_v3() {
    let s = Server::start();
    let cases: [(&str, &[&str]); 3] = [
        // kubectl 1.27 and 1.28 read OpenAPI v2 (gnostic protobuf) for this output format.
        (
            KUBECTLS[0],
            &[
                "explain",
                "pod.spec.containers",
                "--output=plaintext-openapiv2",
            ],
        ),
        (KUBECTLS[0], &["explain", "pod.spec.containers"]),
        (KUBECTLS[2], &["explain", "pod.spec.containers"]),
    ];
    for (k, args) in cases {
        let out = s.ok_kubectl(k, args);
        for want in [
            "KIND:",
            "Pod",
            "A single application container",
            "imagePullPolicy",
            "Container image name.",
        ] {
            assert!(out.contains(want), "{k} {args:?} lacks {want:?}:\n{out}");
        }
    }
    let swagger = s.get_json("/openapi/v2");
    assert_eq!(swagger["swagger"], "2.0");
    assert_eq!(
        swagger["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Pod"
    );
}

#[test]
fn edit_through_an_editor() {
    let s = Server::start();
    let k = "/usr/bin/kubectl";
    s.kubectl_in(k, &["create", "-f", "-"], CONFIGMAP);
    let out = Command::new(k)
        .args(["edit", "configmap", "settings"])
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.data_dir())
        .env("KUBE_EDITOR", "sed -i s/blue/green/")
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = json(&s.ok_kubectl(k, &["get", "cm", "settings", "-o", "json"]));
    assert_eq!(cm["data"]["color"], "green");
}

#[test]
fn errors_are_kubernetes_statuses() {
    let s = Server::start();
    let k = "/usr/bin/kubectl";
    s.kubectl_in(k, &["create", "-f", "-"], CONFIGMAP);
    let err = s.fail_kubectl(k, &["create", "-f", "-"], Some(CONFIGMAP));
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );
    let err = s.fail_kubectl(
        k,
        &["create", "-f", "-"],
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#),
    );
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
    let err = s.fail_kubectl(
        k,
        &["create", "-n", "no-such-ns", "-f", "-"],
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#),
    );
    assert!(err.contains("not found"), "{err}");
    let err = s.fail_kubectl(k, &["create", "-f", "-"], Some(r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x","ports":[{"containerPort":"eighty"}]}]}}"#));
    assert!(
        err.contains("BadRequest") || err.contains("cannot be handled") || err.contains("invalid"),
        "{err}"
    );
    let out = s.kubectl(
        k,
        &["get", "--raw", "/api/v1/namespaces/default/pods/missing"],
    );
    assert!(!out.status.success());
    let out = s.kubectl(
        k,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
    );
    assert!(!out.status.success());
}

#[test]
fn objects_survive_restart_and_kill_9() {
    let mut s = Server::start();
    let k = "/usr/bin/kubectl";
    for i in 0..20 {
        s.configmap(k, "default", &format!("keep-{i}"), "i", &i.to_string());
    }
    s.restart();
    let names = s.ok_kubectl(k, &["get", "cm", "-o", "name"]);
    for i in 0..20 {
        assert!(
            names.contains(&format!("configmap/keep-{i}\n")),
            "keep-{i} lost after restart: {names}"
        );
    }
    s.configmap(k, "default", "after-restart", "a", "b");
    s.kill9();
    s.restart();
    let cm = json(&s.ok_kubectl(k, &["get", "cm", "after-restart", "-o", "json"]));
    assert_eq!(cm["metadata"]["name"], "after-restart");
}
