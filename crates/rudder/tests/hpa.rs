//! End to end, as root: a HorizontalPodAutoscaler created by `kubectl autoscale` scales a
//! Deployment of busybox pods that burn CPU up to `--max`, reports why (conditions, current
//! metrics, `SuccessfulRescale` events in `kubectl describe`), and scales it back to `--min`
//! once the pods go idle — metrics from the server's own `metrics.k8s.io`, nothing installed.

mod common;

use common::node::{import_busybox, wait_for};
use common::{KUBECTLS, Server, json};

const NS: &str = "hpa";

fn deployment(script: &str) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "burn"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {
                "metadata": {"labels": {"app": "burn"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", script],
                        "resources": {"requests": {"cpu": "100m"}},
                    }],
                },
            },
        },
    })
    .to_string()
}

fn hpa(s: &Server, k: &str) -> serde_json::Value {
    json(&s.ok_kubectl(
        k,
        &[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "burn",
            "-n",
            NS,
            "-o",
            "json",
        ],
    ))
}

fn condition<'a>(hpa: &'a serde_json::Value, type_: &str) -> &'a serde_json::Value {
    hpa["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&serde_json::Value::Null)
}

#[test]
fn cpu_load_scales_a_deployment_out_and_idleness_back_in() {
    let s = Server::start_with(&[
        "--metric-resolution",
        "2s",
        "--horizontal-pod-autoscaler-sync-period",
        "2s",
    ]);
    let oldest = KUBECTLS[0];
    let newest = KUBECTLS[KUBECTLS.len() - 1];
    import_busybox(s.dir.path(), &s.data_dir());
    s.namespace(newest, NS);
    s.create(newest, Some(NS), &deployment("while :; do :; done"));
    // kubectl 1.27 creates an autoscaling/v1 object; the controller reads it as v2.
    s.ok_kubectl(
        oldest,
        &[
            "autoscale",
            "deployment",
            "burn",
            "-n",
            NS,
            "--min=1",
            "--max=3",
            "--cpu-percent=50",
        ],
    );

    // One pod burning a whole core against 50% of 100m asks for far more than 3.
    let scaled = wait_for("the HPA to scale the Deployment to its max", 180, || {
        let h = hpa(&s, newest);
        (h["status"]["desiredReplicas"] == 3).then_some(h)
    });
    let limited = condition(&scaled, "ScalingLimited");
    assert_eq!(limited["status"], "True", "{scaled}");
    assert_eq!(limited["reason"], "TooManyReplicas", "{scaled}");
    assert_eq!(
        condition(&scaled, "ScalingActive")["reason"],
        "ValidMetricFound"
    );
    let current = &scaled["status"]["currentMetrics"][0]["resource"];
    assert_eq!(current["name"], "cpu");
    assert!(
        current["current"]["averageUtilization"]
            .as_i64()
            .is_some_and(|u| u > 100),
        "a burning pod is far above its request: {scaled}"
    );
    assert!(scaled["status"]["lastScaleTime"].is_string());
    wait_for("the Deployment at 3 replicas", 60, || {
        let d = json(&s.ok_kubectl(
            newest,
            &["get", "deployment", "burn", "-n", NS, "-o", "json"],
        ));
        (d["spec"]["replicas"] == 3).then_some(())
    });
    let described = s.ok_kubectl(newest, &["describe", "hpa", "burn", "-n", NS]);
    assert!(
        described.contains("SuccessfulRescale")
            && described.contains("cpu resource utilization (percentage of request) above target"),
        "{described}"
    );
    // The v1 view shows the same state.
    let v1 = json(&s.ok_kubectl(
        oldest,
        &[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "burn",
            "-n",
            NS,
            "-o",
            "json",
        ],
    ));
    assert_eq!(v1["status"]["desiredReplicas"], 3);
    assert!(
        v1["status"]["currentCPUUtilizationPercentage"]
            .as_i64()
            .is_some_and(|u| u > 100)
    );

    // Idle pods, no scale-down stabilization: back to --min.
    s.ok_kubectl(
        newest,
        &[
            "patch",
            "horizontalpodautoscalers.v2.autoscaling",
            "burn",
            "-n",
            NS,
            "--type=merge",
            "-p",
            r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":0}}}}"#,
        ],
    );
    s.ok_kubectl(
        newest,
        &[
            "patch",
            "deployment",
            "burn",
            "-n",
            NS,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/command","value":["sh","-c","sleep 3600"]}]"#,
        ],
    );
    wait_for("the HPA to scale back to its min", 240, || {
        let h = hpa(&s, newest);
        (h["status"]["desiredReplicas"] == 1 && h["status"]["currentReplicas"] == 1).then_some(())
    });
    let described = s.ok_kubectl(newest, &["describe", "hpa", "burn", "-n", NS]);
    assert!(
        described.contains("All metrics below target"),
        "{described}"
    );
}
