//! Table tests of the routing table: class selection, host and path matching, precedence and
//! backend resolution.

use super::*;
use serde_json::json;

fn class(name: &str, controller: &str, default: bool) -> IngressClass {
    let mut c = json!({"metadata": {"name": name}, "spec": {"controller": controller}});
    if default {
        c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    }
    serde_json::from_value(c).expect("class")
}

fn ingress(name: &str, class: Option<&str>, spec: serde_json::Value) -> Ingress {
    let mut spec = spec;
    if let Some(c) = class {
        spec["ingressClassName"] = json!(c);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .expect("ingress")
}

fn backend(svc: &str, port: serde_json::Value) -> serde_json::Value {
    json!({"service": {"name": svc, "port": port}})
}

fn path(p: &str, kind: &str, svc: &str) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": backend(svc, json!({"number": 80}))})
}

/// Services `a`..`e` with port 80 (named `http`) → 8080, each with one ready endpoint whose last
/// octet is the service's letter index + 1, plus `empty` with no endpoint.
fn cluster() -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for (i, name) in ["a", "b", "c", "d", "e", "empty"].iter().enumerate() {
        services.push(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }))
            .expect("service"),
        );
        let endpoints = if *name == "empty" {
            json!([{"addresses": ["10.0.0.99"], "conditions": {"ready": false}}])
        } else {
            json!([{"addresses": [format!("10.0.0.{}", i + 1)], "conditions": {"ready": true}}])
        };
        slices.push(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-x"), "namespace": "default",
                    "labels": {SERVICE_NAME_LABEL: name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": endpoints,
            }))
            .expect("slice"),
        );
    }
    (services, slices)
}

/// The service a decision leads to (by its endpoint), "404" or "503".
fn outcome(t: &Table, host: &str, path: &str) -> String {
    match t.route(host, path) {
        Decision::NotFound => "404".into(),
        Decision::Backend(b) => match b.pick() {
            None => "503".into(),
            Some(addr) => {
                let i = match addr.ip() {
                    IpAddr::V4(v4) => usize::from(v4.octets()[3]),
                    IpAddr::V6(_) => 0,
                };
                ["?", "a", "b", "c", "d", "e"][i].to_owned()
            }
        },
    }
}

#[test]
fn paths() {
    use PathKind::{Exact, Prefix};
    for (kind, rule, path, want) in [
        (Prefix, "/", "/", true),
        (Prefix, "/", "/anything/at/all", true),
        (Prefix, "/foo", "/foo", true),
        (Prefix, "/foo", "/foo/", true),
        (Prefix, "/foo", "/foo/bar", true),
        (Prefix, "/foo", "/foobar", false),
        (Prefix, "/foo/", "/foo", true),
        (Prefix, "/foo/bar", "/foo", false),
        (Prefix, "/aaa/bb", "/aaa/bbb", false),
        (Prefix, "/aaa/bbb", "/aaa/bbb/ccc", true),
        (Prefix, "/Foo", "/foo", false),
        (Exact, "/foo", "/foo", true),
        (Exact, "/foo", "/foo/", false),
        (Exact, "/foo", "/foo/bar", false),
        (Exact, "/foo", "/Foo", false),
    ] {
        assert_eq!(
            path_matches(kind, rule, path),
            want,
            "{kind:?} {rule} {path}"
        );
    }
}

#[test]
fn hosts() {
    for (pattern, host, want) in [
        ("a.example.com", "a.example.com", true),
        ("a.example.com", "A.Example.COM", true),
        ("a.example.com", "b.example.com", false),
        ("*.example.com", "a.example.com", true),
        ("*.example.com", "a.b.example.com", false),
        ("*.example.com", "example.com", false),
        ("*.example.com", ".example.com", false),
    ] {
        assert_eq!(host_matches(pattern, host), want, "{pattern} {host}");
    }
    for (h, want) in [
        ("a.b", "a.b"),
        ("a.b:8443", "a.b"),
        ("[::1]:80", "::1"),
        ("10.0.0.1", "10.0.0.1"),
    ] {
        assert_eq!(strip_port(h), want);
    }
}

