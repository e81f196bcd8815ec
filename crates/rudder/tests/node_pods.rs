//! End to end, as root: pods bound to the server's node run as real containers — an image
//! imported with `rudder image import`, a pod that runs to completion, a crashing pod backing off
//! (`CrashLoopBackOff`), a memory hog OOM-killed, its output through `kubectl logs`, and a deleted pod whose processes
//! are gone, leaving no process, mount or cgroup behind.

mod common;

use std::time::Duration;

use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, json};

fn pod(name: &str, node: &str, restart: &str, command: &[&str]) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": command, "env": [{"name": "WHO", "value": "rudder"}],
            }],
        },
    })
    .to_string()
}

#[test]
fn pods_run_as_containers() {
    let (mut s, node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];

    // Runs to completion.
    s.create(
        k,
        Some("default"),
        &pod(
            "hello",
            &node,
            "Never",
            &["sh", "-c", "echo hello $WHO; exit 0"],
        ),
    );
    let done = wait_for("hello to succeed", 60, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", "hello", "-o", "json"]));
        (p["status"]["phase"] == "Succeeded").then_some(p)
    });
    let term = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0, "{done}");
    assert_eq!(term["reason"], "Completed");
    // Its output, through the API server and the node's endpoint.
    let logs = s.ok_kubectl(k, &["logs", "hello"]);
    assert_eq!(logs, "hello rudder\n");
    // By label across pods, each line prefixed with its pod and container.
    let prefixed = s.ok_kubectl(
        k,
        &["logs", "-l", "app=hello", "--all-containers", "--prefix"],
    );
    assert_eq!(prefixed, "[pod/hello/main] hello rudder\n");
    let stamped = s.ok_kubectl(k, &["logs", "hello", "--timestamps", "--tail=1"]);
    assert!(
        stamped.ends_with(" hello rudder\n") && stamped.starts_with("20"),
        "{stamped}"
    );

    // Crashes and backs off, restarting.
    s.create(
        k,
        Some("default"),
        &pod("crash", &node, "Always", &["sh", "-c", "exit 3"]),
    );
    let crashed = wait_for("crash to back off", 60, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", "crash", "-o", "json"]));
        let cs = &p["status"]["containerStatuses"][0];
        (cs["state"]["waiting"]["reason"] == "CrashLoopBackOff").then(|| cs.clone())
    });
    assert_eq!(
        crashed["lastState"]["terminated"]["exitCode"], 3,
        "{crashed}"
    );
    // The agent tells the story in events, as a kubelet does (`kubectl describe pod`).
    let events = |pod: &str| {
        let list = json(&s.ok_kubectl(
            k,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={pod}"),
                "-o",
                "json",
            ],
        ));
        list["items"].as_array().cloned().unwrap_or_default()
    };
    let story = wait_for("the kubelet's events about crash", 60, || {
        let evs = events("crash");
        let has = |reason: &str| evs.iter().any(|e| e["reason"] == reason);
        (has("Pulled") && has("Created") && has("Started") && has("BackOff")).then_some(evs)
    });
    let backoff = story
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .cloned()
        .unwrap_or_default();
    assert_eq!(backoff["type"], "Warning");
    assert_eq!(backoff["source"]["component"], "kubelet");
    assert_eq!(
        backoff["involvedObject"]["fieldPath"],
        "spec.containers{main}"
    );
    // Every restart starts the container again: one Started event, counted.
    let started = wait_for("Started counted more than once", 90, || {
        events("crash")
            .into_iter()
            .find(|e| e["reason"] == "Started" && e["count"].as_i64().unwrap_or(0) >= 2)
    });
    assert_eq!(started["message"], "Started container main", "{started}");
    let described = s.ok_kubectl(k, &["describe", "pod", "crash"]);
    assert!(
        described.contains("Container image \"busybox:1.36\" already present on machine")
            && described.contains("Back-off restarting failed container main"),
        "{described}"
    );

    // Exceeding its memory limit gets a container OOM-killed, and the status says so.
    let mut hog: serde_json::Value = serde_json::from_str(&pod(
        "hog",
        &node,
        "Never",
        &[
            "sh",
            "-c",
            "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived",
        ],
    ))
    .expect("pod json");
    hog["spec"]["containers"][0]["resources"] = serde_json::json!({"limits": {"memory": "32Mi"}});
    s.create(k, Some("default"), &hog.to_string());
    let killed = wait_for("hog to be OOM-killed", 60, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", "hog", "-o", "json"]));
        (p["status"]["phase"] == "Failed")
            .then(|| p["status"]["containerStatuses"][0]["state"]["terminated"].clone())
    });
    assert_eq!(killed["reason"], "OOMKilled", "{killed}");
    assert_eq!(killed["exitCode"], 137, "{killed}");

    // A long-running pod runs, then deleting it stops its process and removes it.
    s.create(
        k,
        Some("default"),
        &pod("sleeper", &node, "Always", &["sleep", "3600"]),
    );
    let running = wait_for("sleeper to run", 60, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", "sleeper", "-o", "json"]));
        (p["status"]["phase"] == "Running").then_some(p)
    });
    let container_id = running["status"]["containerStatuses"][0]["containerID"].clone();
    let sandbox_count = |s: &Server| {
        std::fs::read_dir(s.data_dir().join("containers/sandboxes")).map_or(0, |d| d.count())
    };
    let before = sandbox_count(&s);

    // The server (and its agent) restarts: the running pod is adopted, not restarted or
    // duplicated.
    s.restart();
    std::thread::sleep(Duration::from_secs(3));
    let after = json(&s.ok_kubectl(k, &["get", "pod", "sleeper", "-o", "json"]));
    let cs = &after["status"]["containerStatuses"][0];
    assert_eq!(cs["containerID"], container_id, "{after}");
    assert!(cs["state"]["running"].is_object(), "{after}");
    assert_eq!(cs["restartCount"], 0, "{after}");
    assert_eq!(sandbox_count(&s), before, "no new sandbox");
    let sandboxes: Vec<String> = std::fs::read_dir(s.data_dir().join("containers/sandboxes"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(sandboxes.len() >= 4, "{sandboxes:?}");
    s.ok_kubectl(k, &["delete", "pod", "sleeper", "--wait=false"]);
    wait_for("sleeper to be gone", 60, || {
        let out = s.kubectl(k, &["get", "pod", "sleeper"]);
        (!out.status.success()).then_some(())
    });
    s.ok_kubectl(
        k,
        &[
            "delete",
            "pod",
            "crash",
            "hello",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    // A deleted pod's logs stay on its node (until --pod-logs-retention), read through the
    // node proxy as on a kubelet.
    let uid = done["metadata"]["uid"].as_str().unwrap_or_default();
    let dir = format!("default_hello_{uid}/");
    let listing = s.ok_kubectl(
        k,
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/logs/pods/"),
        ],
    );
    assert!(listing.lines().any(|l| l == dir), "{listing}");
    let kept = s.ok_kubectl(
        k,
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/logs/pods/{dir}main/0.log"),
        ],
    );
    assert!(kept.contains(" stdout F hello rudder"), "{kept}");
    let escape = s.kubectl(
        k,
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/logs/pods/%2E%2E/%2E%2E/kubeconfig"),
        ],
    );
    assert!(
        !escape.status.success(),
        "nothing outside the logs directory is served"
    );
}

