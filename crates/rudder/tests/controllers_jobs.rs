//! End to end with real containers: Jobs run to completion (NonIndexed and Indexed), a failing
//! Job stops at its backoffLimit, a podFailurePolicy `FailJob` rule fails a Job at once; the
//! tracking finalizer is removed from counted pods.

mod common;
mod controllers_support;

use common::node::node_with_busybox;
use common::{Server, json};
use controllers_support::K;

fn job(name: &str, node: &str, script: &str, extra: serde_json::Value) -> String {
    let mut j = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {"spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                }],
            }},
        },
    });
    if let (Some(spec), Some(extra)) = (j["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    j.to_string()
}

fn wait_condition(s: &Server, name: &str, cond: &str) -> serde_json::Value {
    s.ok_kubectl(
        K,
        &[
            "wait",
            &format!("--for=condition={cond}"),
            &format!("job/{name}"),
            "--timeout=120s",
        ],
    );
    json(&s.ok_kubectl(K, &["get", "job", name, "-o", "json"]))
}

fn job_pods(s: &Server, name: &str) -> Vec<serde_json::Value> {
    let out = s.ok_kubectl(
        K,
        &[
            "get",
            "pods",
            "-l",
            &format!("job-name={name}"),
            "-o",
            "json",
        ],
    );
    json(&out)["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn jobs_complete_fail_and_follow_their_policies() {
    let (s, node) = node_with_busybox();

    // Three completions, two at a time.
    s.create(
        K,
        Some("default"),
        &job(
            "ok",
            &node,
            "exit 0",
            serde_json::json!({"completions": 3, "parallelism": 2}),
        ),
    );
    // Fails every time: 1 retry allowed, so 2 failures end it.
    s.create(
        K,
        Some("default"),
        &job(
            "bad",
            &node,
            "exit 1",
            serde_json::json!({"backoffLimit": 1}),
        ),
    );
    // Indexed: each pod sees its index.
    s.create(K, Some("default"), &job(
        "indexed",
        &node,
        r#"test "$JOB_COMPLETION_INDEX" -ge 0 && test "$(hostname)" = "indexed-$JOB_COMPLETION_INDEX""#,
        serde_json::json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
    ));
    // Exit code 42 fails the Job at once despite a generous backoffLimit.
    s.create(
        K,
        Some("default"),
        &job(
            "policy",
            &node,
            "exit 42",
            serde_json::json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            ]}}),
        ),
    );

    let ok = wait_condition(&s, "ok", "complete");
    assert_eq!(ok["status"]["succeeded"], 3, "{ok}");
    assert!(ok["status"]["completionTime"].is_string(), "{ok}");
    let pods = job_pods(&s, "ok");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(
            !p["metadata"]["finalizers"]
                .to_string()
                .contains("job-tracking"),
            "{p}"
        );
    }

    let bad = wait_condition(&s, "bad", "failed");
    assert_eq!(bad["status"]["failed"], 2, "{bad}");
    let conds = bad["status"]["conditions"].to_string();
    assert!(conds.contains("BackoffLimitExceeded"), "{conds}");

    let indexed = wait_condition(&s, "indexed", "complete");
    assert_eq!(indexed["status"]["completedIndexes"], "0-2", "{indexed}");
    let mut indexes: Vec<String> = job_pods(&s, "indexed")
        .iter()
        .filter_map(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);

    let policy = wait_condition(&s, "policy", "failed");
    let conds = policy["status"]["conditions"].to_string();
    assert!(
        conds.contains("PodFailurePolicy") && conds.contains("exit code 42"),
        "{conds}"
    );
    assert_eq!(policy["status"]["failed"], 1, "{policy}");
}

#[test]
fn cronjob_fires_on_schedule() {
    let s = Server::start();
    s.create(
        K,
        Some("default"),
        &serde_json::json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick"},
            "spec": {
                "schedule": "* * * * *",
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "rudder.invalid/none:1"}],
                }}}},
            },
        })
        .to_string(),
    );
    // The first minute boundary after creation: at most a minute away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let job = loop {
        let out = s.ok_kubectl(K, &["get", "jobs", "-o", "json"]);
        if let Some(j) = json(&out)["items"]
            .as_array()
            .and_then(|a| a.first().cloned())
        {
            break j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Job within 90 s:\n{}",
            s.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let name = job["metadata"]["name"].as_str().expect("name");
    let minutes: i64 = name
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .expect("tick-<minutes>");
    let scheduled =
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .expect("scheduled timestamp");
    assert!(scheduled.ends_with(":00Z"), "{scheduled}");
    assert!(minutes > 0);
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let cj = json(&s.ok_kubectl(K, &["get", "cronjob", "tick", "-o", "json"]));
        if cj["status"]["active"][0]["name"] == name
            && cj["status"]["lastScheduleTime"].as_str() == Some(scheduled)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "CronJob status: {cj}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
