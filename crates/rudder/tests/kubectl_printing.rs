//! End to end: what `kubectl get` prints against rudder — the server-side Table columns of
//! built-in kinds (with `-o wide`), CRD printer columns, and Table rows on `kubectl get -w` —
//! with the oldest and the newest kubectl of the harness.

mod common;

use std::time::Duration;

use common::{KUBECTLS, Server};

/// The oldest and the newest kubectl.
fn kubectls() -> [&'static str; 2] {
    [KUBECTLS[0], KUBECTLS[KUBECTLS.len() - 1]]
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: main, image: "busybox:1.36"}
      - {name: sidecar, image: "busybox:1.37"}
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: ClusterIP
  clusterIP: 10.43.100.10
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: lonely}
spec:
  # No scheduler profile has this name: the pod stays Pending and unbound.
  schedulerName: nobody
  containers:
  - {name: main, image: "busybox:1.36"}
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
              ports: {type: array, items: {type: integer}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, description: The gadget's color}
    - {name: First-Port, type: string, jsonPath: ".spec.ports[*]"}
    - {name: Owner, type: string, jsonPath: '.metadata.labels["example.com/owner"]', priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

/// A printed table: the header with runs of spaces collapsed, and each row's
/// whitespace-separated fields.
struct Printed {
    header: String,
    rows: Vec<Vec<String>>,
}

fn parse(out: &str) -> Printed {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let rows = lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    Printed { header, rows }
}

impl Printed {
    /// The fields of the row whose first field is `name`.
    fn row(&self, name: &str) -> &[String] {
        self.rows
            .iter()
            .find(|r| r.first().is_some_and(|f| f == name))
            .map(Vec::as_slice)
            .unwrap_or_else(|| panic!("no row {name} in {:?}", self.rows))
    }
}

/// Whether `age` looks like a fresh object's AGE cell (`5s`, `2m3s`).
fn is_age(age: &str) -> bool {
    age.ends_with('s')
        && age
            .chars()
            .all(|c| c.is_ascii_digit() || c == 'm' || c == 's')
}

fn get(s: &Server, k: &str, ns: &str, what: &[&str]) -> Printed {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-n", ns]);
    parse(&s.ok_kubectl(k, &args))
}

#[test]
fn get_prints_upstream_columns_for_builtin_and_custom_kinds() {
    let s = Server::start();
    let [oldest, newest] = kubectls();
    s.kubectl_in(oldest, &["apply", "-f", "-"], CRD);
    s.ok_kubectl(
        oldest,
        &[
            "wait",
            "--for=condition=established",
            "crd/gadgets.example.com",
            "--timeout=30s",
        ],
    );
    for (i, k) in [oldest, newest].into_iter().enumerate() {
        let ns = format!("print-{i}");
        s.namespace(k, &ns);
        // ClusterIPs are unique in the cluster: one per namespace.
        let cluster_ip = s.service_ip(20 + i as u32);
        let service = SERVICE.replace("10.43.100.10", &cluster_ip);
        for manifest in [DEPLOYMENT, &service, POD] {
            s.create(k, Some(&ns), manifest);
        }
        s.create(
            k,
            Some(&ns),
            "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1, labels: {example.com/owner: alice}}\nspec: {size: 3, color: blue, ports: [8080, 9090]}\n",
        );
        s.create(
            k,
            Some(&ns),
            "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g2}\nspec: {size: 5}\n",
        );

        let deploy = get(&s, k, &ns, &["deployments"]);
        assert_eq!(deploy.header, "NAME READY UP-TO-DATE AVAILABLE AGE", "{k}");
        let row = deploy.row("web");
        // The controller manager may already have created the ReplicaSet (UP-TO-DATE 2); the
        // pods cannot become ready (no image), so READY and AVAILABLE stay at zero.
        assert_eq!(
            (row[1].as_str(), row[3].as_str()),
            ("0/2", "0"),
            "{k}: {row:?}"
        );
        assert!(["0", "2"].contains(&row[2].as_str()), "{k}: {row:?}");
        assert!(is_age(&row[4]), "{k}: {row:?}");
        let wide = get(&s, k, &ns, &["deployments", "-o", "wide"]);
        assert_eq!(
            wide.header, "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
            "{k}"
        );
        assert_eq!(
            wide.row("web")[5..],
            ["main,sidecar", "busybox:1.36,busybox:1.37", "app=web"],
            "{k}"
        );

        let svc = get(&s, k, &ns, &["services"]);
        assert_eq!(
            svc.header, "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
            "{k}"
        );
        assert_eq!(
            svc.row("web")[1..5],
            ["ClusterIP", cluster_ip.as_str(), "<none>", "80/TCP,53/UDP"],
            "{k}"
        );
        let wide = get(&s, k, &ns, &["services", "-o", "wide"]);
        assert_eq!(
            wide.header, "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
            "{k}"
        );
        assert_eq!(wide.row("web")[6], "app=web", "{k}");

        let pods = get(&s, k, &ns, &["pods"]);
        assert_eq!(pods.header, "NAME READY STATUS RESTARTS AGE", "{k}");
        assert_eq!(pods.row("lonely")[1..4], ["0/1", "Pending", "0"], "{k}");
        let wide = get(&s, k, &ns, &["pod", "lonely", "-o", "wide"]);
        assert_eq!(
            wide.header, "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
            "{k}"
        );
        assert_eq!(
            wide.row("lonely")[5..],
            ["<none>", "<none>", "<none>", "<none>"],
            "{k}"
        );

        let gadgets = get(&s, k, &ns, &["gadgets"]);
        assert_eq!(gadgets.header, "NAME SIZE COLOR FIRST-PORT AGE", "{k}");
        let g1 = gadgets.row("g1");
        assert_eq!(g1[1..4], ["3", "blue", "8080"], "{k}: {g1:?}");
        assert!(is_age(&g1[4]), "{k}: {g1:?}");
        // Missing values are empty cells: g2 has a name, a size and an age only.
        let g2 = gadgets.row("g2");
        assert_eq!(g2.len(), 3, "{k}: {g2:?}");
        assert_eq!(g2[1], "5", "{k}: {g2:?}");
        let wide = get(&s, k, &ns, &["gadgets", "-o", "wide"]);
        // Wide columns keep their declared place.
        assert_eq!(wide.header, "NAME SIZE COLOR FIRST-PORT OWNER AGE", "{k}");
        assert_eq!(wide.row("g1")[4], "alice", "{k}");

        s.configmap(k, &ns, "settings", "color", "blue");
        let cms = get(&s, k, &ns, &["configmaps"]);
        assert_eq!(cms.header, "NAME DATA AGE", "{k}");
        assert_eq!(cms.row("settings")[1], "1", "{k}");
        let roles = parse(&s.ok_kubectl(k, &["get", "clusterroles", "-A"]));
        assert!(
            roles.header == "NAME CREATED AT" || roles.rows.is_empty(),
            "{k}: {}",
            roles.header
        );
        let crds = parse(&s.ok_kubectl(k, &["get", "crds"]));
        assert_eq!(crds.header, "NAME CREATED AT", "{k}");
        assert!(
            crds.row("gadgets.example.com")[1].ends_with('Z'),
            "{k}: {:?}",
            crds.rows
        );
    }
}

#[test]
fn get_watch_prints_table_rows_for_later_events() {
    let s = Server::start();
    for (i, k) in kubectls().into_iter().enumerate() {
        let ns = format!("watch-print-{i}");
        s.namespace(k, &ns);
        s.configmap(k, &ns, "before", "a", "1");
        let mut watch = s.kubectl_stream(k, &["get", "configmaps", "-n", &ns, "-w"]);
        std::thread::sleep(Duration::from_millis(500));
        s.create(
            k,
            Some(&ns),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"after"},"data":{"x":"1","y":"2"}}"#,
        );
        let row_of = |seen: &[String], name: &str| -> Option<Vec<String>> {
            seen.iter()
                .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .find(|f| f.first().is_some_and(|n| n == name))
        };
        let seen = watch
            .until(&format!("{k}: a row for the new config map"), |seen| {
                row_of(seen, "after").is_some()
            })
            .to_vec();
        let header_lines = seen.iter().filter(|l| l.starts_with("NAME")).count();
        assert_eq!(header_lines, 1, "{k}: headers once: {seen:?}");
        let before = row_of(&seen, "before").unwrap_or_else(|| panic!("{k}: {seen:?}"));
        assert_eq!(before[1], "1", "{k}: {before:?}");
        let after = row_of(&seen, "after").unwrap_or_else(|| panic!("{k}: {seen:?}"));
        assert_eq!(after[1], "2", "{k}: {after:?}");
        assert!(is_age(&after[2]), "{k}: {after:?}");
    }
}