#[test]
fn volumes_reach_containers() {
    let (s, node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    s.ok_kubectl(
        k,
        &[
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
        ],
    );
    s.ok_kubectl(
        k,
        &[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=hunter2",
        ],
    );
    // A claim bound to a hostPath volume (bound here by hand: the binding itself is the
    // controller manager's).
    let pv_dir = s.dir.path().join("pv-data");
    std::fs::create_dir_all(&pv_dir).expect("pv dir");
    std::fs::write(pv_dir.join("seed"), "seeded").expect("seed");
    let pv = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-data"},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "hostPath": {"path": pv_dir.to_str().expect("utf-8 path")},
        },
    });
    s.create(k, None, &pv.to_string());
    let pvc = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"], "volumeName": "pv-data",
            "storageClassName": "", "resources": {"requests": {"storage": "1Gi"}},
        },
    });
    s.create(k, Some("default"), &pvc.to_string());
    s.ok_kubectl(
        k,
        &[
            "patch",
            "pvc",
            "data",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Bound"}}"#,
        ],
    );
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reader", "labels": {"app": "reader"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c",
                    "cat /etc/pw/password; echo; cat /etc/info/labels; echo > /scratch/ok && echo scratch-ok; \
                     echo claim=$(cat /data/seed); echo from-the-pod > /data/written; \
                     while true; do echo color=$(cat /etc/cfg/color); sleep 1; done"],
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "pw", "mountPath": "/etc/pw"},
                    {"name": "info", "mountPath": "/etc/info"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "claim", "mountPath": "/data"},
                ],
            }],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "pw", "secret": {"secretName": "pw"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "scratch", "emptyDir": {"medium": "Memory"}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            ],
        },
    });
    s.create(k, Some("default"), &pod.to_string());
    let logs = wait_for("the reader's first lines", 60, || {
        let out = s.kubectl(k, &["logs", "reader"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("color=blue").then_some(text)
    });
    assert!(logs.contains("hunter2"), "{logs}");
    assert!(logs.contains("app=\"reader\""), "{logs}");
    assert!(logs.contains("scratch-ok"), "{logs}");
    assert!(logs.contains("claim=seeded"), "{logs}");
    // A ConfigMap change reaches the mounted file while the container runs.
    s.ok_kubectl(
        k,
        &[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"color":"green"}}"#,
        ],
    );
    wait_for("the new color in the mounted file", 60, || {
        let out = s.kubectl(k, &["logs", "reader", "--tail=2"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("color=green")
            .then_some(())
    });
    s.ok_kubectl(
        k,
        &["delete", "pod", "reader", "--wait=true", "--timeout=60s"],
    );
    let volumes = s.data_dir().join("agent/pods");
    let left = std::fs::read_dir(&volumes).map_or(0, |d| d.count());
    assert_eq!(left, 0, "pod directories left in {}", volumes.display());
    // The claim's data outlives the pod.
    assert_eq!(
        std::fs::read_to_string(pv_dir.join("written")).expect("written by the pod"),
        "from-the-pod\n"
    );
}

#[test]
fn probes_flip_readiness_and_restart_unhealthy_containers() {
    let (s, node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probed"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    // Ready once a file exists (exec probe).
                    "name": "late", "image": "busybox:1.36",
                    "command": ["sh", "-c", "sleep 3; touch /tmp/ready; sleep 3600"],
                    "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1},
                },
                {
                    // Served over HTTP inside the pod (httpGet and tcpSocket probes).
                    "name": "web", "image": "busybox:1.36",
                    "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                },
                {
                    // Healthy for a few seconds, then its liveness probe fails: restarted.
                    "name": "flaky", "image": "busybox:1.36",
                    "command": ["sh", "-c", "touch /tmp/alive; sleep 4; rm /tmp/alive; sleep 3600"],
                    "livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2},
                },
            ],
        },
    });
    s.create(k, Some("default"), &pod.to_string());
    let status = |s: &Server| json(&s.ok_kubectl(k, &["get", "pod", "probed", "-o", "json"]));
    let ready_of = |p: &serde_json::Value, name: &str| {
        p["status"]["containerStatuses"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == name).cloned())
            .map(|c| {
                (
                    c["ready"].as_bool().unwrap_or(false),
                    c["restartCount"].as_i64().unwrap_or(0),
                )
            })
    };
    // Running but not yet ready: the exec probe fails until the file appears.
    let early = wait_for("the pod to run", 60, || {
        let p = status(&s);
        (p["status"]["phase"] == "Running").then_some(p)
    });
    assert_eq!(
        ready_of(&early, "late").map(|r| r.0),
        Some(false),
        "{early}"
    );
    // Then every readiness probe passes and the pod is Ready.
    wait_for("late and web to be ready", 60, || {
        let p = status(&s);
        let ok =
            ready_of(&p, "late").is_some_and(|r| r.0) && ready_of(&p, "web").is_some_and(|r| r.0);
        ok.then_some(())
    });
    // The flaky container fails its liveness probe and is restarted.
    wait_for("flaky to be restarted", 60, || {
        let p = status(&s);
        ready_of(&p, "flaky")
            .is_some_and(|r| r.1 >= 1)
            .then_some(())
    });
    let p = status(&s);
    assert_eq!(
        ready_of(&p, "web").map(|r| r.1),
        Some(0),
        "web stays up: {p}"
    );
    let described = s.ok_kubectl(k, &["describe", "pod", "probed"]);
    assert!(
        described.contains("Liveness probe failed")
            && described.contains("Container flaky failed liveness probe, will be restarted"),
        "{described}"
    );
    s.ok_kubectl(
        k,
        &["delete", "pod", "probed", "--wait=true", "--timeout=60s"],
    );
}

#[test]
fn lifecycle_hooks_run_after_start_and_before_stop() {
    let (s, node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let host_dir = s.data_dir().join("hook-out");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hooked"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c", "while [ ! -f /tmp/hook ]; do sleep 0.2; done; echo saw $(cat /tmp/hook); sleep 3600"],
                "lifecycle": {
                    "postStart": {"exec": {"command": ["sh", "-c", "echo post-start > /tmp/hook"]}},
                    "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop > /out/stopped"]}},
                },
                "volumeMounts": [{"name": "out", "mountPath": "/out"}],
            }],
            "volumes": [{"name": "out", "hostPath": {"path": host_dir.to_string_lossy()}}],
        },
    });
    s.create(k, Some("default"), &pod.to_string());
    wait_for("the postStart hook's effect in the logs", 60, || {
        let out = s.kubectl(k, &["logs", "hooked"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("saw post-start")
            .then_some(())
    });
    s.ok_kubectl(
        k,
        &["delete", "pod", "hooked", "--wait=true", "--timeout=60s"],
    );
    let stopped = std::fs::read_to_string(host_dir.join("stopped")).unwrap_or_default();
    assert_eq!(stopped.trim(), "pre-stop");
}
