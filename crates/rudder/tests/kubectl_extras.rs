//! End to end: the kubectl commands beyond get/apply/exec that tools and people script against a
//! cluster — `diff`, `apply --prune`, kustomize (`apply -k`), the output formats, `label`,
//! `annotate`, `api-versions`, `auth can-i`, `proxy`, `wait --for=condition=Available`,
//! `rollout status`, `taint`, `cordon`/`uncordon`, `drain` (eviction) and `debug` (ephemeral
//! containers, `--target` in the target's process namespace; `shareProcessNamespace` pods) —
//! with the oldest and the newest kubectl.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, free_port, json};

fn kubectls() -> [&'static str; 2] {
    [KUBECTLS[0], KUBECTLS[KUBECTLS.len() - 1]]
}

fn configmap(ns: &str, name: &str, app: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {app}}}\ndata:\n  k: \"{value}\"\n"
    )
}

#[test]
fn diff_prune_kustomize_labels_and_output_formats() {
    let s = Server::start();
    let work = s.dir.path().join("manifests");
    for (i, k) in kubectls().into_iter().enumerate() {
        let ns = format!("extras-{i}");
        let app = format!("prune-{i}");
        s.namespace(k, &ns);
        let dir = work.join(format!("k{i}"));
        std::fs::create_dir_all(&dir).expect("manifest dir");
        let both = dir.join("both.yaml");
        std::fs::write(
            &both,
            format!(
                "{}---\n{}",
                configmap(&ns, "a", &app, "1"),
                configmap(&ns, "b", &app, "1")
            ),
        )
        .expect("write");
        let both_arg = both.to_str().expect("utf-8 path");
        s.ok_kubectl(k, &["apply", "-f", both_arg]);

        // diff: exit 0 when the live objects match, 1 with a unified diff when not.
        let same = s.kubectl(k, &["diff", "-f", both_arg]);
        assert_eq!(same.status.code(), Some(0), "{same:?}");
        let changed = dir.join("changed.yaml");
        std::fs::write(&changed, configmap(&ns, "a", &app, "2")).expect("write");
        let out = s.kubectl(k, &["diff", "-f", changed.to_str().expect("utf-8")]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            text.contains("-  k: \"1\"") && text.contains("+  k: \"2\""),
            "{text}"
        );
        // diff changed nothing.
        let live = json(&s.ok_kubectl(k, &["get", "cm", "a", "-n", &ns, "-o", "json"]));
        assert_eq!(live["data"]["k"], "1");

        // apply --prune (of the changed manifest): what the selector matches but the manifests no longer hold goes.
        let out = s.ok_kubectl(
            k,
            &[
                "apply",
                "--prune",
                "-l",
                &format!("app={app}"),
                "-f",
                changed.to_str().expect("utf-8"),
            ],
        );
        assert!(out.contains("configmap/b pruned"), "{out}");
        let names = s.ok_kubectl(
            k,
            &[
                "get",
                "cm",
                "-n",
                &ns,
                "-l",
                &format!("app={app}"),
                "-o",
                "name",
            ],
        );
        assert_eq!(names.trim(), "configmap/a");

        // kustomize: generators (hashed names), prefixes, namespace and common labels.
        let kdir = dir.join("kustomize");
        std::fs::create_dir_all(&kdir).expect("kustomize dir");
        std::fs::write(
            kdir.join("kustomization.yaml"),
            format!(
                "namespace: {ns}\nnamePrefix: kz-\ncommonLabels:\n  via: kustomize\nresources:\n- service.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - mode=fast\n"
            ),
        )
        .expect("write");
        std::fs::write(
            kdir.join("service.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n",
        )
        .expect("write");
        s.ok_kubectl(k, &["apply", "-k", kdir.to_str().expect("utf-8")]);
        let cms = json(&s.ok_kubectl(
            k,
            &["get", "cm", "-n", &ns, "-l", "via=kustomize", "-o", "json"],
        ));
        let cm = &cms["items"][0];
        let name = cm["metadata"]["name"]
            .as_str()
            .expect("a generated ConfigMap");
        assert!(
            name.starts_with("kz-settings-") && name.len() > "kz-settings-".len(),
            "{name}"
        );
        assert_eq!(cm["data"]["mode"], "fast");
        let svc = json(&s.ok_kubectl(k, &["get", "svc", "kz-web", "-n", &ns, "-o", "json"]));
        assert_eq!(svc["spec"]["selector"]["via"], "kustomize", "{svc}");

        // label and annotate: set, refuse to overwrite without --overwrite, overwrite, remove.
        s.ok_kubectl(k, &["label", "cm", "a", "-n", &ns, "tier=x"]);
        s.fail_kubectl(k, &["label", "cm", "a", "-n", &ns, "tier=y"], None);
        s.ok_kubectl(k, &["label", "cm", "a", "-n", &ns, "tier=y", "--overwrite"]);
        s.ok_kubectl(k, &["annotate", "cm", "a", "-n", &ns, "note=hello world"]);
        let a = json(&s.ok_kubectl(k, &["get", "cm", "a", "-n", &ns, "-o", "json"]));
        assert_eq!(a["metadata"]["labels"]["tier"], "y");
        assert_eq!(a["metadata"]["annotations"]["note"], "hello world");
        s.ok_kubectl(k, &["label", "cm", "a", "-n", &ns, "tier-"]);
        s.ok_kubectl(k, &["annotate", "cm", "a", "-n", &ns, "note-"]);
        let a = json(&s.ok_kubectl(k, &["get", "cm", "a", "-n", &ns, "-o", "json"]));
        assert!(a["metadata"]["labels"].get("tier").is_none(), "{a}");
        assert!(a["metadata"]["annotations"].get("note").is_none(), "{a}");

        // Output formats.
        let get = |fmt: &str| s.ok_kubectl(k, &["get", "cm", "a", "-n", &ns, "-o", fmt]);
        assert_eq!(json(&get("json"))["data"]["k"], "2");
        let yaml = get("yaml");
        assert!(
            yaml.contains("kind: ConfigMap") && yaml.contains("  k: \"2\""),
            "{yaml}"
        );
        assert_eq!(get("jsonpath={.metadata.name}={.data.k}"), "a=2");
        assert_eq!(get("name").trim(), "configmap/a");
        let columns =
            get("custom-columns=NAME:.metadata.name,VALUE:.data.k,APP:.metadata.labels.app");
        let rows: Vec<Vec<&str>> = columns
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            vec![vec!["NAME", "VALUE", "APP"], vec!["a", "2", app.as_str()]],
            "{columns}"
        );
        let list = s.ok_kubectl(
            k,
            &[
                "get",
                "cm",
                "-n",
                &ns,
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
            ],
        );
        assert!(
            list.lines().any(|l| l == "a") && list.lines().any(|l| l.starts_with("kz-settings-")),
            "{list}"
        );

        // Discovery and access review.
        let versions = s.ok_kubectl(k, &["api-versions"]);
        for v in [
            "v1",
            "apps/v1",
            "batch/v1",
            "apiextensions.k8s.io/v1",
            "rbac.authorization.k8s.io/v1",
        ] {
            assert!(
                versions.lines().any(|l| l == v),
                "{v} missing from:\n{versions}"
            );
        }
        assert_eq!(
            s.ok_kubectl(k, &["auth", "can-i", "create", "deployments", "-n", &ns])
                .trim(),
            "yes"
        );
        let no = s.kubectl(
            k,
            &[
                "auth",
                "can-i",
                "get",
                "secrets",
                "-n",
                &ns,
                "--as",
                "system:serviceaccount:default:nobody",
            ],
        );
        assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no", "{no:?}");
    }
}