#[test]
fn routing() {
    let (services, slices) = cluster();
    let classes = [class(CLASS_NAME, CONTROLLER, true)];
    let ings = [
        ingress(
            "one",
            Some(CLASS_NAME),
            json!({"rules": [
                {"host": "a.example.test", "http": {"paths": [
                    path("/", "Prefix", "a"),
                    path("/api", "Prefix", "c"),
                    path("/api/v1", "ImplementationSpecific", "d"),
                    path("/exact", "Exact", "b"),
                    path("/exact", "Prefix", "c"),
                ]}},
                {"host": "*.example.test", "http": {"paths": [path("/", "Prefix", "e")]}},
                {"host": "down.example.test", "http": {"paths": [path("/", "Prefix", "empty")]}},
                {"host": "nopath.example.test", "http": {"paths": [path("/only", "Exact", "b")]}},
            ]}),
        ),
        ingress(
            "two",
            None,
            json!({"rules": [{"http": {"paths": [path("/any", "Prefix", "b")]}}]}),
        ),
    ];
    let t = Table::build(&classes, &ings, &services, &slices);
    for (host, p, want) in [
        ("a.example.test", "/", "a"),
        ("a.example.test:443", "/x", "a"),
        ("A.EXAMPLE.TEST", "/x", "a"),
        ("a.example.test", "/api", "c"),
        ("a.example.test", "/apis", "a"),
        ("a.example.test", "/api/v1/pods", "d"),
        ("a.example.test", "/exact", "b"),
        ("a.example.test", "/exact/sub", "c"),
        ("other.example.test", "/", "e"),
        ("x.y.example.test", "/", "404"),
        ("x.y.example.test", "/any/thing", "b"),
        ("down.example.test", "/", "503"),
        // No path of the host matches: the wildcard's rules apply.
        ("nopath.example.test", "/", "e"),
        ("nopath.example.test", "/only", "b"),
        ("unknown.test", "/", "404"),
    ] {
        assert_eq!(outcome(&t, host, p), want, "{host}{p}");
    }
    assert_eq!(
        t.ingresses,
        [
            ("default".to_owned(), "one".to_owned()),
            ("default".to_owned(), "two".to_owned())
        ]
    );
}

#[test]
fn classes() {
    let (services, slices) = cluster();
    let rule =
        |svc| json!({"rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", svc)]}}]});
    for (classes, ing, want) in [
        // Not the default class: Ingresses without a class are someone else's.
        (
            vec![class(CLASS_NAME, CONTROLLER, false)],
            ingress("i", None, rule("a")),
            "404",
        ),
        (
            vec![class(CLASS_NAME, CONTROLLER, true)],
            ingress("i", None, rule("a")),
            "a",
        ),
        (
            vec![class(CLASS_NAME, CONTROLLER, false)],
            ingress("i", Some(CLASS_NAME), rule("a")),
            "a",
        ),
        // Another controller's class, even when it is the default.
        (
            vec![
                class(CLASS_NAME, CONTROLLER, false),
                class("nginx", "k8s.io/ingress-nginx", true),
            ],
            ingress("i", Some("nginx"), rule("a")),
            "404",
        ),
        (
            vec![class(CLASS_NAME, CONTROLLER, true)],
            ingress("i", Some("missing"), rule("a")),
            "404",
        ),
    ] {
        let t = Table::build(&classes, &[ing], &services, &slices);
        assert_eq!(outcome(&t, "h", "/"), want, "{classes:?}");
    }
}

#[test]
fn backends() {
    let (services, slices) = cluster();
    let classes = [class(CLASS_NAME, CONTROLLER, true)];
    for (spec, want) in [
        (
            json!({"defaultBackend": backend("b", json!({"number": 80}))}),
            "b",
        ),
        (
            json!({"defaultBackend": backend("b", json!({"name": "http"}))}),
            "b",
        ),
        // A port the Service does not have, a Service that does not exist.
        (
            json!({"defaultBackend": backend("b", json!({"number": 81}))}),
            "503",
        ),
        (
            json!({"defaultBackend": backend("nope", json!({"number": 80}))}),
            "503",
        ),
        (
            json!({"defaultBackend": {"resource": {"kind": "StorageBucket", "name": "x"}}}),
            "503",
        ),
        (json!({}), "404"),
    ] {
        let t = Table::build(
            &classes,
            &[ingress("i", None, spec.clone())],
            &services,
            &slices,
        );
        assert_eq!(outcome(&t, "any.host", "/whatever"), want, "{spec}");
    }
}

#[test]
fn older_ingress_wins_and_endpoints_rotate() {
    let (services, mut slices) = cluster();
    // Service a gets three ready endpoints and one that is not ready.
    slices[0] = serde_json::from_value(json!({
        "metadata": {"name": "a-x", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "a"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.0.1.1"]},
            {"addresses": ["10.0.1.2"], "conditions": {"ready": true}},
            {"addresses": ["10.0.1.3"], "conditions": {"ready": false}},
            {"addresses": ["10.0.1.4"], "conditions": {"ready": true}},
        ],
    }))
    .expect("slice");
    let classes = [class(CLASS_NAME, CONTROLLER, true)];
    let mut newer = ingress(
        "newer",
        None,
        json!({"rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", "b")]}}]}),
    );
    newer.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2025-01-02T00:00:00Z".parse().expect("time"),
    ));
    let mut older = ingress(
        "older",
        None,
        json!({"rules": [{"host": "h", "http": {"paths": [path("/", "Prefix", "a")]}}]}),
    );
    older.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2025-01-01T00:00:00Z".parse().expect("time"),
    ));
    let t = Table::build(&classes, &[newer, older], &services, &slices);
    let Decision::Backend(b) = t.route("h", "/") else {
        panic!("no backend");
    };
    let picks: Vec<String> = (0..6)
        .filter_map(|_| b.pick())
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        picks,
        [
            "10.0.1.1:8080",
            "10.0.1.2:8080",
            "10.0.1.4:8080",
            "10.0.1.1:8080",
            "10.0.1.2:8080",
            "10.0.1.4:8080"
        ]
    );
}
