//! Table tests of the modelled programs and lifecycle tests of the in-memory runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::types::PodMetadata;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// How a modelled program ends: exit code and after how long.
type Case = Option<(i32, Duration)>;

#[test]
fn modelled_programs() {
    let secs = Duration::from_secs;
    let cases: &[(&[&str], &str, Case)] = &[
        (&["true"], "", Some((0, Duration::ZERO))),
        (&["/bin/false"], "", Some((1, Duration::ZERO))),
        (&["sleep"], "5", Some((0, secs(5)))),
        (&["sleep", "0.5"], "", Some((0, Duration::from_millis(500)))),
        (&["sleep"], "infinity", None),
        (&["sleep"], "-1", None),
        (&["/bin/sh", "-c", "exit 3"], "", Some((3, Duration::ZERO))),
        (&["sh", "-c", "sleep 2"], "", Some((0, secs(2)))),
        (&["sh", "-c", "sleep 2; exit 1"], "", None),
        (&["nginx"], "", None),
        (&[], "", None),
        (&[], "sleep 3600", Some((0, secs(3600)))),
    ];
    for (command, args, want) in cases {
        let command: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            modelled_exit(&command, &words(args)),
            *want,
            "{command:?} {args:?}"
        );
    }
}

fn sandbox_config(uid: &str) -> SandboxConfig {
    SandboxConfig {
        metadata: PodMetadata {
            name: "p".into(),
            namespace: "default".into(),
            uid: uid.into(),
            attempt: 0,
        },
        hostname: "p".into(),
        labels: BTreeMap::from([("uid".to_owned(), uid.to_owned())]),
        ..Default::default()
    }
}

