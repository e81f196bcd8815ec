//! A full disk: the store lives on a small tmpfs that a filler file fills. Writes then fail with
//! an error value (no panic, no hang), acknowledged writes stay readable, and once space returns
//! writes succeed again without a restart; after reopening, exactly the acknowledged writes are
//! there. Needs root (it mounts a tmpfs); skipped with a message otherwise.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rudder_store::{RangeRequest, Store, WriteOutcome};
use rudder_store_embedded::EmbeddedStore;

/// A tmpfs mounted at a directory, unmounted (lazily, so a process still using it cannot make
/// the unmount fail) when dropped, also when the test fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` until a write fails with ENOSPC.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512, 1] {
        let buf = vec![0xa5u8; chunk];
        while f.write_all(&buf).and_then(|()| f.sync_data()).is_ok() {
            written += chunk as u64;
        }
    }
    written
}

fn value(i: usize) -> Bytes {
    let mut v = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
    v.resize(16 * 1024, b'x');
    v.extend_from_slice(b"\"}");
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_writes_then_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = Tmpfs::mount(dir.path(), "64m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let db = dir.path().join("state.redb");
    let store = EmbeddedStore::open(&db).expect("open");
    let mut acked: BTreeMap<String, Bytes> = BTreeMap::new();
    for i in 0..20 {
        let key = format!("/registry/fill/before-{i:04}");
        match store
            .create(&key, value(i))
            .await
            .expect("write with space")
        {
            WriteOutcome::Written(_) => acked.insert(key, value(i)),
            other => panic!("unexpected {other:?}"),
        };
    }

    let filler = dir.path().join("filler");
    let filled = fill(&filler);
    eprintln!("filler took {filled} bytes");

    // Write until the store refuses; every answer must come back (no hang) as a value.
    let mut first_error = None;
    let mut refused = 0;
    for i in 0..4000 {
        let key = format!("/registry/fill/full-{i:04}");
        let answer = tokio::time::timeout(Duration::from_secs(30), store.create(&key, value(i)))
            .await
            .expect("a write on a full disk must be answered, not hang");
        match answer {
            Ok(WriteOutcome::Written(_)) => {
                acked.insert(key, value(i));
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                refused += 1;
                first_error.get_or_insert(e.to_string());
                if refused >= 20 {
                    break;
                }
            }
        }
    }
    let first_error = first_error.expect("the full disk never refused a write");
    eprintln!(
        "acknowledged {} writes; first refusal: {first_error}",
        acked.len()
    );
    assert!(
        first_error.contains("No space left") || first_error.contains("recovering"),
        "{first_error}"
    );

    // Space returns: writes succeed again without a restart (the writer reopens the file).
    std::fs::remove_file(&filler).expect("remove filler");
    let started = Instant::now();
    let key = "/registry/fill/after".to_owned();
    loop {
        match store.create(&key, value(9999)).await {
            Ok(WriteOutcome::Written(_)) => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "writes did not recover once space returned: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eprintln!(
        "writes recovered {:?} after space returned",
        started.elapsed()
    );
    acked.insert(key, value(9999));

    let check = |kvs: Vec<rudder_store::KeyValue>| {
        let got: BTreeMap<String, Bytes> = kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            acked.keys().collect::<Vec<_>>(),
            "exactly the acknowledged writes are stored"
        );
        for (k, v) in &got {
            assert_eq!(Some(v), acked.get(k), "{k} holds what was acknowledged");
        }
    };
    let all = RangeRequest::prefix("/registry/fill/");
    check(store.range(all.clone()).await.expect("range").kvs);
    drop(store);
    // The writer thread lets go of the file's lock when it has finished, just after the drop.
    let reopened = Instant::now();
    let store = loop {
        match EmbeddedStore::open(&db) {
            Ok(s) => break s,
            Err(e) if reopened.elapsed() < Duration::from_secs(10) => {
                eprintln!("reopen: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    };
    check(store.range(all).await.expect("range after reopen").kvs);
}
