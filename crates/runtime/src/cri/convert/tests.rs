//! Table tests of the CRI mapping: each rule with the inputs that tell it apart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use k8s_cri::v1 as cri;

use super::*;
use crate::types::{Mount, Resources, SecurityConfig};

fn layout() -> Layout {
    Layout {
        cgroup_root: "rudder".into(),
        log_root: PathBuf::from("/var/lib/rudder/cri-logs"),
    }
}

fn sandbox(host_network: bool, log_directory: Option<&str>) -> SandboxConfig {
    sandbox_sharing(host_network, log_directory, false)
}

fn sandbox_sharing(
    host_network: bool,
    log_directory: Option<&str>,
    share_pid_namespace: bool,
) -> SandboxConfig {
    SandboxConfig {
        metadata: PodMetadata {
            name: "web".into(),
            namespace: "default".into(),
            uid: "1234-abcd".into(),
            attempt: 2,
        },
        hostname: "web".into(),
        log_directory: log_directory.map(PathBuf::from),
        labels: BTreeMap::from([("app".into(), "web".into())]),
        annotations: BTreeMap::from([("note".into(), "x".into())]),
        host_network,
        share_pid_namespace,
    }
}

#[test]
fn cgroup_parents_and_log_directories() {
    let l = layout();
    for (uid, want) in [
        ("1234-abcd", "/rudder/pod1234-abcd"),
        ("a/b c", "/rudder/poda_b_c"),
        ("", "/rudder/pod"),
    ] {
        assert_eq!(l.cgroup_parent(uid), want, "{uid:?}");
    }
    let l2 = Layout {
        cgroup_root: "/nested/root/".into(),
        ..layout()
    };
    assert_eq!(l2.cgroup_parent("u"), "/nested/root/podu");
    assert_eq!(
        l.log_directory(&sandbox(false, None)),
        PathBuf::from("/var/lib/rudder/cri-logs/default_web_1234-abcd")
    );
    assert_eq!(
        l.log_directory(&sandbox(false, Some("/var/log/pods/x"))),
        PathBuf::from("/var/log/pods/x")
    );
}

#[test]
fn sandbox_configs_carry_what_create_container_needs_back() {
    for (host_network, log_dir, share_pid, want_mode, want_pid) in [
        (
            false,
            None,
            false,
            cri::NamespaceMode::Pod,
            cri::NamespaceMode::Container,
        ),
        (
            true,
            Some("/var/log/pods/p"),
            false,
            cri::NamespaceMode::Node,
            cri::NamespaceMode::Container,
        ),
        // shareProcessNamespace: the pause container's PID namespace is the pod's.
        (
            false,
            None,
            true,
            cri::NamespaceMode::Pod,
            cri::NamespaceMode::Pod,
        ),
    ] {
        let config = sandbox_sharing(host_network, log_dir, share_pid);
        let c = pod_sandbox_config(&config, &layout());
        let ns = c
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .expect("namespace options");
        assert_eq!(ns.network, want_mode as i32);
        assert_eq!(ns.pid, want_pid as i32);
        assert_eq!(c.hostname, if host_network { "" } else { "web" });
        assert_eq!(c.metadata.as_ref().map(|m| m.attempt), Some(2));
        assert_eq!(
            c.linux.as_ref().map(|l| l.cgroup_parent.as_str()),
            Some("/rudder/pod1234-abcd")
        );

        // What the runtime hands back reconstructs the same config, without rudder's keys.
        let status = cri::PodSandboxStatus {
            id: "sb1".into(),
            metadata: c.metadata.clone(),
            state: cri::PodSandboxState::SandboxReady as i32,
            created_at: 1_500_000_000,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: "10.42.0.7".into(),
                ..Default::default()
            }),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            ..Default::default()
        };
        let info = VerboseInfo {
            pid: Some(42),
            netns: Some("/var/run/netns/cni-1".into()),
        };
        let s = sandbox_status(&status, &info);
        assert_eq!(s.annotations, config.annotations);
        assert_eq!(s.labels, config.labels);
        assert_eq!(s.hostname, "web");
        assert_eq!(s.log_directory, config.log_directory);
        assert_eq!(s.state, SandboxState::Ready);
        assert_eq!(s.pid, Some(42));
        assert_eq!(
            s.created_at,
            UNIX_EPOCH + Duration::from_nanos(1_500_000_000)
        );
        if host_network {
            assert_eq!((s.netns_path.clone(), s.ip.clone()), (None, None));
        } else {
            assert_eq!(
                s.netns_path.as_deref(),
                Some(Path::new("/var/run/netns/cni-1"))
            );
            assert_eq!(s.ip.as_deref(), Some("10.42.0.7"));
        }
        let back = sandbox_config_of(&s, &status.annotations);
        assert_eq!(back.host_network, host_network);
        assert_eq!(back.share_pid_namespace, share_pid);
        assert_eq!(
            pod_sandbox_config(&back, &layout()),
            c,
            "the round trip changes the config"
        );
    }
}