fn container_config(name: &str, command: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: crate::types::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        },
        image: "nginx:1.27".into(),
        command: words(command),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_container_runs_until_stopped() {
    let rt = SimulatedRuntime::new();
    let sb = rt.run_pod_sandbox(sandbox_config("u1")).await.unwrap();
    let c = rt
        .create_container(&sb, container_config("web", "nginx"))
        .await
        .unwrap();
    assert_eq!(
        rt.container_status(&c).await.unwrap().state,
        ContainerState::Created
    );
    rt.start_container(&c).await.unwrap();
    let st = rt.container_status(&c).await.unwrap();
    assert_eq!(st.state, ContainerState::Running);
    assert!(st.started_at.is_some());
    assert_eq!(st.image, "nginx:1.27");
    assert!(rt.start_container(&c).await.is_err(), "started twice");
    assert!(
        rt.exec_sync(&c, words("true"), Duration::from_secs(1))
            .await
            .is_ok()
    );

    rt.stop_container(&c, Duration::from_secs(30))
        .await
        .unwrap();
    let st = rt.container_status(&c).await.unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert_eq!(st.exit_code, Some(143));
    assert_eq!(st.reason, Some(ExitReason::Error));
    assert!(
        rt.exec_sync(&c, words("true"), Duration::from_secs(1))
            .await
            .is_err()
    );
    // Idempotent, as the trait's contract asks.
    rt.stop_container(&c, Duration::ZERO).await.unwrap();

    rt.remove_pod_sandbox(&sb).await.unwrap();
    assert!(matches!(
        rt.container_status(&c).await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(rt.list_pod_sandboxes().await.unwrap().is_empty());
    rt.remove_pod_sandbox(&sb).await.unwrap();
    rt.remove_container(&c).await.unwrap();
}

#[tokio::test]
async fn modelled_programs_exit_by_themselves() {
    let rt = SimulatedRuntime::new();
    let sb = rt.run_pod_sandbox(sandbox_config("u1")).await.unwrap();
    let ok = rt
        .create_container(&sb, container_config("a", "true"))
        .await
        .unwrap();
    let fails = rt
        .create_container(&sb, container_config("b", "sh -c exit"))
        .await
        .unwrap();
    let bad = rt
        .create_container(&sb, container_config("c", "false"))
        .await
        .unwrap();
    let long = rt
        .create_container(&sb, container_config("d", "sleep 3600"))
        .await
        .unwrap();
    for c in [&ok, &fails, &bad, &long] {
        rt.start_container(c).await.unwrap();
    }
    let ok = rt.container_status(&ok).await.unwrap();
    assert_eq!((ok.state, ok.exit_code), (ContainerState::Exited, Some(0)));
    assert_eq!(ok.reason, Some(ExitReason::Completed));
    // `sh -c exit` without a code is not modelled: it runs.
    let fails = rt.container_status(&fails).await.unwrap();
    assert_eq!(fails.state, ContainerState::Running);
    let bad = rt.container_status(&bad).await.unwrap();
    assert_eq!(
        (bad.exit_code, bad.reason),
        (Some(1), Some(ExitReason::Error))
    );
    assert_eq!(
        rt.container_status(&long).await.unwrap().state,
        ContainerState::Running
    );
    let exited = rt
        .list_containers(ContainerFilter {
            state: Some(ContainerState::Exited),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(exited.len(), 2);
}

#[tokio::test]
async fn stopping_the_sandbox_stops_its_containers_only() {
    let rt = SimulatedRuntime::new();
    let a = rt.run_pod_sandbox(sandbox_config("a")).await.unwrap();
    let b = rt.run_pod_sandbox(sandbox_config("b")).await.unwrap();
    let ca = rt
        .create_container(&a, container_config("x", "nginx"))
        .await
        .unwrap();
    let cb = rt
        .create_container(&b, container_config("x", "nginx"))
        .await
        .unwrap();
    rt.start_container(&ca).await.unwrap();
    rt.start_container(&cb).await.unwrap();
    rt.stop_pod_sandbox(&a).await.unwrap();
    assert_eq!(
        rt.pod_sandbox_status(&a).await.unwrap().state,
        SandboxState::NotReady
    );
    assert_eq!(
        rt.container_status(&ca).await.unwrap().state,
        ContainerState::Exited
    );
    assert_eq!(
        rt.container_status(&cb).await.unwrap().state,
        ContainerState::Running
    );
    assert!(
        rt.create_container(&a, container_config("y", "nginx"))
            .await
            .is_err(),
        "created in a stopped sandbox"
    );
    let of_b = rt
        .list_containers(ContainerFilter {
            sandbox_id: Some(b.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0].id, cb);
    let listed: Vec<_> = rt
        .list_pod_sandboxes()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.labels["uid"].clone())
        .collect();
    assert_eq!(listed, ["a", "b"]);
}

#[tokio::test]
async fn exec_streams_and_unknown_ids_are_errors() {
    let rt = SimulatedRuntime::new();
    let sb = rt.run_pod_sandbox(sandbox_config("u")).await.unwrap();
    let c = rt
        .create_container(&sb, container_config("x", "nginx"))
        .await
        .unwrap();
    rt.start_container(&c).await.unwrap();
    let err = rt.exec(&c, ExecRequest::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("not supported on simulated nodes"),
        "{err}"
    );
    // A running container reports its synthetic working set and a CPU counter that grows.
    let first = rt.container_stats(&c).await.unwrap();
    assert!(first.memory_working_set_bytes >= 4 << 20);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = rt.container_stats(&c).await.unwrap();
    assert!(second.cpu_usage_core_nanoseconds > first.cpu_usage_core_nanoseconds);
    rt.stop_container(&c, Duration::ZERO).await.unwrap();
    let stopped = rt.container_stats(&c).await.unwrap();
    assert_eq!(stopped.memory_working_set_bytes, 0);
    let ghost = ContainerId("nope".into());
    assert!(matches!(
        rt.container_stats(&ghost).await,
        Err(RuntimeError::NotFound { .. })
    ));
    assert!(matches!(
        rt.create_container(&SandboxId("nope".into()), container_config("x", "a"))
            .await,
        Err(RuntimeError::NotFound { .. })
    ));
}

#[tokio::test]
async fn forecasts_say_when_containers_exit_by_themselves() {
    let rt = SimulatedRuntime::new();
    let sb = rt.run_pod_sandbox(sandbox_config("u1")).await.unwrap();
    let server = rt
        .create_container(&sb, container_config("web", "nginx"))
        .await
        .unwrap();
    let job = rt
        .create_container(&sb, container_config("job", "sleep 3600"))
        .await
        .unwrap();
    // Not started yet: neither exits on its own.
    assert_eq!(rt.exit_forecast(&job).await, ExitForecast::Never);
    rt.start_container(&server).await.unwrap();
    rt.start_container(&job).await.unwrap();
    assert_eq!(rt.exit_forecast(&server).await, ExitForecast::Never);
    let started = rt.container_status(&job).await.unwrap().started_at.unwrap();
    assert_eq!(
        rt.exit_forecast(&job).await,
        ExitForecast::At(started + Duration::from_secs(3600))
    );
    // Stopped: it exited when it was stopped.
    rt.stop_container(&server, Duration::ZERO).await.unwrap();
    let finished = rt
        .container_status(&server)
        .await
        .unwrap()
        .finished_at
        .unwrap();
    assert_eq!(rt.exit_forecast(&server).await, ExitForecast::At(finished));
    // Unknown ids: the runtime cannot tell.
    let gone = ContainerId("sim-none".into());
    assert_eq!(rt.exit_forecast(&gone).await, ExitForecast::Unknown);
}

#[tokio::test]
async fn two_runtimes_never_share_an_id() {
    let (a, b) = (SimulatedRuntime::new(), SimulatedRuntime::new());
    let sa = a.run_pod_sandbox(sandbox_config("u1")).await.unwrap();
    let sb = b.run_pod_sandbox(sandbox_config("u2")).await.unwrap();
    assert_ne!(sa, sb);
}
