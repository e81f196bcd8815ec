//! End to end: Prometheus text on `/metrics`. The server's (API server, scheduler and
//! controllers in one process) is read with `kubectl get --raw /metrics` on a server with
//! simulated nodes only; RBAC guards it (403 for a plain user, allowed for the
//! `system:monitoring` group). The node agent's is read from its HTTPS endpoint with the admin
//! client certificate after a real busybox pod started (root).

mod common;

use std::collections::BTreeMap;

use common::node::{import_busybox, wait_for};
use common::{KUBECTLS, Server, json};

const KUBECTL: &str = "/usr/bin/kubectl";

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A minimal parser of the text exposition (Prometheus 0.0.4 / OpenMetrics): comments are
/// skipped, `name{k="v",...} value [timestamp]` lines are read, escapes in values undone.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, mut rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => panic!("sample without a value: {line}"),
        };
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            loop {
                // key
                let mut key = String::new();
                for (i, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' => {
                            end = Some(i);
                            break;
                        }
                        ',' if key.is_empty() => {}
                        c => key.push(c),
                    }
                }
                if end.is_some() {
                    break;
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "label {key} in {line}"
                );
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("dangling escape in {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
                if let Some((i, '}')) = chars.peek().copied() {
                    end = Some(i);
                    break;
                }
            }
            let end = end.unwrap_or_else(|| panic!("unterminated labels: {line}"));
            rest = &body[end + 1..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|e| panic!("value {v} ({e}): {line}")),
        };
        out.push((name.to_owned(), labels, value));
    }
    out
}

/// The sum of `name`'s samples that carry all of `want`'s labels (`None` if there is none).
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn scrape(s: &Server) -> Vec<Sample> {
    parse(&s.ok_kubectl(KUBECTL, &["get", "--raw", "/metrics"]))
}

#[test]
fn parser_reads_labels_escapes_and_special_values() {
    let text = "# HELP x A thing.\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"t\\\\,}\"} 3\nup 1 1700000000\nh_bucket{le=\"+Inf\"} 2\ng -Inf\n# EOF\n";
    let s = parse(text);
    assert_eq!(s.len(), 4);
    assert_eq!(value(&s, "x_total", &[("b", "q\"t\\,}")]), Some(3.0));
    assert_eq!(value(&s, "x_total", &[("a", "2")]), None);
    assert_eq!(value(&s, "up", &[]), Some(1.0));
    assert_eq!(value(&s, "h_bucket", &[("le", "+Inf")]), Some(2.0));
    assert_eq!(value(&s, "g", &[]), Some(f64::NEG_INFINITY));
}

#[test]
fn server_metrics_count_requests_watches_scheduling_and_controllers() {
    let s = Server::start_with(&[
        "--disable-agent",
        "--simulate-nodes",
        "3",
        "--simulate-prefix",
        "prom",
        "--cluster-cidr",
        "172.30.0.0/16",
        "--node-cidr-mask-size",
        "24",
    ]);
    let ns = "prom";
    s.namespace(KUBECTL, ns);

    // A LIST of pods is counted, by upstream's labels.
    let list = |m: &[Sample]| {
        value(
            m,
            "apiserver_request_total",
            &[
                ("verb", "LIST"),
                ("resource", "pods"),
                ("scope", "namespace"),
                ("component", "apiserver"),
                ("code", "200"),
            ],
        )
        .unwrap_or(0.0)
    };
    let before = list(&scrape(&s));
    s.ok_kubectl(KUBECTL, &["get", "pods", "-n", ns]);
    let m = scrape(&s);
    assert!(list(&m) >= before + 1.0, "LIST pods not counted");
    assert!(
        value(
            &m,
            "apiserver_request_duration_seconds_count",
            &[("verb", "LIST"), ("resource", "pods")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        value(
            &m,
            "apiserver_storage_objects",
            &[("resource", "namespaces")]
        )
        .unwrap_or(0.0)
            >= 4.0,
        "storage objects"
    );

    // A watch is a long-running request while it lasts, and counted when it ends. No
    // component watches PodTemplates, so the numbers are the test's alone.
    let watching = |m: &[Sample]| {
        value(
            m,
            "apiserver_longrunning_requests",
            &[("verb", "WATCH"), ("resource", "podtemplates")],
        )
        .unwrap_or(0.0)
    };
    // The garbage collector watches every resource too: compare with what it holds.
    let base = watching(&m);
    let ended = |m: &[Sample]| {
        value(
            m,
            "apiserver_request_total",
            &[("verb", "WATCH"), ("resource", "podtemplates")],
        )
        .unwrap_or(0.0)
    };
    let ended_before = ended(&m);
    let watch = s.kubectl_stream(KUBECTL, &["get", "podtemplates", "-n", ns, "-w"]);
    wait_for("the watch in apiserver_longrunning_requests", 20, || {
        (watching(&scrape(&s)) == base + 1.0).then_some(())
    });
    drop(watch);
    wait_for("the watch to end and be counted", 20, || {
        let m = scrape(&s);
        (watching(&m) == base && ended(&m) >= ended_before + 1.0).then_some(())
    });

    // A Deployment: the controllers' queues and the scheduler's attempts move.
    s.ok_kubectl(
        KUBECTL,
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox:1.36",
            "--replicas=4",
            "-n",
            ns,
        ],
    );
    wait_for("4 scheduled pods", 60, || {
        let pods = json(&s.ok_kubectl(KUBECTL, &["get", "pods", "-n", ns, "-o", "json"]));
        let bound = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["spec"]["nodeName"].is_string())
            .count();
        (bound == 4).then_some(())
    });
    let m = scrape(&s);
    let scheduled = value(
        &m,
        "scheduler_schedule_attempts_total",
        &[("result", "scheduled"), ("profile", "default-scheduler")],
    );
    assert!(scheduled >= Some(4.0), "scheduled attempts: {scheduled:?}");
    assert!(
        value(
            &m,
            "scheduler_scheduling_attempt_duration_seconds_count",
            &[("result", "scheduled")]
        ) >= Some(4.0)
    );
    assert!(value(&m, "scheduler_pending_pods", &[("queue", "active")]).is_some());
    for controller in ["replicaset-controller", "deployment-controller"] {
        let adds = value(&m, "workqueue_adds_total", &[("name", controller)]);
        assert!(adds > Some(0.0), "{controller} adds: {adds:?}");
        let work = value(
            &m,
            "workqueue_work_duration_seconds_count",
            &[("name", controller)],
        );
        assert!(work > Some(0.0), "{controller} reconciles: {work:?}");
        assert!(value(&m, "workqueue_depth", &[("name", controller)]).is_some());
    }
    for (verb, resource) in [("POST", "deployments"), ("POST", "pods")] {
        let n = value(
            &m,
            "apiserver_request_total",
            &[("verb", verb), ("resource", resource), ("code", "201")],
        );
        assert!(n >= Some(1.0), "{verb} {resource}: {n:?}");
    }
    let creates = value(
        &m,
        "etcd_request_duration_seconds_count",
        &[("operation", "create"), ("type", "deployments.apps")],
    );
    assert!(creates >= Some(1.0), "store creates: {creates:?}");
    assert!(value(&m, "apiserver_storage_objects", &[("resource", "pods")]) >= Some(4.0));

    // RBAC: a plain user may not read it; the system:monitoring group may.
    let denied = s.fail_kubectl(
        KUBECTL,
        &["get", "--raw", "/metrics", "--as", "alice"],
        None,
    );
    assert!(
        denied.contains("Forbidden") || denied.contains("forbidden"),
        "{denied}"
    );
    let text = s.ok_kubectl(
        KUBECTL,
        &[
            "get",
            "--raw",
            "/metrics",
            "--as",
            "prometheus",
            "--as-group",
            "system:monitoring",
        ],
    );
    assert!(value(&parse(&text), "apiserver_request_total", &[]).is_some());
    let m = scrape(&s);
    assert!(
        value(
            &m,
            "apiserver_request_total",
            &[("verb", "GET"), ("resource", ""), ("code", "403")]
        ) >= Some(1.0),
        "the refused scrape is counted"
    );
}

