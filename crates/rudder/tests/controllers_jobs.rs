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
    // The retry waited out the 10 s pod-failure back-off (timestamps have 1 s resolution).
    let secs = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    let mut pods = job_pods(&s, "bad");
    pods.sort_by_key(|p| secs(&p["metadata"]["creationTimestamp"]));
    assert_eq!(pods.len(), 2);
    let first_finished =
        secs(&pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])
            .expect("first pod's finish time");
    let retry_created = secs(&pods[1]["metadata"]["creationTimestamp"]).expect("created");
    assert!(
        retry_created - first_finished >= 9,
        "retry created {retry_created}, first pod finished {first_finished}"
    );

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

#[test]
fn indexed_jobs_fail_indexes_and_follow_success_policies() {
    let (s, node) = node_with_busybox();
    // Index 1 always fails: retried once (after the 10 s back-off), then failed for good while
    // the others complete; the Job fails with FailedIndexes.
    s.create(
        K,
        Some("default"),
        &job(
            "per-index",
            &node,
            r#"test "$JOB_COMPLETION_INDEX" != 1"#,
            serde_json::json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                "backoffLimitPerIndex": 1}),
        ),
    );
    // Every index fails: more than one failed index is too many.
    s.create(
        K,
        Some("default"),
        &job(
            "max-failed",
            &node,
            "exit 1",
            serde_json::json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                "backoffLimitPerIndex": 0, "maxFailedIndexes": 1}),
        ),
    );
    // Index 0 succeeding is enough; the others would run for an hour.
    s.create(
        K,
        Some("default"),
        &job(
            "leader",
            &node,
            r#"test "$JOB_COMPLETION_INDEX" = 0 || sleep 3600"#,
            serde_json::json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                "successPolicy": {"rules": [{"succeededIndexes": "0"}]}}),
        ),
    );

    let per_index = wait_condition(&s, "per-index", "failed");
    let status = &per_index["status"];
    assert_eq!(status["failedIndexes"], "1", "{per_index}");
    assert_eq!(status["completedIndexes"], "0,2", "{per_index}");
    assert_eq!(status["failed"], 2, "{per_index}");
    let conds = status["conditions"].to_string();
    assert!(conds.contains("FailedIndexes"), "{conds}");
    // The retry carries the index's failure count.
    let counts: Vec<String> = job_pods(&s, "per-index")
        .iter()
        .filter(|p| p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1")
        .filter_map(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let mut counts = counts;
    counts.sort();
    assert_eq!(counts, ["0", "1"]);

    let max_failed = wait_condition(&s, "max-failed", "failed");
    let conds = max_failed["status"]["conditions"].to_string();
    assert!(conds.contains("MaxFailedIndexesExceeded"), "{conds}");

    let leader = wait_condition(&s, "leader", "complete");
    let conds = leader["status"]["conditions"].to_string();
    assert!(
        conds.contains("SuccessCriteriaMet") && conds.contains("SuccessPolicy"),
        "{conds}"
    );
    assert_eq!(leader["status"]["completedIndexes"], "0", "{leader}");
}

/// The Job's pods that are not being deleted, and those that are.
fn pods_by_state(s: &Server, job: &str) -> (Vec<String>, Vec<String>) {
    let list = json(&s.ok_kubectl(
        K,
        &[
            "get",
            "pods",
            "-l",
            &format!("job-name={job}"),
            "-o",
            "json",
        ],
    ));
    let (mut live, mut going) = (vec![], vec![]);
    for p in list["items"].as_array().cloned().unwrap_or_default() {
        let name = p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if p["metadata"]["deletionTimestamp"].is_null() {
            live.push(name);
        } else {
            going.push(name);
        }
    }
    (live, going)
}

#[test]
fn pod_replacement_policy_and_managed_by() {
    // No node: the pods stay pending, and only this test deletes them.
    let s = Server::start_with(&["--disable-agent", "--controllers", "*,-podgc"]);
    let unscheduled = |name: &str, extra: serde_json::Value| {
        let mut j: serde_json::Value =
            serde_json::from_str(&job(name, "", "true", extra)).expect("job json");
        if let Some(spec) = j["spec"]["template"]["spec"].as_object_mut() {
            spec.remove("nodeName");
        }
        j.to_string()
    };
    s.create(
        K,
        Some("default"),
        &unscheduled(
            "elsewhere",
            serde_json::json!({"managedBy": "example.com/other"}),
        ),
    );
    s.create(
        K,
        Some("default"),
        &unscheduled(
            "patient",
            serde_json::json!({"podReplacementPolicy": "Failed"}),
        ),
    );
    s.create(
        K,
        Some("default"),
        &unscheduled("eager", serde_json::json!({})),
    );
    let first = |job: &str| {
        controllers_support::wait_for(&format!("{job}'s pod"), 60, &s, || {
            pods_by_state(&s, job).0.first().cloned()
        })
    };
    let (patient, eager) = (first("patient"), first("eager"));
    // Both pods are held by a finalizer, so deleting them leaves them terminating.
    for pod in [&patient, &eager] {
        s.ok_kubectl(
            K,
            &[
                "patch",
                "pod",
                pod,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
            ],
        );
        s.ok_kubectl(K, &["delete", "pod", pod, "--wait=false"]);
    }
    // The default policy replaces a terminating pod at once.
    controllers_support::wait_for("eager's replacement", 60, &s, || {
        let (live, going) = pods_by_state(&s, "eager");
        (live.len() == 1 && going == [eager.clone()]).then_some(())
    });
    // `Failed` waits: the terminating pod is counted, not replaced.
    let job = controllers_support::wait_for("patient's terminating count", 60, &s, || {
        let j = controllers_support::get(&s, &["job", "patient"])?;
        (j["status"]["terminating"] == 1).then_some(j)
    });
    assert_eq!(job["status"]["active"], 0, "{job}");
    assert_eq!(
        pods_by_state(&s, "patient").0,
        Vec::<String>::new(),
        "no replacement yet"
    );
    // Once the pod is gone, its replacement comes.
    s.ok_kubectl(
        K,
        &[
            "patch",
            "pod",
            &patient,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    controllers_support::wait_for("patient's replacement", 60, &s, || {
        let (live, going) = pods_by_state(&s, "patient");
        (live.len() == 1 && going.is_empty()).then_some(())
    });
    s.ok_kubectl(
        K,
        &[
            "patch",
            "pod",
            &eager,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    // A Job managed by another controller got nothing from this one, while the others did.
    assert_eq!(pods_by_state(&s, "elsewhere"), (vec![], vec![]));
    let other = controllers_support::get(&s, &["job", "elsewhere"]).expect("the job");
    assert!(
        other["status"]["active"].is_null() && other["status"]["startTime"].is_null(),
        "{other}"
    );
}
