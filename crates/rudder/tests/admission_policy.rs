//! ValidatingAdmissionPolicy end to end with real kubectl: upstream's documentation example
//! (deployments over 5 replicas refused in namespaces labelled `environment: test`), a
//! ConfigMap parameter with `messageExpression` and a `Forbidden` reason, `Warn` and `Audit`
//! bindings, match conditions excluding a user and a namespace, `failurePolicy` Fail vs
//! Ignore on an expression error, and a policy whose CEL does not parse refused with 422.
//! The server runs without a node agent: admission decides before anything would run.

mod common;

use common::node::wait_for;
use common::{Server, kubectl_raw};

const K133: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const K132: &str = "/usr/bin/kubectl";
const K127: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"{name}"}},"spec":{{"replicas":{replicas},"selector":{{"matchLabels":{{"app":"{name}"}}}},"template":{{"metadata":{{"labels":{{"app":"{name}"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}}}}}"#
    )
}

fn configmap(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"k":"v"}}}}"#
    )
}

fn labelled_namespace(server: &Server, name: &str, label: &str) {
    server.namespace(K133, name);
    server.ok_kubectl(K133, &["label", "namespace", name, label]);
}

/// Runs `kubectl create -f -` until it fails (the policy reached the watch cache) and returns
/// its stderr; the objects a try creates before that are deleted again.
fn until_refused(server: &Server, kubectl: &str, ns: &str, manifest: &str) -> String {
    wait_for("the policy to refuse", 20, || {
        let out = kubectl_raw(
            kubectl,
            &server.kubeconfig(),
            &["create", "-n", ns, "-f", "-"],
            Some(manifest),
        );
        if out.status.success() {
            let _ = kubectl_raw(
                kubectl,
                &server.kubeconfig(),
                &["delete", "-n", ns, "-f", "-"],
                Some(manifest),
            );
            return None;
        }
        Some(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

const DOC_EXAMPLE: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: "demo-policy.example.com"
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: "demo-binding-test.example.com"
spec:
  policyName: "demo-policy.example.com"
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
"#;

#[test]
fn upstream_example_params_and_warnings() {
    let server = Server::start_with(&["--disable-agent"]);
    labelled_namespace(&server, "test", "environment=test");
    labelled_namespace(&server, "prod", "environment=prod");
    // kubectl 1.27 knows nothing of the v1 kinds and still applies them as raw YAML.
    let out = server.kubectl_in(K127, &["apply", "-f", "-"], DOC_EXAMPLE);
    assert!(
        out.contains(
            "validatingadmissionpolicy.admissionregistration.k8s.io/demo-policy.example.com created"
        ),
        "{out}"
    );
    let listed = server.ok_kubectl(
        K132,
        &[
            "get",
            "validatingadmissionpolicies,validatingadmissionpolicybindings",
        ],
    );
    assert!(listed.contains("demo-binding-test.example.com"), "{listed}");

    // `kubectl create -f` prints a 422 with its causes, as it does against upstream.
    let err = until_refused(&server, K133, "test", &deployment("nginx", 6));
    assert!(
        err.contains(r#"The deployments "nginx" is invalid: : ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"#),
        "{err}"
    );
    // The generator prints the Status message itself (upstream's documented output).
    for kubectl in [K127, K132, K133] {
        let err = server.fail_kubectl(
            kubectl,
            &[
                "create",
                "deployment",
                "nginx",
                "-n",
                "test",
                "--image=nginx",
                "--replicas=6",
            ],
            None,
        );
        assert!(
            err.contains(r#"error: failed to create deployment: deployments.apps "nginx" is forbidden: ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"#),
            "{kubectl}: {err}"
        );
    }
    server.create(K133, Some("test"), &deployment("small", 3));
    server.create(K133, Some("prod"), &deployment("big", 6));
    // Updates are checked too (oldObject is the stored deployment).
    let err = server.fail_kubectl(
        K133,
        &["scale", "-n", "test", "deployment/small", "--replicas=7"],
        None,
    );
    assert!(
        err.contains("denied request: failed expression: object.spec.replicas <= 5"),
        "{err}"
    );

    // A ConfigMap parameter per namespace, a message built from it, reason Forbidden (403).
    server.kubectl_in(K133, &["apply", "-f", "-"], r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replica-limit}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  variables:
  - {name: max, expression: "int(params.data.maxReplicas)"}
  validations:
  - expression: "object.spec.replicas <= variables.max"
    messageExpression: "'replicas must be at most ' + string(variables.max) + ', not ' + string(object.spec.replicas)"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replica-limit-deny}
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef: {name: limits, parameterNotFoundAction: Deny}
  matchResources:
    namespaceSelector: {matchLabels: {limits: enforced}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replica-limit-warn}
spec:
  policyName: replica-limit
  validationActions: [Warn, Audit]
  paramRef: {name: limits, parameterNotFoundAction: Allow}
  matchResources:
    namespaceSelector: {matchLabels: {limits: warned}}
"#);
    // kubectl get prints upstream's columns.
    let printed = server.ok_kubectl(
        K133,
        &["get", "validatingadmissionpolicies", "replica-limit"],
    );
    assert!(
        printed.starts_with("NAME            VALIDATIONS   PARAMKIND      AGE"),
        "{printed}"
    );
    assert!(
        printed.contains("replica-limit   1             v1/ConfigMap"),
        "{printed}"
    );
    let printed = server.ok_kubectl(
        K133,
        &[
            "get",
            "validatingadmissionpolicybindings",
            "replica-limit-deny",
        ],
    );
    assert!(
        printed.contains("replica-limit-deny   replica-limit   */limits"),
        "{printed}"
    );
    labelled_namespace(&server, "enforced", "limits=enforced");
    labelled_namespace(&server, "warned", "limits=warned");
    labelled_namespace(&server, "unlimited", "limits=enforced");
    for ns in ["enforced", "warned"] {
        server.create(K133, Some(ns), r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"limits"},"data":{"maxReplicas":"2"}}"#);
    }
    let err = until_refused(&server, K133, "enforced", &deployment("three", 3));
    assert!(
        err.contains(r#"deployments.apps "three" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-deny' denied request: replicas must be at most 2, not 3"#),
        "{err}"
    );
    let raw = kubectl_raw(
        K133,
        &server.kubeconfig(),
        &["create", "-n", "enforced", "-f", "-", "-v=6"],
        Some(&deployment("three", 3)),
    );
    let verbose = String::from_utf8_lossy(&raw.stderr);
    assert!(verbose.contains("403 Forbidden"), "{verbose}");
    server.create(K133, Some("enforced"), &deployment("two", 2));
    // No `limits` ConfigMap and parameterNotFoundAction Deny: the binding refuses.
    let err = server.fail_kubectl(
        K133,
        &["create", "-n", "unlimited", "-f", "-"],
        Some(&deployment("one", 1)),
    );
    assert!(
        err.contains("ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-deny' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{err}"
    );
    // Warn: created, with the warning kubectl prints; Audit: an audit annotation.
    let out = kubectl_raw(
        K133,
        &server.kubeconfig(),
        &["create", "-n", "warned", "-f", "-"],
        Some(&deployment("five", 5)),
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-warn': replicas must be at most 2, not 5"),
        "{stderr}"
    );
    let log = server.log();
    assert!(
        log.contains("validation.policy.admission.k8s.io/validation_failure")
            && log.contains(r#""binding":"replica-limit-warn""#),
        "no audit annotation in the server log"
    );
}

#[test]
fn match_conditions_failure_policies_and_invalid_cel() {
    let server = Server::start_with(&["--disable-agent"]);
    server.kubectl_in(
        K133,
        &["apply", "-f", "-"],
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: configmap-names}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  matchConditions:
  - {name: not-exempt-user, expression: "request.userInfo.username != 'exempt-user'"}
  - {name: not-exempt-namespace, expression: "request.namespace != 'exempt'"}
  validations:
  - expression: "object.metadata.name.startsWith('ok-')"
    message: "configmap names must start with ok-"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: configmap-names}
spec:
  policyName: configmap-names
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {names: checked}}
"#,
    );
    labelled_namespace(&server, "checked", "names=checked");
    labelled_namespace(&server, "exempt", "names=checked");
    let err = until_refused(&server, K133, "checked", &configmap("bad"));
    assert!(
        err.contains(r#"The configmaps "bad" is invalid: : ValidatingAdmissionPolicy 'configmap-names' with binding 'configmap-names' denied request: configmap names must start with ok-"#),
        "{err}"
    );
    server.create(K133, Some("checked"), &configmap("ok-good"));
    server.create(K133, Some("exempt"), &configmap("bad"));
    server.kubectl_in(
        K133,
        &[
            "create",
            "-n",
            "checked",
            "--as=exempt-user",
            "--as-group=system:masters",
            "-f",
            "-",
        ],
        &configmap("bad"),
    );

    // An expression that fails at run time (`data` has no key `missing`): Fail refuses with
    // the error, Ignore lets the write through.
    for policy in ["Fail", "Ignore"] {
        let name = policy.to_lowercase();
        server.kubectl_in(
            K132,
            &["apply", "-f", "-"],
            &format!(
                r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: broken-{name}}}
spec:
  failurePolicy: {policy}
  matchConstraints:
    resourceRules:
    - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}
  validations:
  - expression: "object.data.missing == 'x'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: broken-{name}}}
spec:
  policyName: broken-{name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {{matchLabels: {{broken: {name}}}}}
"#
            ),
        );
        labelled_namespace(
            &server,
            &format!("broken-{name}"),
            &format!("broken={name}"),
        );
    }
    let err = until_refused(&server, K132, "broken-fail", &configmap("any"));
    assert!(
        err.contains("ValidatingAdmissionPolicy 'broken-fail' with binding 'broken-fail' denied request: expression 'object.data.missing == 'x'' resulted in error: no such key: missing"),
        "{err}"
    );
    // The Ignore policy was applied before the namespace existed, so it is in the cache.
    server.create(K132, Some("broken-ignore"), &configmap("any"));

    // CEL that does not parse is refused when the policy is written.
    let err = server.fail_kubectl(
        K133,
        &["apply", "-f", "-"],
        Some(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: unparsable}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "object.spec.("
"#,
        ),
    );
    assert!(
        err.contains(r#"The ValidatingAdmissionPolicy "unparsable" is invalid: spec.validations[0].expression: Invalid value: "object.spec.(": compilation failed: ERROR: <input>:1:13: Syntax error"#),
        "{err}"
    );
    let err = server.fail_kubectl(
        K133,
        &["apply", "-f", "-"],
        Some(
            r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-actions}
spec:
  policyName: configmap-names
"#,
        ),
    );
    assert!(
        err.contains("spec.validationActions: Required value"),
        "{err}"
    );
}
