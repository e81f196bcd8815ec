//! A proptest fuzzer against a running server: mutated and random JSON and YAML bodies, random
//! paths (`..`, percent-encodings, very long segments), random label and field selectors, and
//! random JSON, merge, strategic-merge and apply patches. Every answer must be below 500 and,
//! if a failure, a well-formed `Status`; the server must stay ready; and every object stored in
//! the end must decode as its kind.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::client::{Answer, Conn, admin_tls, assert_status};
use crate::common::Server;

/// Cases run (each one to three requests); recorded in docs/robustness.md.
const CASES: u32 = 1_200;

/// Valid objects the mutations start from, with their collection paths.
fn seeds() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/namespaces/fuzz/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"app": "a"}}, "data": {"k": "v"}}),
        ),
        (
            "/api/v1/namespaces/fuzz/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
                     "resources": {"limits": {"cpu": "1"}}}]}}),
        ),
        (
            "/apis/apps/v1/namespaces/fuzz/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        ),
        (
            "/api/v1/namespaces/fuzz/services",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}),
        ),
        (
            "/api/v1/namespaces/fuzz/secrets",
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sec"}, "data": {"k": "dg=="}}),
        ),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        Just(Value::from("1Gi")),
        Just(Value::from("-1")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z$.]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Sets `value` at a random place in `obj` (an existing field, or a new one).
fn mutate(mut obj: Value, path: &[prop::sample::Index], key: &str, value: Value) -> Value {
    // Walk down by index to a JSON pointer first; then change what it points at.
    let mut pointer = String::new();
    let mut at = &obj;
    for ix in path {
        let next = match at {
            Value::Object(m) if !m.is_empty() => m
                .iter()
                .nth(ix.index(m.len()))
                .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)),
            Value::Array(a) if !a.is_empty() => {
                let i = ix.index(a.len());
                a.get(i).map(|v| (i.to_string(), v))
            }
            _ => None,
        };
        match next {
            Some((step, n)) if n.is_object() || n.is_array() => {
                pointer.push('/');
                pointer.push_str(&step);
                at = n;
            }
            _ => break,
        }
    }
    match obj.pointer_mut(&pointer) {
        Some(Value::Object(m)) => {
            m.insert(key.to_owned(), value);
        }
        Some(Value::Array(a)) => a.push(value),
        _ => {}
    }
    obj
}

/// A body: a mutated seed, random JSON, raw bytes, or a truncated seed; as JSON or YAML.
fn body(seed: Value) -> impl Strategy<Value = (Bytes, bool)> {
    let mutated = (
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        prop_oneof![
            Just("metadata".to_owned()),
            Just("name".to_owned()),
            Just("spec".to_owned()),
            Just("apiVersion".to_owned()),
            Just("kind".to_owned()),
            "[a-z]{1,8}"
        ],
        any_json(),
    )
        .prop_map(move |(path, key, value)| mutate(seed.clone(), &path, &key, value));
    let text = prop_oneof![
        4 => mutated.prop_map(|v| v.to_string().into_bytes()),
        2 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => ("\\PC{0,100}").prop_map(String::into_bytes),
    ];
    (text, any::<bool>(), any::<u16>()).prop_map(|(bytes, yaml, cut)| {
        let mut out = bytes.clone();
        if yaml
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            && let Ok(y) = serde_yaml_ng::to_string(&v)
        {
            out = y.into_bytes();
        }
        // Sometimes cut short, anywhere.
        if cut % 7 == 0 && !out.is_empty() {
            out.truncate(cut as usize % out.len());
        }
        (Bytes::from(out), yaml)
    })
}

/// A path segment: ordinary names, traversal, encodings, very long ones.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9][a-z0-9.-]{0,12}",
        1 => Just("..".to_owned()),
        1 => Just("%2e%2e".to_owned()),
        1 => Just("%2F".to_owned()),
        1 => Just("%00".to_owned()),
        1 => Just("%ZZ".to_owned()),
        1 => Just("%C3%A9".to_owned()),
        1 => Just("~".to_owned()),
        1 => (1usize..20_000).prop_map(|n| "a".repeat(n)),
        1 => Just(String::new()),
    ]
}

