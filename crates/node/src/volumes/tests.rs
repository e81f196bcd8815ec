//! Tests of volume planning and atomic file volumes.

use serde_json::json;

use super::*;

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "d", "uid": "u1", "labels": {"app": "x"}},
        "spec": {
            "containers": [{"name": "c", "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/cfg"},
                {"name": "scratch", "mountPath": "/scratch"},
                {"name": "host", "mountPath": "/host", "readOnly": true},
                {"name": "cfg", "mountPath": "/etc/one", "subPath": "color"},
            ]}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "settings"}},
                {"name": "scratch", "emptyDir": {"medium": "Memory"}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "sec", "secret": {"secretName": "pw", "items": [{"key": "password", "path": "pw/file", "mode": 0o400}]}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            ],
        },
    }))
    .expect("pod")
}

fn objects() -> Objects {
    Objects {
        config_maps: BTreeMap::from([(
            "settings".into(),
            BTreeMap::from([("color".into(), b"blue".to_vec())]),
        )]),
        secrets: BTreeMap::from([(
            "pw".into(),
            BTreeMap::from([("password".into(), b"hunter2".to_vec())]),
        )]),
        claims: BTreeMap::from([(
            "data".into(),
            Claim::Path {
                path: "/srv/pv1".into(),
                create: true,
            },
        )]),
        tokens: BTreeMap::new(),
    }
}

#[test]
fn plans_each_kind() {
    let p = pod();
    let vols = p.spec.clone().and_then(|s| s.volumes).unwrap_or_default();
    let planned: Vec<Source> = vols
        .iter()
        .map(|v| plan(&p, v, &objects()).expect("plan"))
        .collect();
    assert_eq!(
        planned[0],
        Source::Files(Files::from([("color".into(), (b"blue".to_vec(), 0o644))]))
    );
    assert_eq!(planned[1], Source::Empty { memory: true });
    assert_eq!(planned[2], Source::HostPath("/var/log".into()));
    assert_eq!(
        planned[3],
        Source::Files(Files::from([(
            "pw/file".into(),
            (b"hunter2".to_vec(), 0o400)
        )]))
    );
    assert_eq!(
        planned[4],
        Source::Files(Files::from([(
            "labels".into(),
            (b"app=\"x\"\n".to_vec(), 0o644)
        )]))
    );
    assert_eq!(
        planned[5],
        Source::Persistent {
            path: "/srv/pv1".into(),
            create: true
        }
    );
    let claim_states = [
        (
            Some(Claim::Unbound),
            Err(VolumeError::Unbound("data".into())),
        ),
        (
            None,
            Err(VolumeError::Missing {
                kind: "persistentvolumeclaim",
                name: "data".into(),
            }),
        ),
        (
            Some(Claim::Unsupported("nfs")),
            Ok(Source::Unsupported("nfs")),
        ),
    ];
    for (claim, want) in claim_states {
        let mut objects = objects();
        objects.claims.clear();
        if let Some(c) = claim {
            objects.claims.insert("data".into(), c);
        }
        assert_eq!(plan(&p, &vols[5], &objects), want);
    }
    let missing = plan(&p, &vols[0], &Objects::default());
    assert_eq!(
        missing,
        Err(VolumeError::Missing {
            kind: "configmap",
            name: "settings".into()
        })
    );
}

