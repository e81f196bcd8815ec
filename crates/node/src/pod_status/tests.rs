//! Table tests of pod phase and status.

use super::*;

fn t(s: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("time"))
}

fn view(name: &str, state: State) -> ContainerView {
    ContainerView {
        name: name.into(),
        image: "busybox:1.36".into(),
        image_id: String::new(),
        container_id: None,
        state,
        last_terminated: None,
        restart_count: 0,
        ready: true,
        started: true,
    }
}

fn exited(code: i32) -> State {
    State::Terminated(Terminated {
        exit_code: code,
        reason: if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        },
        message: None,
        started_at: Some(t(1)),
        finished_at: Some(t(2)),
        container_id: None,
    })
}

fn running() -> State {
    State::Running { started_at: t(1) }
}

fn creating() -> State {
    State::Waiting {
        reason: "ContainerCreating".into(),
        message: None,
    }
}

#[test]
fn phases() {
    let backoff = ContainerView {
        state: State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        },
        last_terminated: match exited(1) {
            State::Terminated(x) => Some(x),
            _ => None,
        },
        ..view("a", creating())
    };
    let cases: Vec<(&str, Vec<ContainerView>, Vec<ContainerView>, &str)> = vec![
        ("Always", vec![], vec![view("a", creating())], "Pending"),
        (
            "Always",
            vec![view("i", running())],
            vec![view("a", creating())],
            "Pending",
        ),
        (
            "Never",
            vec![view("i", exited(1))],
            vec![view("a", creating())],
            "Failed",
        ),
        (
            "Always",
            vec![view("i", exited(0))],
            vec![view("a", running())],
            "Running",
        ),
        (
            "Never",
            vec![],
            vec![view("a", exited(0)), view("b", exited(0))],
            "Succeeded",
        ),
        (
            "Never",
            vec![],
            vec![view("a", exited(0)), view("b", exited(2))],
            "Failed",
        ),
        ("OnFailure", vec![], vec![view("a", exited(2))], "Running"),
        ("OnFailure", vec![], vec![view("a", exited(0))], "Succeeded"),
        ("Always", vec![], vec![view("a", exited(0))], "Running"),
        ("Always", vec![], vec![backoff], "Running"),
        (
            "Never",
            vec![],
            vec![view("a", running()), view("b", exited(0))],
            "Running",
        ),
    ];
    for (policy, init, app, want) in cases {
        assert_eq!(
            phase(policy, &init, &app),
            want,
            "{policy} {init:?} {app:?}"
        );
    }
}

#[test]
fn status_conditions_and_container_statuses() {
    let previous = PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    };
    let app = vec![view("a", running())];
    let observed = |app, pod_ip| Observed {
        restart_policy: "Always",
        init: &[],
        app,
        sandbox_ready: true,
        host_ip: "10.0.0.5",
        pod_ip,
    };
    let s = pod_status(&previous, &observed(&app, Some("10.244.0.3")), &t(100));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let conds: Vec<(String, String)> = s
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    for want in [
        "PodScheduled",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodReadyToStartContainers",
    ] {
        assert!(
            conds.contains(&(want.to_owned(), "True".to_owned())),
            "{want}: {conds:?}"
        );
    }
    let cs = &s.container_statuses.clone().unwrap_or_default()[0];
    assert!(cs.ready && cs.state.as_ref().is_some_and(|st| st.running.is_some()));
    assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.3"));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(s.start_time, Some(t(100)));

    // Not ready: Ready=False with ContainersNotReady; transition time kept on the next report.
    let unready = vec![ContainerView {
        ready: false,
        ..view("a", running())
    }];
    let s1 = pod_status(&s, &observed(&unready, None), &t(200));
    let s2 = pod_status(&s1, &observed(&unready, None), &t(300));
    let ready = |s: &PodStatus| {
        s.conditions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready")
    };
    assert_eq!(ready(&s1).reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(ready(&s2).last_transition_time, Some(t(200)));
    assert_eq!(s2.start_time, Some(t(100)));
}