/// A path: a random walk, or a real prefix with random segments after it.
fn path() -> impl Strategy<Value = String> {
    let prefixes = prop::sample::select(vec![
        "",
        "/api",
        "/api/v1",
        "/api/v1/namespaces/fuzz",
        "/api/v1/namespaces/fuzz/configmaps",
        "/apis",
        "/apis/apps/v1/namespaces/fuzz/deployments",
        "/openapi/v3",
        "/api/v1/namespaces/fuzz/pods",
    ]);
    (
        prefixes,
        prop::collection::vec(segment(), 0..5),
        "[a-zA-Z0-9=&%.]{0,40}",
    )
        .prop_map(|(prefix, segs, query)| {
            let mut p = prefix.to_owned();
            for s in segs {
                p.push('/');
                p.push_str(&s);
            }
            if p.is_empty() {
                p.push('/');
            }
            // `watch` would stream: the fuzzer only sends requests that end.
            if !query.is_empty() && !query.to_ascii_lowercase().contains("watch") {
                p.push('?');
                p.push_str(&query);
            }
            p
        })
}

/// A selector, percent-encoded: pieces of the grammar in random order, and junk.
fn selector() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("app"),
        Just("="),
        Just("=="),
        Just("!="),
        Just(","),
        Just(" in "),
        Just(" notin "),
        Just("("),
        Just(")"),
        Just("!"),
        Just("a"),
        Just("metadata.name"),
        Just("spec.nodeName"),
        Just("status.phase"),
        Just("x/y"),
        Just("-"),
        Just("."),
        Just("\u{e9}"),
        Just("%"),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| {
        v.concat()
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    })
}

#[derive(Clone, Debug)]
enum Case {
    Write {
        method: &'static str,
        path: String,
        content_type: &'static str,
        body: Bytes,
    },
    Path {
        method: &'static str,
        path: String,
    },
    Select {
        path: String,
        labels: String,
        fields: String,
    },
}

fn case() -> impl Strategy<Value = Case> {
    let seeds = seeds();
    let write = prop::sample::select(seeds)
        .prop_flat_map(|(coll, seed)| {
            let name = seed["metadata"]["name"].as_str().unwrap_or("x").to_owned();
            (
                Just(coll),
                Just(name),
                body(seed),
                prop::sample::select(vec!["POST", "PUT", "PATCH"]),
                prop::sample::select(vec![
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/json-patch+json",
                    "application/apply-patch+yaml",
                ]),
            )
        })
        .prop_map(|(coll, name, (body, yaml), method, patch_type)| {
            let (path, content_type) = match method {
                "POST" => (
                    coll.to_owned(),
                    if yaml {
                        "application/yaml"
                    } else {
                        "application/json"
                    },
                ),
                "PUT" => (
                    format!("{coll}/{name}"),
                    if yaml {
                        "application/yaml"
                    } else {
                        "application/json"
                    },
                ),
                _ => (
                    format!("{coll}/{name}?fieldManager=fuzz&force=true"),
                    patch_type,
                ),
            };
            Case::Write {
                method,
                path,
                content_type,
                body,
            }
        });
    let path_case = (
        prop::sample::select(vec!["GET", "DELETE", "POST", "OPTIONS"]),
        path(),
    )
        .prop_map(|(method, path)| Case::Path { method, path });
    let select = (
        prop::sample::select(vec![
            "/api/v1/namespaces/fuzz/configmaps",
            "/api/v1/pods",
            "/api/v1/namespaces/fuzz/pods",
            "/apis/apps/v1/deployments",
            "/api/v1/namespaces/fuzz/events",
        ]),
        selector(),
        selector(),
    )
        .prop_map(|(p, labels, fields)| Case::Select {
            path: p.to_owned(),
            labels,
            fields,
        });
    prop_oneof![5 => write, 3 => path_case, 2 => select]
}

fn check(what: &str, a: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(a.status < 500, "{what}: {} {}", a.status, a.text());
    if a.status >= 400
        && a.headers
            .get("content-type")
            .is_some_and(|c| c.as_bytes().starts_with(b"application/json"))
    {
        assert_status(a, what);
    }
    Ok(())
}

