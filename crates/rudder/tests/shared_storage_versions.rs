//! End to end with real kubectl: kinds served at two versions are stored once, as upstream does.
//! An `autoscaling/v1` HorizontalPodAutoscaler (what `kubectl autoscale` 1.27–1.32 creates)
//! reads as `autoscaling/v2` with the CPU target as a metric and back; core/v1 Events and
//! `events.k8s.io/v1` Events are two views of the same objects, field selectors included;
//! Events, which the watch cache leaves to the store, are watched like any kind; and Events
//! expire after `--event-ttl`.

mod common;
mod controllers_support;

use common::Server;
use controllers_support::{K, get, wait_for};

const OLDEST: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
const NEWEST: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
  "spec":{"replicas":0,"selector":{"matchLabels":{"app":"web"}},
  "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#;

#[test]
fn autoscaling_v1_and_v2_are_one_object() {
    let s = Server::start_with(&["--disable-agent", "--disable-controllers"]);
    s.create(K, Some("default"), DEPLOYMENT);
    // kubectl 1.27 creates an autoscaling/v1 object.
    s.ok_kubectl(
        OLDEST,
        &[
            "autoscale",
            "deployment",
            "web",
            "--min=2",
            "--max=5",
            "--cpu-percent=60",
        ],
    );
    let v2 =
        get(&s, &["horizontalpodautoscalers.v2.autoscaling", "web"]).expect("the HPA read as v2");
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["minReplicas"], 2);
    let metric = &v2["spec"]["metrics"][0];
    assert_eq!(metric["resource"]["name"], "cpu");
    assert_eq!(metric["resource"]["target"]["averageUtilization"], 60);
    assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());

    // A v2-only field written through v2 survives a read-modify-write through v1.
    s.ok_kubectl(
        K,
        &[
            "patch",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":30}},
               "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":70}}},
                          {"type":"Resource","resource":{"name":"memory","target":{"type":"AverageValue","averageValue":"64Mi"}}}]}}"#,
        ],
    );
    let v1 =
        get(&s, &["horizontalpodautoscalers.v1.autoscaling", "web"]).expect("the HPA read as v1");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    s.ok_kubectl(
        OLDEST,
        &[
            "patch",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"maxReplicas":7}}"#,
        ],
    );
    let v2 = get(&s, &["horizontalpodautoscalers.v2.autoscaling", "web"])
        .expect("the HPA read as v2 again");
    assert_eq!(v2["spec"]["maxReplicas"], 7);
    assert_eq!(
        v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        30
    );
    assert_eq!(v2["spec"]["metrics"][1]["resource"]["name"], "memory");
    assert!(
        v2["metadata"].get("annotations").is_none(),
        "the v1 carrier annotations do not leak into v2: {v2}"
    );
    // The default listing (v2, the preferred version) shows the one object.
    let table = s.ok_kubectl(NEWEST, &["get", "hpa"]);
    assert!(
        table.contains("web") && table.contains("Deployment/web"),
        "{table}"
    );
}

#[test]
fn core_and_events_k8s_io_events_are_one_object() {
    let s = Server::start_with(&["--disable-agent", "--disable-controllers"]);
    s.create(
        K,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"core-made"},
            "involvedObject":{"kind":"ConfigMap","name":"cfg","namespace":"default"},
            "reason":"Tested","message":"written as core/v1","type":"Normal","count":3,
            "firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2099-01-01T00:00:00Z",
            "source":{"component":"tester"}}"#,
    );
    s.create(
        K,
        Some("default"),
        r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"new-made"},
            "eventTime":"2099-01-01T00:00:00.000000Z","reportingController":"example.com/op",
            "reportingInstance":"op-1","action":"Sync","reason":"Synced","note":"written as events.k8s.io",
            "type":"Warning","regarding":{"kind":"Pod","name":"web","namespace":"default"}}"#,
    );
    let as_new =
        get(&s, &["events.v1.events.k8s.io", "core-made"]).expect("core event as events.k8s.io");
    assert_eq!(as_new["apiVersion"], "events.k8s.io/v1");
    assert_eq!(as_new["note"], "written as core/v1");
    assert_eq!(as_new["regarding"]["name"], "cfg");
    assert_eq!(as_new["deprecatedCount"], 3);
    let as_core = get(&s, &["events", "new-made"]).expect("events.k8s.io event as core");
    assert_eq!(as_core["apiVersion"], "v1");
    assert_eq!(as_core["message"], "written as events.k8s.io");
    assert_eq!(as_core["involvedObject"]["kind"], "Pod");
    assert_eq!(as_core["reportingComponent"], "example.com/op");

    // Both lists hold both events; field selectors use each version's own field names.
    for (kubectl, resource) in [(K, "events"), (OLDEST, "events.v1.events.k8s.io")] {
        let out = s.ok_kubectl(kubectl, &["get", resource, "-o", "name"]);
        assert!(
            out.contains("core-made") && out.contains("new-made"),
            "{resource}: {out}"
        );
    }
    let by_core = s.ok_kubectl(
        K,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
            "-o",
            "name",
        ],
    );
    assert!(
        by_core.contains("new-made") && !by_core.contains("core-made"),
        "{by_core}"
    );
    let by_new = s.ok_kubectl(
        NEWEST,
        &[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "regarding.name=cfg,type=Normal",
            "-o",
            "name",
        ],
    );
    assert!(
        by_new.contains("core-made") && !by_new.contains("new-made"),
        "{by_new}"
    );
    // kubectl's own `events` command (it reads events.k8s.io when served) sees both.
    let events = s.ok_kubectl(NEWEST, &["events", "-n", "default"]);
    assert!(
        events.contains("written as core/v1") && events.contains("written as events.k8s.io"),
        "{events}"
    );
    // A delete through one view removes the object from both.
    s.ok_kubectl(K, &["delete", "events.v1.events.k8s.io", "core-made"]);
    assert!(get(&s, &["events", "core-made"]).is_none());
}

