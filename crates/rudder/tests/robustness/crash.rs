//! Faults that lose nothing, through the API: `kill -9` of the server amid 1,000 concurrent
//! writes, and a full disk (the store on a small tmpfs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

use crate::client::{Conn, admin_tls, assert_status};
use crate::common::Server;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str, v: &str, pad: usize) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"v": v, "pad": "x".repeat(pad)}})
    .to_string()
}

/// Every ConfigMap named `prefix*` as stored, decoded as a ConfigMap: name → its `v`.
async fn stored(c: &Conn, prefix: &str) -> BTreeMap<String, String> {
    let a = c.get(CMS).await.expect("list");
    assert_eq!(a.status, 200, "{}", a.text());
    let items = a.json()["items"].as_array().cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    for item in items {
        let cm: ConfigMap = serde_json::from_value(item.clone())
            .unwrap_or_else(|e| panic!("a stored object does not decode ({e}): {item}"));
        let name = cm.metadata.name.clone().expect("name");
        if name.starts_with(prefix) {
            let v = cm.data.as_ref().and_then(|d| d.get("v")).cloned();
            out.insert(
                name,
                v.unwrap_or_else(|| panic!("half-written object: {item}")),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_amid_a_thousand_concurrent_writes_loses_no_acknowledged_write() {
    let mut s = Server::start_with(&["--disable-agent"]);
    let tls = admin_tls(&s);
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(Conn::open(s.port, tls.clone()).await.expect("connect"));
    }
    // name → the last content the server acknowledged ("1" created, "2" updated).
    let acked: Arc<std::sync::Mutex<BTreeMap<String, String>>> = Default::default();
    let count = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1_000usize {
        let (conn, acked, count) = (conns[i % 8].clone(), acked.clone(), count.clone());
        tasks.spawn(async move {
            let name = format!("w-{i:04}");
            let Ok(a) = conn
                .call(
                    "POST",
                    CMS,
                    Some("application/json"),
                    configmap(&name, "1", 512),
                )
                .await
            else {
                return;
            };
            if a.status != 201 {
                return;
            }
            acked.lock().expect("lock").insert(name.clone(), "1".into());
            count.fetch_add(1, Ordering::Relaxed);
            if i % 2 == 1 {
                // Half are then updated, with the revision the create returned.
                let mut cm = a.json();
                cm["data"]["v"] = json!("2");
                let path = format!("{CMS}/{name}");
                if let Ok(u) = conn
                    .call("PUT", &path, Some("application/json"), cm.to_string())
                    .await
                    && u.status == 200
                {
                    acked.lock().expect("lock").insert(name, "2".into());
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    // SIGKILL once a third of the 1,500 writes are acknowledged: the rest are in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < 500 {
        assert!(
            Instant::now() < deadline,
            "writes too slow: {}",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.kill9();
    let killed_at = count.load(Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let acked = acked.lock().expect("lock").clone();
    let started = Instant::now();
    s.restart();
    let recovered_in = started.elapsed();
    let c = Conn::open(s.port, tls).await.expect("reconnect");
    let found = stored(&c, "w-").await;
    let mut lost = Vec::new();
    for (name, v) in &acked {
        match found.get(name) {
            // An update in flight at the kill may have landed unacknowledged: newer is fine.
            Some(got) if got == v || (v == "1" && got == "2") => {}
            other => lost.push(format!("{name}: acknowledged {v}, found {other:?}")),
        }
    }
    println!(
        "kill -9 amid 1,000 concurrent creates (+500 updates): {killed_at} writes acknowledged at the kill, {} in all \
         ({} objects); {} objects stored after restart; restart to ready {recovered_in:?}; {} lost",
        acked
            .values()
            .map(|v| if v == "2" { 2 } else { 1 })
            .sum::<usize>(),
        acked.len(),
        found.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        acked.len() < 1_000,
        "the kill came after every write was done"
    );
}

/// A tmpfs mounted over a directory, lazily unmounted when dropped (also on failure: a process
/// still using it cannot make the unmount fail).
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Fills the file system of `path` until a write fails.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0xa5u8; chunk];
        while f.write_all(&buf).and_then(|()| f.sync_data()).is_ok() {
            written += chunk as u64;
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_and_recovers() {
    let mut s = Server::start_with(&["--disable-agent"]);
    s.stop();
    // The store moves onto a 64 MiB tmpfs.
    let store = s.data_dir().join("store");
    let saved = s.data_dir().join("store.saved");
    std::fs::rename(&store, &saved).expect("move the store aside");
    std::fs::create_dir(&store).expect("mount point");
    if !run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=64m",
            "tmpfs",
            &store.to_string_lossy(),
        ],
    ) {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let _mount = Tmpfs(store.clone());
    for f in std::fs::read_dir(&saved).expect("saved store").flatten() {
        std::fs::copy(f.path(), store.join(f.file_name())).expect("copy the store");
    }
    s.restart();
    let c = Conn::open(s.port, admin_tls(&s)).await.expect("connect");
    let mut acked = BTreeMap::new();
    for i in 0..10 {
        let name = format!("d-{i:04}");
        let a = c
            .call(
                "POST",
                CMS,
                Some("application/json"),
                configmap(&name, "1", 8192),
            )
            .await
            .expect("create");
        assert_eq!(a.status, 201, "{}", a.text());
        acked.insert(name, "1".to_owned());
    }
    let filler = store.join("filler");
    let filled = fill(&filler);
    // Write until refused: each answer comes (no hang) as a Status.
    let mut refusal = None;
    for i in 10..5_000 {
        let name = format!("d-{i:04}");
        let a = c
            .call(
                "POST",
                CMS,
                Some("application/json"),
                configmap(&name, "1", 8192),
            )
            .await
            .expect("an answer on a full disk");
        match a.status {
            201 => {
                acked.insert(name, "1".to_owned());
            }
            _ => {
                assert_status(&a, "write on a full disk");
                refusal = Some(a);
                break;
            }
        }
    }
    let refusal = refusal.expect("the full disk never refused a write");
    println!(
        "full disk: filler took {} MiB; {} writes acknowledged, then {} {}: {}",
        filled >> 20,
        acked.len(),
        refusal.status,
        refusal.json()["reason"],
        refusal.json()["message"]
    );
    assert_eq!(refusal.status, 500, "{}", refusal.text());
    assert_eq!(refusal.json()["reason"], "InternalError");
    // Reads still work, and so does the server.
    assert_eq!(c.get("/readyz").await.expect("readyz").status, 200);
    assert_eq!(
        c.get(&format!("{CMS}/d-0000")).await.expect("get").status,
        200
    );
    assert_eq!(stored(&c, "d-").await, acked);
    // Space returns: writes succeed again, without a restart.
    std::fs::remove_file(&filler).expect("free space");
    let freed = Instant::now();
    loop {
        let a = c
            .call(
                "POST",
                CMS,
                Some("application/json"),
                configmap("d-after", "1", 10),
            )
            .await
            .expect("answer");
        if a.status == 201 {
            break;
        }
        assert_status(&a, "write while recovering");
        assert!(
            freed.elapsed() < Duration::from_secs(60),
            "writes did not recover: {}",
            a.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "full disk: writes succeed again {:?} after space returned",
        freed.elapsed()
    );
    acked.insert("d-after".to_owned(), "1".to_owned());
    assert_eq!(stored(&c, "d-").await, acked);
    // And after a crash, exactly the acknowledged writes are there.
    s.kill9();
    s.restart();
    let c = Conn::open(s.port, admin_tls(&s)).await.expect("reconnect");
    assert_eq!(stored(&c, "d-").await, acked);
    s.stop();
}