#[test]
fn fuzzed_requests_get_no_5xx_and_store_nothing_corrupt() {
    let s = Server::start_with(&[
        "--disable-agent",
        "--disable-controllers",
        "--disable-scheduler",
    ]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let conn = rt
        .block_on(Conn::open(s.port, admin_tls(&s)))
        .expect("connect");
    let a = rt
        .block_on(conn.call(
            "POST",
            "/api/v1/namespaces",
            Some("application/json"),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fuzz"}}"#,
        ))
        .expect("namespace");
    assert_eq!(a.status, 201, "{}", a.text());
    // The seeds exist, so that replacements and patches reach real objects (Pods need the
    // namespace's service account, which no controller makes here).
    let sa = (
        "/api/v1/namespaces/fuzz/serviceaccounts",
        serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    );
    for (coll, seed) in std::iter::once(sa).chain(seeds()) {
        let a = rt
            .block_on(conn.call("POST", coll, Some("application/json"), seed.to_string()))
            .expect("seed");
        assert_eq!(a.status, 201, "{coll}: {}", a.text());
    }
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let requests = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&case(), |case| {
        let conn = conn.clone();
        rt.block_on(async {
            let answer = |r: Result<Answer, String>| r.map_err(TestCaseError::fail);
            match &case {
                Case::Write {
                    method,
                    path,
                    content_type,
                    body,
                } => {
                    let a = answer(
                        conn.call(method, path, Some(content_type), body.clone())
                            .await,
                    )?;
                    check(&format!("{method} {path} ({content_type})"), &a)?;
                }
                Case::Path { method, path } => {
                    let a = answer(
                        conn.call(method, path, Some("application/json"), "{}")
                            .await,
                    )?;
                    check(&format!("{method} {path}"), &a)?;
                }
                Case::Select {
                    path,
                    labels,
                    fields,
                } => {
                    let p = format!("{path}?labelSelector={labels}&fieldSelector={fields}");
                    let a = answer(conn.get(&p).await)?;
                    check(&p, &a)?;
                }
            }
            requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ready = answer(conn.get("/readyz").await)?;
            prop_assert_eq!(ready.status, 200);
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!(
            "{e}\nserver log tail:\n{}",
            s.log()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // What the fuzzer found once: patches that remove the (immutable) name must not store an
    // object without one.
    rt.block_on(async {
        let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"named"}}"#;
        // In a namespace of its own: the fuzzer may have deleted `fuzz`.
        let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"named"}}"#;
        let a = conn
            .call("POST", "/api/v1/namespaces", Some("application/json"), ns)
            .await
            .expect("namespace");
        assert_eq!(a.status, 201, "{}", a.text());
        let coll = "/api/v1/namespaces/named/configmaps";
        let a = conn
            .call("POST", coll, Some("application/json"), cm)
            .await
            .expect("create");
        assert_eq!(a.status, 201, "{}", a.text());
        for (ct, patch) in [
            (
                "application/json-patch+json",
                r#"[{"op":"remove","path":"/metadata/name"}]"#,
            ),
            (
                "application/json-patch+json",
                r#"[{"op":"remove","path":"/metadata"}]"#,
            ),
            (
                "application/merge-patch+json",
                r#"{"metadata":{"name":null}}"#,
            ),
        ] {
            let a = conn
                .call("PATCH", &format!("{coll}/named"), Some(ct), patch)
                .await
                .expect("patch");
            check(patch, &a).expect("no 5xx");
            let got = conn.get(&format!("{coll}/named")).await.expect("get");
            assert_eq!(
                got.json()["metadata"]["name"],
                "named",
                "after {patch}: {}",
                got.text()
            );
        }
    });
    // Every object stored under the fuzz namespace decodes as its kind.
    let mut objects = 0;
    rt.block_on(async {
        for (coll, seed) in seeds() {
            let a = conn.get(coll).await.expect("list");
            assert_eq!(a.status, 200, "{coll}: {}", a.text());
            for item in a.json()["items"].as_array().cloned().unwrap_or_default() {
                let kind = seed["kind"].as_str().unwrap_or_default();
                let decoded = match kind {
                    "ConfigMap" => serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(
                        item.clone(),
                    )
                    .map(drop),
                    "Pod" => {
                        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(item.clone())
                            .map(drop)
                    }
                    "Deployment" => {
                        serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(
                            item.clone(),
                        )
                        .map(drop)
                    }
                    "Service" => {
                        serde_json::from_value::<k8s_openapi::api::core::v1::Service>(item.clone())
                            .map(drop)
                    }
                    _ => serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(item.clone())
                        .map(drop),
                };
                assert!(
                    decoded.is_ok(),
                    "stored {kind} does not decode ({decoded:?}): {item}"
                );
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a stored object has no name: {item}"));
                let one = conn.get(&format!("{coll}/{name}")).await.expect("get");
                assert_eq!(one.status, 200, "{}", one.text());
                assert_eq!(one.json()["kind"], kind);
                objects += 1;
            }
        }
    });
    println!(
        "fuzz: {CASES} cases, {} fuzzed requests (+ as many /readyz) in {:?}, no 5xx; {objects} stored objects decode",
        requests.into_inner(),
        started.elapsed()
    );
}