#[test]
fn a_stopped_sandbox_has_no_pid_netns_or_address() {
    let status = cri::PodSandboxStatus {
        id: "sb".into(),
        state: cri::PodSandboxState::SandboxNotready as i32,
        network: Some(cri::PodSandboxNetworkStatus {
            ip: "10.42.0.9".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let info = VerboseInfo {
        pid: Some(9),
        netns: Some("/x".into()),
    };
    let s = sandbox_status(&status, &info);
    assert_eq!(s.state, SandboxState::NotReady);
    assert_eq!((s.pid, s.netns_path, s.ip), (None, None, None));
}

#[test]
fn verbose_info_of_containerd() {
    let with = |json: &str| HashMap::from([("info".to_owned(), json.to_owned())]);
    for (info, want) in [
        (
            with(
                r#"{"pid": 77, "runtimeSpec": {"linux": {"namespaces": [
                {"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-9"}]}}}"#,
            ),
            VerboseInfo {
                pid: Some(77),
                netns: Some("/var/run/netns/cni-9".into()),
            },
        ),
        // Host network: no network namespace in the spec. Exited: pid 0.
        (
            with(r#"{"pid": 0, "runtimeSpec": {"linux": {"namespaces": [{"type": "ipc"}]}}}"#),
            VerboseInfo::default(),
        ),
        (with("not json"), VerboseInfo::default()),
        (HashMap::new(), VerboseInfo::default()),
    ] {
        assert_eq!(verbose_info(&info), want, "{info:?}");
    }
}

#[test]
fn capabilities_lose_the_prefix_and_gain_upper_case() {
    for (name, want) in [
        ("NET_ADMIN", "NET_ADMIN"),
        ("CAP_CHOWN", "CHOWN"),
        ("cap_sys_time", "SYS_TIME"),
        ("ALL", "ALL"),
        ("all", "ALL"),
    ] {
        assert_eq!(capability(name), want);
    }
}