/// A `kubectl proxy`, killed by PID when dropped (also when the test fails).
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

#[test]
fn proxy_serves_the_api_on_a_local_port() {
    let s = Server::start();
    for k in kubectls() {
        let port = free_port();
        let child = Command::new(k)
            .args([
                "proxy",
                "--port",
                &port.to_string(),
                "--address",
                "127.0.0.1",
            ])
            .env("KUBECONFIG", s.kubeconfig())
            .env("HOME", s.data_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl proxy");
        let _proxy = Proxy(child);
        let (code, body) = wait_for("kubectl proxy to answer", 20, || http_get(port, "/version"));
        assert_eq!(code, 200, "{body}");
        assert_eq!(json(&body)["major"], "1");
        let (code, body) = http_get(port, "/api/v1/namespaces/default").expect("GET a namespace");
        assert_eq!(code, 200, "{body}");
        assert_eq!(json(&body)["metadata"]["name"], "default");
        let (code, body) =
            http_get(port, "/api/v1/namespaces/default/configmaps/nope").expect("GET");
        assert_eq!(code, 404, "{body}");
        assert_eq!(json(&body)["reason"], "NotFound");
        let (code, body) = http_get(port, "/apis/apps/v1").expect("GET a group version");
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("deployments"), "{body}");
    }
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: work}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:1.36
        imagePullPolicy: IfNotPresent
        command: [sh, -c, "exec sleep 3600"]
"#;

