//! End to end: a CRD serving two versions stores objects at its storage version and serves each
//! at the version asked for (conversion strategy `None`), through kubectl.

mod common;

use common::{KUBECTLS, Server, json};

const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "gadgets.example.com"},
  "spec": {
    "group": "example.com", "scope": "Namespaced",
    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
    "versions": [
      {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}},
      {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}
    ]
  }
}"#;

#[test]
fn each_served_version_reads_and_writes_the_same_objects() {
    let s = Server::start();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    s.create(k, None, CRD);
    // Established CRDs serve at once, but discovery is cached by kubectl: wait until it lists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s
        .ok_kubectl(k, &["api-resources", "--api-group=example.com"])
        .contains("gadgets")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "gadgets never appeared in discovery"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.create(k, Some("default"), r#"{"apiVersion":"example.com/v1beta1","kind":"Gadget","metadata":{"name":"g1"},"spec":{"size":3}}"#);

    let v1 = json(&s.ok_kubectl(k, &["get", "gadgets.v1.example.com", "g1", "-o", "json"]));
    assert_eq!(v1["apiVersion"], "example.com/v1");
    assert_eq!(v1["spec"]["size"], 3);
    let beta = json(&s.ok_kubectl(
        k,
        &["get", "gadgets.v1beta1.example.com", "g1", "-o", "json"],
    ));
    assert_eq!(beta["apiVersion"], "example.com/v1beta1");

    // A patch through the non-storage version, read back through the other.
    s.ok_kubectl(
        k,
        &[
            "patch",
            "gadgets.v1beta1.example.com",
            "g1",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":5}}"#,
        ],
    );
    let v1 = json(&s.ok_kubectl(k, &["get", "gadgets.v1.example.com", "g1", "-o", "json"]));
    assert_eq!(
        (v1["apiVersion"].as_str(), v1["spec"]["size"].as_i64()),
        (Some("example.com/v1"), Some(5))
    );

    // Lists at each version carry that version on every item.
    let list = json(&s.ok_kubectl(k, &["get", "gadgets.v1beta1.example.com", "-o", "json"]));
    assert_eq!(
        list["items"][0]["apiVersion"], "example.com/v1beta1",
        "{list}"
    );
}