#[test]
fn container_configs() {
    let config = ContainerConfig {
        metadata: ContainerMetadata {
            name: "app".into(),
            attempt: 3,
        },
        image: "busybox:1.36".into(),
        command: vec!["sh".into()],
        args: vec!["-c".into(), "true".into()],
        working_dir: Some("/w".into()),
        env: vec![("A".into(), "1".into())],
        mounts: vec![Mount {
            container_path: "/data".into(),
            host_path: "/host/data".into(),
            readonly: true,
        }],
        resources: Resources {
            cpu_shares: Some(512),
            cpu_quota_us: Some(50_000),
            cpu_period_us: None,
            memory_limit_bytes: Some(64 << 20),
            pids_limit: None,
        },
        security: SecurityConfig {
            run_as_user: Some(1000),
            run_as_group: Some(1001),
            supplemental_groups: vec![5],
            privileged: false,
            read_only_root_filesystem: true,
            capabilities_add: vec!["CAP_NET_ADMIN".into()],
            capabilities_drop: vec!["ALL".into()],
            allow_privilege_escalation: false,
        },
        ..Default::default()
    };
    let c = container_config(&config, &SandboxId("sb".into()));
    assert_eq!(c.log_path, "app/3.log");
    assert_eq!(c.working_dir, "/w");
    assert_eq!(
        c.annotations.get(SANDBOX_ID).map(String::as_str),
        Some("sb")
    );
    assert_eq!(c.envs[0].key, "A");
    assert!(c.mounts[0].readonly);
    assert!(!c.tty && !c.stdin && !c.annotations.contains_key(TTY));
    let on_terminal = ContainerConfig {
        stdin: true,
        stdin_once: true,
        tty: true,
        ..config.clone()
    };
    let t = container_config(&on_terminal, &SandboxId("sb".into()));
    assert!(t.tty && t.stdin && t.stdin_once);
    assert_eq!(t.annotations.get(TTY).map(String::as_str), Some("true"));
    let linux = c.linux.as_ref().expect("linux");
    let r = linux.resources.as_ref().expect("resources");
    // A quota without a period gets the CFS default period.
    assert_eq!(
        (
            r.cpu_shares,
            r.cpu_quota,
            r.cpu_period,
            r.memory_limit_in_bytes
        ),
        (512, 50_000, 100_000, 64 << 20)
    );
    let sc = linux.security_context.as_ref().expect("security");
    assert_eq!(sc.run_as_user.as_ref().map(|v| v.value), Some(1000));
    assert_eq!(sc.run_as_group.as_ref().map(|v| v.value), Some(1001));
    assert!(sc.readonly_rootfs && sc.no_new_privs && !sc.privileged);
    let caps = sc.capabilities.as_ref().expect("caps");
    assert_eq!(caps.add_capabilities, ["NET_ADMIN"]);
    assert_eq!(caps.drop_capabilities, ["ALL"]);

    // Defaults: no limits, escalation allowed, a privileged container never gets no_new_privs.
    for (allow, privileged, want_nnp) in [(true, false, false), (false, true, false)] {
        let mut cfg = ContainerConfig::default();
        cfg.security.allow_privilege_escalation = allow;
        cfg.security.privileged = privileged;
        let c = container_config(&cfg, &SandboxId("sb".into()));
        let linux = c.linux.expect("linux");
        let r = linux.resources.expect("resources");
        assert_eq!(
            (r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes),
            (0, 0, 0)
        );
        assert_eq!(linux.security_context.expect("sc").no_new_privs, want_nnp);
    }
}

#[test]
fn pid_namespace_options() {
    let target = ContainerId("c0ffee".into());
    for (mode, want_pid, want_target) in [
        (PidNamespace::Container, cri::NamespaceMode::Container, ""),
        (PidNamespace::Pod, cri::NamespaceMode::Pod, ""),
        (
            PidNamespace::Target(target.clone()),
            cri::NamespaceMode::Target,
            "c0ffee",
        ),
    ] {
        let cfg = ContainerConfig {
            pid_namespace: mode.clone(),
            ..Default::default()
        };
        let ns = container_config(&cfg, &SandboxId("sb".into()))
            .linux
            .and_then(|l| l.security_context)
            .and_then(|s| s.namespace_options)
            .expect("namespace options");
        assert_eq!(
            (ns.pid, ns.target_id.as_str()),
            (want_pid as i32, want_target),
            "{mode:?}"
        );
        // The pod's network and IPC namespaces whatever the PID mode.
        assert_eq!(
            (ns.network, ns.ipc),
            (
                cri::NamespaceMode::Pod as i32,
                cri::NamespaceMode::Pod as i32
            ),
            "{mode:?}"
        );
    }
}

#[test]
fn exit_reasons() {
    for (reason, code, want) in [
        ("Completed", 0, ExitReason::Completed),
        ("Error", 1, ExitReason::Error),
        ("OOMKilled", 137, ExitReason::OomKilled),
        ("StartError", 128, ExitReason::StartError),
        ("", 0, ExitReason::Completed),
        ("", 2, ExitReason::Error),
        ("SomethingElse", 143, ExitReason::Error),
    ] {
        assert_eq!(exit_reason(reason, code), want, "{reason} {code}");
    }
}

