//! Where pods' container logs live on the node, as the kubelet lays them out
//! (`<data>/logs/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`), how long they outlive
//! their pod (`--pod-logs-retention`), and the agent's `/logs/` endpoint that serves them
//! (`kubectl get --raw /api/v1/nodes/NODE/proxy/logs/pods/`), so the logs of a deleted pod can
//! still be read until they are garbage-collected.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rudder_runtime::ContainerRuntime;

/// Upstream's default for how long the logs of a deleted pod stay (ours; the kubelet removes
/// them with the pod's containers, a minute or so after the pod is gone).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// The directory every pod's log directory lives in.
pub fn logs_root(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The log directory of one pod.
pub fn pod_log_dir(data_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    logs_root(data_dir)
        .join("pods")
        .join(format!("{namespace}_{name}_{uid}"))
}

/// The pod uid a log directory name (`<ns>_<name>_<uid>`) belongs to. Namespaces and names
/// cannot contain `_`, so the uid is what follows the second one.
pub fn uid_of(dir_name: &str) -> Option<&str> {
    let mut parts = dir_name.splitn(3, '_');
    let (_, _, uid) = (parts.next()?, parts.next()?, parts.next()?);
    (!uid.is_empty()).then_some(uid)
}

/// Which pod log directories to delete: those of pods the runtime no longer holds, untouched
/// for longer than `retention`. `dirs` are `(name, last modified)`.
pub fn expired(
    dirs: &[(String, SystemTime)],
    live_uids: &HashSet<String>,
    retention: Duration,
    now: SystemTime,
) -> Vec<String> {
    dirs.iter()
        .filter(|(name, modified)| {
            let live = uid_of(name).is_some_and(|uid| live_uids.contains(uid));
            let age = now.duration_since(*modified).unwrap_or_default();
            !live && age > retention
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The newest modification time under `dir` (the directory itself, its container directories
/// and their files): when the pod last wrote a log line.
fn last_written(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok()?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if let Ok(m) = meta.modified() {
                newest = newest.max(m);
            }
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some(newest)
}

/// Deletes the expired log directories every minute (at most every `retention`), until the
/// task is dropped.
pub async fn collect(data_dir: PathBuf, runtime: Arc<dyn ContainerRuntime>, retention: Duration) {
    let every = retention.clamp(Duration::from_secs(1), Duration::from_secs(60));
    let pods_dir = logs_root(&data_dir).join("pods");
    loop {
        tokio::time::sleep(every).await;
        let live: HashSet<String> = match runtime.list_pod_sandboxes().await {
            Ok(list) => list.into_iter().map(|s| s.metadata.uid).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "pod log collection: listing sandboxes");
                continue;
            }
        };
        let dir = pods_dir.clone();
        let gone = tokio::task::spawn_blocking(move || {
            let dirs: Vec<(String, SystemTime)> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|e| {
                            let name = e.file_name().to_string_lossy().into_owned();
                            Some((name, last_written(&e.path())?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let expired = expired(&dirs, &live, retention, SystemTime::now());
            for name in &expired {
                if let Err(e) = std::fs::remove_dir_all(dir.join(name)) {
                    tracing::warn!(dir = %name, error = %e, "removing a deleted pod's logs");
                }
            }
            expired.len()
        })
        .await
        .unwrap_or(0);
        if gone > 0 {
            tracing::info!(pods = gone, "removed the logs of deleted pods");
        }
    }
}

/// What `/logs/<path>` answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// A directory: its entries, directories with a trailing `/`, one per line.
    Listing(String),
    /// A file's bytes.
    File(Vec<u8>),
    /// Nothing there, or a path that leaves the logs directory.
    NotFound,
}

/// Reads `segments` under the logs directory. Only plain names are followed: `.`, `..`, empty
/// segments and symbolic links are refused, so nothing outside the directory is reachable.
pub fn serve(data_dir: &Path, segments: &[&str]) -> Served {
    let mut path = logs_root(data_dir);
    for s in segments {
        if s.is_empty() || *s == "." || *s == ".." || s.contains(['/', '\\', '\0']) {
            return Served::NotFound;
        }
        path.push(s);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Served::NotFound,
            Ok(_) => {}
            Err(_) => return Served::NotFound,
        }
    }
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| {
                            let mut n = e.file_name().to_string_lossy().into_owned();
                            if e.file_type().is_ok_and(|t| t.is_dir()) {
                                n.push('/');
                            }
                            n
                        })
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            Served::Listing(names.iter().map(|n| format!("{n}\n")).collect())
        }
        Ok(_) => std::fs::read(&path).map_or(Served::NotFound, Served::File),
        Err(_) => Served::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_from_directory_names() {
        assert_eq!(uid_of("default_web-1_0f3a-11"), Some("0f3a-11"));
        assert_eq!(
            uid_of("ns_pod_uid_with_underscore"),
            Some("uid_with_underscore")
        );
        assert_eq!(uid_of("junk"), None);
        assert_eq!(uid_of("a_b_"), None);
    }

    #[test]
    fn expiry_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        let hour = Duration::from_secs(3600);
        let dirs = vec![
            ("ns_live_u1".to_owned(), now - Duration::from_secs(7200)),
            ("ns_gone-old_u2".to_owned(), now - Duration::from_secs(7200)),
            (
                "ns_gone-recent_u3".to_owned(),
                now - Duration::from_secs(60),
            ),
            ("not-a-pod".to_owned(), now - Duration::from_secs(7200)),
        ];
        let live = HashSet::from(["u1".to_owned()]);
        assert_eq!(
            expired(&dirs, &live, hour, now),
            ["ns_gone-old_u2", "not-a-pod"]
        );
        assert_eq!(
            expired(&dirs, &live, Duration::ZERO, now),
            ["ns_gone-old_u2", "ns_gone-recent_u3", "not-a-pod"]
        );
    }

    #[test]
    fn serves_listings_and_files_and_nothing_outside() {
        let tmp = std::env::temp_dir().join(format!("rudder-pod-logs-{}", std::process::id()));
        let dir = pod_log_dir(&tmp, "ns", "web", "u1").join("main");
        std::fs::create_dir_all(&dir).unwrap_or_default();
        std::fs::write(dir.join("0.log"), b"line\n").unwrap_or_default();
        std::fs::write(tmp.join("secret"), b"x").unwrap_or_default();
        assert_eq!(
            serve(&tmp, &["pods"]),
            Served::Listing("ns_web_u1/\n".into())
        );
        assert_eq!(
            serve(&tmp, &["pods", "ns_web_u1", "main", "0.log"]),
            Served::File(b"line\n".to_vec())
        );
        assert_eq!(
            serve(&tmp, &["pods", "..", "..", "secret"]),
            Served::NotFound
        );
        assert_eq!(serve(&tmp, &[".."]), Served::NotFound);
        assert_eq!(serve(&tmp, &["pods", "nope"]), Served::NotFound);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
