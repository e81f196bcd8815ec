//! Table tests of the Pod → runtime config translation.

use serde_json::json;

use super::*;

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).expect("pod")
}

fn web() -> Pod {
    pod(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "n1",
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c"], "args": ["echo $(GREETING) $$HOME $(NOPE)"],
                "env": [
                    {"name": "GREETING", "value": "hello"},
                    {"name": "FULL", "value": "$(GREETING) world"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope", "optional": true}}},
                ],
                "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
                "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                    "allowPrivilegeEscalation": false},
            }],
        },
    }))
}

fn sources() -> EnvSources {
    EnvSources {
        config_maps: BTreeMap::from([(
            "cfg".into(),
            BTreeMap::from([("color".into(), "blue".into())]),
        )]),
        secrets: BTreeMap::from([(
            "sec".into(),
            BTreeMap::from([("pw".into(), "hunter2".into())]),
        )]),
        ..Default::default()
    }
}

#[test]
fn container_config_from_a_pod() {
    let p = web();
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let ctx = PodContext {
        host_ip: "10.0.0.5".into(),
        pod_ip: "10.244.0.7".into(),
    };
    let cfg = container_config(&p, c, 2, &ctx, &sources()).expect("config");
    assert_eq!(cfg.command, ["sh", "-c"]);
    assert_eq!(cfg.args, ["echo hello $HOME $(NOPE)"]);
    let env: BTreeMap<_, _> = cfg.env.iter().cloned().collect();
    let cases = [
        ("GREETING", "hello"),
        ("FULL", "hello world"),
        ("POD", "web"),
        ("APP", "web"),
        ("IP", "10.244.0.7"),
        ("COLOR", "blue"),
        ("PW", "hunter2"),
    ];
    for (k, v) in cases {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!env.contains_key("OPT"));
    assert_eq!(cfg.metadata.attempt, 2);
    assert_eq!(cfg.labels[labels::CONTAINER_NAME], "main");
    assert_eq!(cfg.labels[labels::POD_UID], "u-1");
    assert_eq!(cfg.resources.cpu_shares, Some(256));
    assert_eq!(cfg.resources.cpu_quota_us, Some(50_000));
    assert_eq!(cfg.resources.memory_limit_bytes, Some(64 << 20));
    assert_eq!(cfg.security.run_as_user, Some(1001));
    assert_eq!(cfg.security.supplemental_groups, [2000]);
    assert!(cfg.security.read_only_root_filesystem && !cfg.security.allow_privilege_escalation);
    assert_eq!(cfg.security.capabilities_drop, ["ALL"]);
}

#[test]
fn missing_references_are_config_errors() {
    let p = web();
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let err = container_config(&p, c, 0, &PodContext::default(), &EnvSources::default());
    assert_eq!(
        err.err(),
        Some(SpecError::MissingKey {
            kind: "configmap",
            name: "cfg".into(),
            key: "color".into()
        })
    );
}

#[test]
fn expansion_rules() {
    let vars = BTreeMap::from([("A".to_owned(), "x".to_owned())]);
    let cases = [
        ("$(A)", "x"),
        ("$$(A)", "$(A)"),
        ("$(B)", "$(B)"),
        ("a$b", "a$b"),
        ("$(A", "$(A"),
        ("pre-$(A)-post", "pre-x-post"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &vars), want, "{input}");
    }
}

#[test]
fn limits_alone_request_the_limit_and_sandbox_uses_the_pod() {
    let p = pod(json!({
        "metadata": {"name": "p", "namespace": "d", "uid": "u"},
        "spec": {"hostname": "custom", "containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]},
    }));
    let c = &p.spec.as_ref().expect("spec").containers[0];
    assert_eq!(resources(c).cpu_shares, Some(1024));
    let s = sandbox_config(&p, 0, None);
    assert_eq!(
        (s.hostname.as_str(), s.metadata.uid.as_str()),
        ("custom", "u")
    );
    assert_eq!(s.labels[labels::POD_NAME], "p");
}

#[test]
fn service_variables_yield_to_the_containers_own() {
    let p = web();
    let mut c = p.spec.as_ref().expect("spec").containers[0].clone();
    c.env_from = None;
    c.env = Some(vec![
        k8s_openapi::api::core::v1::EnvVar {
            name: "WEB_SERVICE_HOST".into(),
            value: Some("overridden".into()),
            ..Default::default()
        },
        k8s_openapi::api::core::v1::EnvVar {
            name: "URL".into(),
            value: Some("http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)".into()),
            ..Default::default()
        },
    ]);
    let sources = EnvSources {
        services: vec![
            ("WEB_SERVICE_HOST".into(), "10.43.0.5".into()),
            ("WEB_SERVICE_PORT".into(), "80".into()),
        ],
        ..Default::default()
    };
    let env = environment(&p, &c, &PodContext::default(), &sources).expect("env");
    assert_eq!(
        env,
        vec![
            ("WEB_SERVICE_HOST".to_owned(), "overridden".to_owned()),
            ("URL".to_owned(), "http://overridden:80".to_owned()),
            ("WEB_SERVICE_PORT".to_owned(), "80".to_owned()),
        ]
    );
}

#[test]
fn pid_namespaces_follow_the_kubelets_rules() {
    let plain = web();
    let mut shared = web();
    if let Some(spec) = shared.spec.as_mut() {
        spec.share_process_namespace = Some(true);
    }
    let id = ContainerId("abc".into());
    type Case<'a> = (
        &'a Pod,
        Option<(&'a str, Option<&'a ContainerId>)>,
        Result<PidNamespace, SpecError>,
    );
    let cases: &[Case<'_>] = &[
        (&plain, None, Ok(PidNamespace::Container)),
        (
            &plain,
            Some(("main", Some(&id))),
            Ok(PidNamespace::Target(id.clone())),
        ),
        (
            &plain,
            Some(("main", None)),
            Err(SpecError::TargetNotFound("main".into())),
        ),
        // A pod sharing its namespace: every container, a debug one too, is in the pod's.
        (&shared, None, Ok(PidNamespace::Pod)),
        (&shared, Some(("main", Some(&id))), Ok(PidNamespace::Pod)),
        (&shared, Some(("main", None)), Ok(PidNamespace::Pod)),
    ];
    for (pod, target, want) in cases {
        assert_eq!(&pid_namespace(pod, *target), want, "{target:?}");
    }
    let sources = sources();
    let ctx = PodContext::default();
    for (pod, share, mode) in [
        (&plain, false, PidNamespace::Container),
        (&shared, true, PidNamespace::Pod),
    ] {
        assert_eq!(sandbox_config(pod, 0, None).share_pid_namespace, share);
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        let cfg = container_config(pod, c, 0, &ctx, &sources).expect("config");
        assert_eq!(cfg.pid_namespace, mode);
    }
}