fn event(name: &str, regarding: &str, message: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"{name}"}},
        "involvedObject":{{"kind":"Pod","name":"{regarding}","namespace":"default"}},
        "reason":"R","message":"{message}","type":"Normal","lastTimestamp":"2099-01-01T00:00:00Z"}}"#
    )
}

#[test]
fn events_are_watched_from_the_store() {
    let s = Server::start_with(&["--disable-agent", "--disable-controllers"]);
    s.create(
        K,
        Some("default"),
        &event("before", "web", "written before the watch"),
    );
    for kubectl in [OLDEST, NEWEST] {
        // `-w` lists, then watches from the list's resourceVersion; the field selector must
        // hold on the watch too (events of `db` never show).
        let mut all = s.kubectl_stream(
            kubectl,
            &["get", "events", "-n", "default", "-w", "-o", "name"],
        );
        let mut web = s.kubectl_stream(
            kubectl,
            &[
                "get",
                "events",
                "-n",
                "default",
                "-w",
                "-o",
                "name",
                "--field-selector",
                "involvedObject.name=web",
            ],
        );
        all.until("the listed event", |l| {
            l.iter().any(|l| l.contains("event/before"))
        });
        let name = format!("during-{}", kubectl.rsplit('.').next().unwrap_or("k"));
        s.create(K, Some("default"), &event(&name, "web", "first"));
        s.create(
            K,
            Some("default"),
            &event(&format!("{name}-db"), "db", "other object"),
        );
        s.ok_kubectl(
            K,
            &[
                "patch",
                "event",
                &name,
                "--type",
                "merge",
                "-p",
                r#"{"message":"second"}"#,
            ],
        );
        s.ok_kubectl(K, &["delete", "event", &name]);
        // `-o name` prints no event type: one line each for ADDED, MODIFIED and DELETED.
        let seen = all.until("added, modified, deleted", |l| {
            l.iter()
                .filter(|l| l.ends_with(&format!("event/{name}")))
                .count()
                == 3
        });
        assert!(
            seen.iter().any(|l| l.contains(&format!("{name}-db"))),
            "{seen:?}"
        );
        let seen = web.until("the matching event", |l| {
            l.iter().any(|l| l.ends_with(&format!("event/{name}")))
        });
        assert!(!seen.iter().any(|l| l.contains("-db")), "{seen:?}");
    }
}

#[test]
fn events_expire_after_the_ttl() {
    let s = Server::start_with(&[
        "--disable-agent",
        "--disable-controllers",
        "--event-ttl",
        "3s",
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = |secs: u64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // One event last written long ago, one that keeps being "bumped" into the future.
    for (name, last) in [("old", stamp(now - 600)), ("fresh", stamp(now + 3600))] {
        s.create(
            K,
            Some("default"),
            &format!(
                r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"{name}"}},
                "involvedObject":{{"kind":"Pod","name":"p"}},"reason":"R","message":"m",
                "lastTimestamp":"{last}"}}"#
            ),
        );
    }
    wait_for("the old event expired", 60, &s, || {
        get(&s, &["events", "old"]).is_none().then_some(())
    });
    assert!(
        get(&s, &["events", "fresh"]).is_some(),
        "a recently written event stays"
    );
}