#[test]
fn container_statuses() {
    let mut s = cri::ContainerStatus {
        id: "c1".into(),
        metadata: Some(cri::ContainerMetadata {
            name: "app".into(),
            attempt: 1,
        }),
        state: cri::ContainerState::ContainerRunning as i32,
        created_at: 1,
        started_at: 2,
        finished_at: 0,
        exit_code: 0,
        image: Some(cri::ImageSpec {
            image: "docker.io/library/busybox:1.36".into(),
            ..Default::default()
        }),
        image_ref: "docker.io/library/busybox@sha256:abc".into(),
        log_path: "/logs/app/1.log".into(),
        annotations: HashMap::from([
            (SANDBOX_ID.to_owned(), "sb".to_owned()),
            ("mine".to_owned(), "1".to_owned()),
        ]),
        ..Default::default()
    };
    let info = VerboseInfo {
        pid: Some(5),
        netns: None,
    };
    let st = container_status(&s, &info, Some("sha256:cfg".into()));
    assert_eq!(st.state, ContainerState::Running);
    assert_eq!(st.sandbox_id, SandboxId("sb".into()));
    assert_eq!((st.pid, st.exit_code, st.reason), (Some(5), None, None));
    assert_eq!(st.image_ref, "sha256:abc");
    assert_eq!(st.image_id, "sha256:cfg");
    assert_eq!(st.finished_at, None);
    assert_eq!(
        st.annotations,
        BTreeMap::from([("mine".into(), "1".into())])
    );
    assert_eq!(st.log_path, PathBuf::from("/logs/app/1.log"));

    // Exited: the code and reason show, the pid does not; the runtime's own image_id wins.
    s.state = cri::ContainerState::ContainerExited as i32;
    s.exit_code = 137;
    s.reason = "OOMKilled".into();
    s.finished_at = 3;
    s.image_id = "sha256:own".into();
    let st = container_status(&s, &info, Some("sha256:cfg".into()));
    assert_eq!(
        (st.state, st.pid, st.exit_code, st.reason),
        (
            ContainerState::Exited,
            None,
            Some(137),
            Some(ExitReason::OomKilled)
        )
    );
    assert_eq!(st.image_id, "sha256:own");
    assert!(st.finished_at.is_some());

    // Unknown is reported as exited for an unknown reason; Created has no code.
    s.state = cri::ContainerState::ContainerUnknown as i32;
    let st = container_status(&s, &info, None);
    assert_eq!(
        (st.state, st.reason),
        (ContainerState::Exited, Some(ExitReason::Unknown))
    );
    s.state = cri::ContainerState::ContainerCreated as i32;
    let st = container_status(&s, &info, None);
    assert_eq!(
        (st.state, st.exit_code, st.pid),
        (ContainerState::Created, None, None)
    );
}

#[test]
fn stats() {
    let id = ContainerId("c".into());
    let v = |n| Some(cri::UInt64Value { value: n });
    let mut s = cri::ContainerStats {
        cpu: Some(cri::CpuUsage {
            timestamp: 10,
            usage_core_nano_seconds: v(500),
            ..Default::default()
        }),
        memory: Some(cri::MemoryUsage {
            timestamp: 11,
            working_set_bytes: v(100),
            usage_bytes: v(300),
            ..Default::default()
        }),
        ..Default::default()
    };
    let st = container_stats(&id, &s).expect("stats");
    assert_eq!(
        (
            st.cpu_usage_core_nanoseconds,
            st.memory_working_set_bytes,
            st.memory_usage_bytes
        ),
        (500, 100, 300)
    );
    assert_eq!(st.timestamp, UNIX_EPOCH + Duration::from_nanos(11));
    if let Some(m) = s.memory.as_mut() {
        m.usage_bytes = None;
    }
    assert_eq!(
        container_stats(&id, &s).map(|s| s.memory_usage_bytes),
        Some(100)
    );
    s.cpu = None;
    assert_eq!(container_stats(&id, &s), None);
}

#[test]
fn exec_statuses() {
    for (json, want) in [
        (r#"{"metadata":{},"status":"Success"}"#, Ok(0)),
        (
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#,
            Ok(7),
        ),
        (
            r#"{"metadata":{},"status":"Failure","message":"exec: \"nope\": executable file not found in $PATH"}"#,
            Err("exec: \"nope\": executable file not found in $PATH".to_owned()),
        ),
    ] {
        assert_eq!(exec_exit_code(json.as_bytes()), want, "{json}");
    }
    assert!(exec_exit_code(b"{").is_err());
}

#[test]
fn times() {
    assert_eq!(time(0), None);
    assert_eq!(time(-5), None);
    assert_eq!(time(7), Some(UNIX_EPOCH + Duration::from_nanos(7)));
}