fn pods(s: &Server, k: &str) -> Vec<serde_json::Value> {
    let list = json(&s.ok_kubectl(
        k,
        &["get", "pods", "-n", "work", "-l", "app=web", "-o", "json"],
    ));
    list["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn wait_rollout_taint_cordon_debug_and_drain() {
    let (s, node) = node_with_busybox();
    let [oldest, newest] = kubectls();
    s.namespace(newest, "work");
    s.kubectl_in(newest, &["apply", "-f", "-"], WEB);
    for k in [oldest, newest] {
        s.ok_kubectl(
            k,
            &[
                "wait",
                "--for=condition=Available",
                "deployment/web",
                "-n",
                "work",
                "--timeout=120s",
            ],
        );
        let status = s.ok_kubectl(
            k,
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                "work",
                "--timeout=60s",
            ],
        );
        assert!(status.contains("successfully rolled out"), "{status}");
    }
    // wait on a condition that does not come times out with an error.
    let err = s.fail_kubectl(
        newest,
        &[
            "wait",
            "--for=condition=Progressing=False",
            "deployment/web",
            "-n",
            "work",
            "--timeout=2s",
        ],
        None,
    );
    assert!(err.contains("timed out"), "{err}");

    // taint and cordon, with both kubectls.
    for k in [oldest, newest] {
        s.ok_kubectl(k, &["taint", "nodes", &node, "dedicated=ops:NoSchedule"]);
        let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
        let taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
        assert!(
            taints.iter().any(|t| t["key"] == "dedicated"
                && t["value"] == "ops"
                && t["effect"] == "NoSchedule"),
            "{taints:?}"
        );
        s.ok_kubectl(k, &["taint", "nodes", &node, "dedicated:NoSchedule-"]);
        let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
        assert!(
            !n["spec"]["taints"].to_string().contains("dedicated"),
            "{}",
            n["spec"]
        );
        s.ok_kubectl(k, &["cordon", &node]);
        let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
        assert_eq!(n["spec"]["unschedulable"], true);
        s.ok_kubectl(k, &["uncordon", &node]);
        let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
        assert_ne!(n["spec"]["unschedulable"], true);
    }

    // debug: an ephemeral container joins a running pod; its output is in its logs.
    let pod = pods(&s, newest)[0]["metadata"]["name"]
        .as_str()
        .expect("a pod")
        .to_owned();
    for (i, k) in [oldest, newest].into_iter().enumerate() {
        let name = format!("debugger-{i}");
        s.ok_kubectl(
            k,
            &[
                "debug",
                &pod,
                "-n",
                "work",
                "--image=busybox:1.36",
                "--image-pull-policy=IfNotPresent",
                "-c",
                &name,
                "--",
                "sh",
                "-c",
                &format!("echo debug-$((40+{i}))"),
            ],
        );
        let exit = wait_for(&format!("{name} to finish"), 60, || {
            let p = json(&s.ok_kubectl(k, &["get", "pod", &pod, "-n", "work", "-o", "json"]));
            p["status"]["ephemeralContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == name.as_str())
                .and_then(|c| c["state"]["terminated"]["exitCode"].as_i64())
        });
        assert_eq!(exit, 0);
        let logs = s.ok_kubectl(k, &["logs", &pod, "-n", "work", "-c", &name]);
        assert_eq!(logs, format!("debug-{}\n", 40 + i));
    }
    let p = json(&s.ok_kubectl(newest, &["get", "pod", &pod, "-n", "work", "-o", "json"]));
    assert_eq!(
        p["spec"]["ephemeralContainers"].as_array().map(Vec::len),
        Some(2),
        "{}",
        p["spec"]
    );
    // The app container kept running.
    assert!(
        p["status"]["containerStatuses"][0]["state"]["running"].is_object(),
        "{}",
        p["status"]
    );
    // Ephemeral containers can be added, not changed or removed.
    let err = s.fail_kubectl(
        newest,
        &[
            "patch",
            "pod",
            &pod,
            "-n",
            "work",
            "--subresource=ephemeralcontainers",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#,
        ],
        None,
    );
    assert!(err.contains("may not be removed or changed"), "{err}");

    // drain: cordons the node and evicts its pods (the Deployment's replacements stay Pending).
    let before: Vec<String> = pods(&s, newest)
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    // A budget that allows no disruption holds the eviction back (429; drain retries, then
    // gives up at its timeout).
    s.create(
        newest,
        Some("work"),
        r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"web"},"spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}}}"#,
    );
    let err = s.fail_kubectl(
        newest,
        &[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--force",
            "--timeout=4s",
        ],
        None,
    );
    assert!(err.contains("disruption budget"), "{err}");
    assert_eq!(pods(&s, newest).len(), 2);
    s.ok_kubectl(newest, &["delete", "pdb", "web", "-n", "work"]);
    let out = s.ok_kubectl(
        newest,
        &[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            "--timeout=90s",
        ],
    );
    assert!(out.contains("drained"), "{out}");
    for name in &before {
        assert!(
            out.contains(&format!("pod/{name} evicted")),
            "{name} not evicted:\n{out}"
        );
    }
    let n = json(&s.ok_kubectl(newest, &["get", "node", &node, "-o", "json"]));
    assert_eq!(n["spec"]["unschedulable"], true);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = pods(&s, newest);
        let gone = now
            .iter()
            .all(|p| !before.iter().any(|b| p["metadata"]["name"] == b.as_str()));
        let pending = now.iter().all(|p| p["spec"]["nodeName"].is_null());
        if gone && pending {
            break;
        }
        assert!(Instant::now() < deadline, "after drain: {now:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    s.ok_kubectl(oldest, &["uncordon", &node]);
}

#[test]
fn debug_target_and_shared_process_namespaces() {
    let (s, node) = node_with_busybox();
    common::pid_namespaces::check_debug_target_and_shared(&s, &kubectls(), &node);
}
