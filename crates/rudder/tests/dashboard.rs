//! The web dashboard in a real headless Chromium against a real `rudder server` (its own node
//! plus two simulated ones): sign-in with the token `rudder dashboard token` prints, a
//! Deployment created with kubectl after the page loaded appears live, the page scales it
//! (after a confirmation) and shows the new pods, deletes a pod (cancel, then confirm) and
//! shows its replacement, renders YAML that kubectl reads back, streams a real container's
//! log (resuming it, with no line lost or repeated, after a network change makes the browser
//! drop its connections), and lists events and nodes with usage bars.
//!
//! `RUDDER_SCREENSHOTS=docs/dashboard` (relative to the workspace) saves the main views as PNGs.

mod common;
mod dashboard_support;

use std::path::PathBuf;

use common::node::{import_busybox, wait_for};
use common::{Server, free_port, json};
use dashboard_support::Browser;

const KUBECTL: &str = "/usr/bin/kubectl";

/// Where screenshots go, if asked for.
fn screenshots() -> Option<PathBuf> {
    let dir = std::env::var_os("RUDDER_SCREENSHOTS")?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    Some(dir)
}

fn shot(b: &Browser, name: &str) {
    if let Some(dir) = screenshots() {
        // A toast from an earlier action would hide part of the view.
        b.eval("document.getElementById('toast').hidden = true; return null");
        b.screenshot(&dir.join(format!("{name}.png")));
    }
}

fn running(rows: &[(String, String)]) -> usize {
    rows.iter().filter(|(_, s)| s == "Running").count()
}