#[test]
fn container_mounts() {
    let p = pod();
    let c = &p.spec.as_ref().expect("spec").containers[0];
    let m = mounts(Path::new("/data"), &p, c).expect("mounts");
    let got: Vec<(String, String, bool)> = m
        .iter()
        .map(|m| {
            (
                m.container_path.clone(),
                m.host_path.display().to_string(),
                m.readonly,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/etc/cfg".into(), "/data/pods/u1/volumes/cfg".into(), true),
            (
                "/scratch".into(),
                "/data/pods/u1/volumes/scratch".into(),
                false
            ),
            ("/host".into(), "/var/log".into(), true),
            (
                "/etc/one".into(),
                "/data/pods/u1/volumes/cfg/color".into(),
                true
            ),
        ]
    );
}

#[test]
fn file_volumes_update_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v = dir.path().join("cfg");
    write_files(
        &v,
        &Files::from([
            ("a".into(), (b"1".to_vec(), 0o644)),
            ("b".into(), (b"2".to_vec(), 0o644)),
        ]),
    )
    .expect("write");
    assert_eq!(std::fs::read_to_string(v.join("a")).expect("a"), "1");
    let first = std::fs::read_link(v.join("..data")).expect("..data");
    // Same content: nothing rewritten.
    write_files(
        &v,
        &Files::from([
            ("a".into(), (b"1".to_vec(), 0o644)),
            ("b".into(), (b"2".to_vec(), 0o644)),
        ]),
    )
    .expect("rewrite");
    assert_eq!(std::fs::read_link(v.join("..data")).expect("..data"), first);
    // New content and a removed key.
    write_files(
        &v,
        &Files::from([("a".into(), (b"changed".to_vec(), 0o644))]),
    )
    .expect("update");
    assert_eq!(std::fs::read_to_string(v.join("a")).expect("a"), "changed");
    assert!(std::fs::symlink_metadata(v.join("b")).is_err());
    assert!(!v.join(&first).exists(), "the old generation is removed");
    assert!(
        write_files(
            &v,
            &Files::from([("../escape".into(), (b"x".to_vec(), 0o644))])
        )
        .is_err()
    );
}

#[test]
fn persistent_volumes_are_links_that_cleanup_leaves_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("pv");
    let mut pod = pod();
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = Some(vec![
            serde_json::from_value(
                json!({"name": "claim", "persistentVolumeClaim": {"claimName": "data"}}),
            )
            .expect("volume"),
        ]);
    }
    let mut objects = Objects::default();
    objects.claims.insert(
        "data".into(),
        Claim::Path {
            path: data.clone(),
            create: true,
        },
    );
    sync(root.path(), &pod, &objects).expect("sync");
    std::fs::write(data.join("kept"), b"x").expect("write");
    let link = volume_dir(root.path(), "u1", "claim");
    assert_eq!(std::fs::read_link(&link).expect("a link"), data);
    sync(root.path(), &pod, &objects).expect("sync again");
    cleanup(root.path(), "u1");
    assert!(!link.exists());
    assert!(
        data.join("kept").exists(),
        "the volume's data survives the pod"
    );

    // A local volume's path must exist already.
    objects.claims.insert(
        "data".into(),
        Claim::Path {
            path: root.path().join("missing"),
            create: false,
        },
    );
    assert!(matches!(
        sync(root.path(), &pod, &objects),
        Err(VolumeError::Io(_))
    ));
}

#[test]
fn projected_service_account_tokens() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "d", "uid": "u1"},
        "spec": {"containers": [], "volumes": [
            {"name": "api", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"serviceAccountToken": {"path": "vault", "audience": "vault"}},
            ]}},
            {"name": "again", "projected": {"sources": [
                {"serviceAccountToken": {"path": "t", "expirationSeconds": 3607}},
            ]}},
        ]},
    }))
    .expect("pod");
    assert_eq!(
        projected_tokens(&pod),
        vec![(String::new(), 3607), ("vault".to_owned(), 3600)]
    );
    let volume = &pod
        .spec
        .as_ref()
        .expect("spec")
        .volumes
        .as_ref()
        .expect("volumes")[0];
    let mut objects = Objects::default();
    assert!(matches!(
        plan(&pod, volume, &objects),
        Err(VolumeError::Missing { .. })
    ));
    for (key, token) in [
        (token_key("", 3607), "jwt-a"),
        (token_key("vault", 3600), "jwt-b"),
    ] {
        objects.tokens.insert(
            key,
            IssuedToken {
                token: token.into(),
                issued: 0,
                expires: 3600,
            },
        );
    }
    let Ok(Source::Files(files)) = plan(&pod, volume, &objects) else {
        panic!("files expected");
    };
    assert_eq!(files["token"], (b"jwt-a".to_vec(), 0o644));
    assert_eq!(files["vault"], (b"jwt-b".to_vec(), 0o644));
}

#[test]
fn tokens_refresh_after_80_percent_of_their_life() {
    let t = |issued, expires| IssuedToken {
        token: String::new(),
        issued,
        expires,
    };
    let cases = [
        (t(0, 1000), 799, false),
        (t(0, 1000), 800, true),
        (t(0, 1000), 1000, true),
        (t(0, 7 * 86400), 86399, false),
        (t(0, 7 * 86400), 86400, true),
    ];
    for (token, now, want) in cases {
        assert_eq!(needs_refresh(&token, now), want, "{token:?} at {now}");
    }
}
