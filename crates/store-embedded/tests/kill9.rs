//! Durability: a writer process is killed with SIGKILL mid-load; after reopening, every write it
//! acknowledged is present, intact, at the revision it was acknowledged with.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rudder_store::{RangeRequest, Store};
use rudder_store_embedded::EmbeddedStore;

/// Kills the child by PID when dropped, so a failing test leaves no process behind.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the writer until it has acknowledged `at_least` writes, then SIGKILLs it. Returns the
/// acknowledged keys with their revisions.
fn write_then_kill(path: &std::path::Path, at_least: usize) -> BTreeMap<String, u64> {
    let child = Command::new(env!("CARGO_BIN_EXE_rudder-store-crash-writer"))
        .arg(path)
        .arg("32")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let mut child = Killer(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut acked = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("ACK"), Some(key), Some(rev)) => {
                acked.insert(key.to_owned(), rev.parse().expect("revision"));
            }
            _ => panic!("unexpected writer output {line:?}"),
        }
        if acked.len() >= at_least {
            // SIGKILL while the writer is still busy committing.
            child.0.kill().expect("kill -9");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writer too slow: {} acks",
            acked.len()
        );
    }
    let status = child.0.wait().expect("wait");
    assert!(
        !status.success(),
        "writer must have been killed, got {status}"
    );
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let wal = dir.path().join("store.redb.wal");
    let mut all = BTreeMap::new();
    let mut replayed_rounds = 0;
    for round in 0..3 {
        let acked = write_then_kill(&path, 1500);
        assert!(acked.len() >= 1500, "round {round}");
        // Writes since the last checkpoint exist only in the log: reopening must replay it.
        if std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0 {
            replayed_rounds += 1;
        }
        all.extend(acked);
        let store = EmbeddedStore::open(&path).expect("reopen after kill -9");
        let current = store.current_revision().await.expect("revision");
        let max_acked = all.values().copied().max().expect("some acks");
        assert!(
            current >= max_acked,
            "revision went back: {current} < {max_acked}"
        );
        for (key, rev) in &all {
            let kv = store.get(key, None).await.expect("get").kv;
            let kv = kv.unwrap_or_else(|| panic!("round {round}: acknowledged {key} lost"));
            assert_eq!(kv.mod_revision, *rev, "{key}");
            assert_eq!(
                kv.value,
                format!("{key}:").repeat(64).into_bytes(),
                "{key} torn"
            );
        }
        // Nothing half-written: every stored key has an intact value and a unique revision.
        let everything = store
            .range(RangeRequest::prefix("/crash/"))
            .await
            .expect("range");
        let mut revisions = std::collections::HashSet::new();
        for kv in &everything.kvs {
            assert_eq!(kv.value, format!("{}:", kv.key).repeat(64).into_bytes());
            assert!(
                revisions.insert(kv.mod_revision),
                "duplicate revision {}",
                kv.mod_revision
            );
            assert!(kv.mod_revision <= current);
        }
        assert!(everything.kvs.len() >= all.len());
        drop(store);
        // The writer thread releases the file when the last handle is gone.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        replayed_rounds > 0,
        "no round left a log to replay; the test did not exercise recovery"
    );
}