#[test]
fn dashboard_shows_scales_and_deletes_live() {
    // One /24 split in /26s: the real node's pod subnet and one per simulated node. Named
    // after a free port, like the harness's own ranges, so parallel tests do not overlap.
    let p = free_port();
    let cidr = format!("10.{}.{}.0/24", p >> 8, p & 0xff);
    let s = Server::start_with(&[
        "--simulate-nodes",
        "2",
        "--simulate-prefix",
        "sim",
        "--cluster-cidr",
        &cidr,
        "--node-cidr-mask-size",
        "26",
        // Node metrics for the overview's bars without waiting 30 s.
        "--metric-resolution",
        "2s",
    ]);
    import_busybox(s.dir.path(), &s.data_dir());
    let real_node = wait_for("the server's own node", 60, || {
        let nodes = json(&s.ok_kubectl(KUBECTL, &["get", "nodes", "-o", "json"]));
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3)
            .then(|| {
                items
                    .iter()
                    .find(|n| n["metadata"]["labels"]["type"] != "simulated")
                    .and_then(|n| n["metadata"]["name"].as_str().map(str::to_owned))
            })
            .flatten()
    });

    // The administrator's token, as the docs tell them to get it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["dashboard", "token", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .expect("rudder dashboard token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/dashboard/"));
    // Running it again reuses the account and mints another token.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["dashboard", "token", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .expect("rudder dashboard token");
    assert!(again.status.success());

    // A container whose log grows every second, on the real node.
    s.namespace(KUBECTL, "shop");
    s.create(
        KUBECTL,
        Some("shop"),
        &format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"ticker"}},
            "spec":{{"nodeName":"{real_node}","terminationGracePeriodSeconds":1,
            "containers":[{{"name":"main","image":"busybox:1.36","imagePullPolicy":"IfNotPresent",
            "command":["sh","-c","i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]}}]}}}}"#
        ),
    );

    let b = Browser::start(1440, 900);
    let base = format!("https://127.0.0.1:{}", s.port);
    // `/dashboard` redirects to the page, which needs no credentials to load.
    b.goto(&format!("{base}/dashboard"));
    let mut loaded = std::time::Instant::now();
    b.wait_for("the login form", 60, || {
        // The form shows once the page's script has run.
        let shown = "const f = document.getElementById('login'); return !!f && !f.hidden";
        if b.eval(shown) == true {
            return Some(());
        }
        // Browsers fail requests in flight when the machine's network changes (other tests
        // add interfaces): a script that failed to load needs a reload, as a user would do.
        if loaded.elapsed() > std::time::Duration::from_secs(15) {
            b.goto(&format!("{base}/dashboard"));
            loaded = std::time::Instant::now();
        }
        None
    });
    assert!(b.url().ends_with("/dashboard/"), "{}", b.url());

    // A wrong token is refused with a message.
    b.type_into("#token", "not-a-token");
    b.click("#login-submit");
    b.wait_for("the refusal", 30, || {
        b.text("#login-error")
            .contains("does not accept")
            .then_some(())
    });
    b.type_into("#token", &token);
    b.click("#login-submit");
    b.wait_for("signed in as the dashboard admin", 30, || {
        b.text("#user")
            .contains("system:serviceaccount:kube-system:rudder-dashboard-admin")
            .then_some(())
    });

    // The Deployment appears on the open page through its watch.
    b.click("#nav a[data-route=workloads]");
    b.wait_for("the Deployments table", 30, || {
        b.find("#deployments-table").map(|_| ())
    });
    s.create(
        KUBECTL,
        Some("shop"),
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
        "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},
        "template":{"metadata":{"labels":{"app":"web"}},
        "spec":{"nodeSelector":{"type":"simulated"},"terminationGracePeriodSeconds":0,
        "containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    );
    b.wait_for("web rolled out on the Workloads page", 90, || {
        b.text("#deployments-table tr[data-name=web]")
            .contains("Complete")
            .then_some(())
    });
    shot(&b, "workloads");

    // Scale it from its page: 1 → 3, after confirming.
    b.click("#deployments-table tr[data-name=web] a");
    b.wait_for("web's one pod Running", 60, || {
        (running(&b.rows("#deployment-pods tbody tr[data-name]")) == 1).then_some(())
    });
    b.type_into("#scale-replicas", "3");
    b.click("#scale-apply");
    b.wait_for("the scale confirmation", 30, || {
        b.text("#confirm-message")
            .contains("from 1 to 3 replicas")
            .then_some(())
    });
    b.click("#confirm-ok");
    let pods = b.wait_for("three Running pods on the Deployment page", 90, || {
        let rows = b.rows("#deployment-pods tbody tr[data-name]");
        (rows.len() == 3 && running(&rows) == 3).then_some(rows)
    });
    let d = json(&s.ok_kubectl(
        KUBECTL,
        &["get", "deployment", "web", "-n", "shop", "-o", "json"],
    ));
    assert_eq!(d["spec"]["replicas"], 3);
    b.wait_for("the rollout complete with 3 available", 60, || {
        b.text("#deployment-replicas")
            .contains("3 available")
            .then_some(())
    });
    shot(&b, "deployment");

    // The YAML view reads back (through kubectl's own parser) as the object's spec.
    let yaml = b.wait_for("the YAML of 3 replicas", 30, || {
        let y = b.text("#deployment-yaml");
        (y.contains("kind: Deployment") && y.contains("replicas: 3")).then_some(y)
    });
    let parsed = json(&s.kubectl_in(
        KUBECTL,
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        &yaml,
    ));
    let d = json(&s.ok_kubectl(
        KUBECTL,
        &["get", "deployment", "web", "-n", "shop", "-o", "json"],
    ));
    assert_eq!(parsed["spec"], d["spec"], "YAML:\n{yaml}");
    assert_eq!(parsed["metadata"]["labels"], d["metadata"]["labels"]);
    assert!(!yaml.contains("managedFields"));

    // Delete a pod: cancelling keeps it; confirming deletes it and the page shows the
    // ReplicaSet's replacement.
    let victim = pods[0].0.clone();
    let delete = format!("#deployment-pods button.delete-pod[data-name='{victim}']");
    b.click(&delete);
    b.wait_for("the delete confirmation", 30, || {
        b.text("#confirm-message").contains(&victim).then_some(())
    });
    b.click("#confirm-cancel");
    b.wait_for("the dialog closed", 30, || {
        (b.eval("return !document.getElementById('confirm').open") == true).then_some(())
    });
    let pod = json(&s.ok_kubectl(
        KUBECTL,
        &["get", "pod", &victim, "-n", "shop", "-o", "json"],
    ));
    assert!(pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
    b.click(&delete);
    b.wait_for("the delete confirmation", 30, || {
        b.text("#confirm-message").contains(&victim).then_some(())
    });
    b.click("#confirm-ok");
    b.wait_for("the pod replaced", 90, || {
        let rows = b.rows("#deployment-pods tbody tr[data-name]");
        (rows.len() == 3 && running(&rows) == 3 && rows.iter().all(|(n, _)| *n != victim))
            .then_some(())
    });
    let left = s.kubectl(KUBECTL, &["get", "pod", &victim, "-n", "shop"]);
    assert!(!left.status.success(), "{victim} still exists");

    // Pods: the namespace filter, and the ticker's log streaming.
    b.type_into("#namespace", "shop\n");
    b.click("#nav a[data-route=pods]");
    b.wait_for("four Running pods in shop", 90, || {
        let rows = b.rows("#pods-table tbody tr[data-name]");
        (rows.len() == 4 && running(&rows) == 4).then_some(())
    });
    shot(&b, "pods");
    b.click("#pods-table tr[data-name=ticker] a");
    b.click("#tab-logs");
    // Two lines that the container printed after the stream opened prove it follows.
    let first = b.wait_for("the ticker's log", 60, || {
        let text = b.text("#logs");
        text.lines()
            .filter_map(|l| l.strip_prefix("tick ")?.trim().parse::<u64>().ok())
            .max()
    });
    b.wait_for("the log to grow while following", 60, || {
        b.text("#logs")
            .contains(&format!("tick {}\n", first + 2))
            .then_some(())
    });
    shot(&b, "pod-logs");

    // A network change (an address added, as a VPN or Wi-Fi switch does) makes the browser
    // fail its in-flight requests; the log resumes where it stopped, showing no line twice.
    let changed = first + 2;
    {
        let _link = ChangedNetwork::add(p);
        b.wait_for("the log to grow after a network change", 60, || {
            b.text("#logs")
                .contains(&format!("tick {}\n", changed + 3))
                .then_some(())
        });
    }
    let ticks: Vec<u64> = b
        .text("#logs")
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
        .collect();
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "lines lost or repeated: {ticks:?}"
    );

    // Events, live: the scaling shows up.
    b.click("#nav a[data-route=events]");
    b.wait_for("the ScalingReplicaSet event", 60, || {
        b.find("#events-table tr[data-reason=ScalingReplicaSet]")
    });
    shot(&b, "events");

    // Overview: all nodes, the real one with CPU and memory bars from metrics.k8s.io.
    b.type_into("#namespace", "\n");
    b.click("#nav a[data-route=overview]");
    let bars = format!("#nodes-table tr[data-name='{real_node}'] .bar");
    b.wait_for("three nodes, the real one with usage bars", 120, || {
        let n = b.rows("#nodes-table tbody tr[data-name]").len();
        let count = b.eval(&format!(
            "return document.querySelectorAll({}).length",
            serde_json::Value::from(bars.as_str())
        ));
        (n == 3 && count == 3).then_some(())
    });
    shot(&b, "overview");
}

/// A veth pair with an address, for as long as it lives: to the browser, a network change.
struct ChangedNetwork(String);

impl ChangedNetwork {
    fn add(port: u16) -> Self {
        let name = format!("rdash{port}");
        let link = ChangedNetwork(name.clone());
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // veth, not dummy: the machine's kernel may lack the dummy module.
        ip(&[
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ]);
        // A TEST-NET-2 address: routed nowhere, shared with nothing.
        let addr = format!("198.51.100.{}/32", port % 250 + 1);
        ip(&["addr", "add", &addr, "dev", &name]);
        ip(&["link", "set", &name, "up"]);
        link
    }
}

impl Drop for ChangedNetwork {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}