/// The agent's endpoint with the admin client certificate (any certificate of the cluster CA
/// is let in, as for logs and exec).
fn agent_metrics(s: &Server) -> String {
    let pki = s.data_dir().join("pki");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .arg(format!("https://127.0.0.1:{}/metrics", s.kubelet_port))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn agent_metrics_show_pod_start_and_runtime_operations() {
    let s = Server::start();
    import_busybox(s.dir.path(), &s.data_dir());
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let node = wait_for("the node", 30, || {
        let list = json(&s.ok_kubectl(k, &["get", "nodes", "-o", "json"]));
        list["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_owned)
    });
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }],
        },
    });
    s.create(k, Some("default"), &pod.to_string());
    let mut last = serde_json::Value::Null;
    for _ in 0..60 {
        last = json(&s.ok_kubectl(k, &["get", "pod", "sleeper", "-o", "json"]));
        if last["status"]["phase"] == "Running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_eq!(
        last["status"]["phase"],
        "Running",
        "{:#}\n{}",
        last["status"],
        s.log()
    );
    let m = wait_for(
        "the pod start in kubelet_pod_start_duration_seconds",
        20,
        || {
            let m = parse(&agent_metrics(&s));
            (value(&m, "kubelet_pod_start_duration_seconds_count", &[]) >= Some(1.0)).then_some(m)
        },
    );
    assert!(value(&m, "kubelet_running_pods", &[]) >= Some(1.0));
    assert!(
        value(
            &m,
            "kubelet_running_containers",
            &[("container_state", "running")]
        ) >= Some(1.0)
    );
    for op in ["run_podsandbox", "create_container", "start_container"] {
        let n = value(
            &m,
            "kubelet_runtime_operations_total",
            &[("operation_type", op)],
        );
        assert!(n >= Some(1.0), "{op}: {n:?}");
        assert!(
            value(
                &m,
                "kubelet_runtime_operations_duration_seconds_count",
                &[("operation_type", op)]
            ) >= Some(1.0)
        );
    }
    // The pod took more than nothing and less than the wait above to start.
    let sum = value(&m, "kubelet_pod_start_duration_seconds_sum", &[]).unwrap_or(0.0);
    assert!(sum > 0.0 && sum < 90.0, "pod start took {sum} s");
    // Without a client certificate the endpoint answers nothing.
    let anonymous = std::process::Command::new("curl")
        .args(["-sS", "--fail", "-k"])
        .arg(format!("https://127.0.0.1:{}/metrics", s.kubelet_port))
        .output()
        .expect("run curl");
    assert!(!anonymous.status.success());
    s.ok_kubectl(k, &["delete", "pod", "sleeper", "--wait=false"]);
}
