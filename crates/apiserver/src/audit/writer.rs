//! The audit log's IO edge: a bounded queue that request handling never waits on, and one
//! thread that writes its lines to a file (rotated by size, as upstream's lumberjack) or stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::AuditError;

/// Events waiting to be written before new ones are dropped.
const QUEUE: usize = 10_000;
/// At most one warning about dropped events per this period.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Where events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `--audit-log-path -`.
    Stdout,
    /// A file, rotated once it would exceed `max_bytes` (0: never), keeping `max_backups`
    /// rotated files (0: all).
    File {
        path: PathBuf,
        max_bytes: u64,
        max_backups: usize,
    },
}

/// The sending side; cheap to call from any request.
pub struct Sink {
    tx: mpsc::Sender<Vec<u8>>,
    dropped: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Sink {
    /// Opens the destination (so a bad path fails the start) and starts the writer thread.
    pub fn start(dest: Destination) -> Result<Self, AuditError> {
        let out = Output::open(dest)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(rx, out))
            .map_err(|e| AuditError::Io(format!("starting the audit writer: {e}")))?;
        Ok(Self {
            tx,
            dropped: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    /// Queues one line; when the queue is full the line is dropped and counted.
    pub fn send(&self, line: Vec<u8>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(line) {
            let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                *last = Some(Instant::now());
                tracing::warn!(
                    dropped_total = total,
                    "audit log cannot keep up: events dropped"
                );
            }
        }
    }

    /// Events dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum Output {
    Stdout(std::io::Stdout),
    File {
        file: std::io::BufWriter<std::fs::File>,
        path: PathBuf,
        size: u64,
        max_bytes: u64,
        max_backups: usize,
    },
}

fn open_append(path: &Path) -> Result<(std::fs::File, u64), AuditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| AuditError::Io(format!("creating {}: {e}", dir.display())))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AuditError::Io(format!("opening {}: {e}", path.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, size))
}

impl Output {
    fn open(dest: Destination) -> Result<Self, AuditError> {
        Ok(match dest {
            Destination::Stdout => Output::Stdout(std::io::stdout()),
            Destination::File {
                path,
                max_bytes,
                max_backups,
            } => {
                let (file, size) = open_append(&path)?;
                Output::File {
                    file: std::io::BufWriter::new(file),
                    path,
                    size,
                    max_bytes,
                    max_backups,
                }
            }
        })
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => out.lock().write_all(line),
            Output::File {
                file,
                path,
                size,
                max_bytes,
                max_backups,
            } => {
                let len = line.len() as u64;
                if *max_bytes > 0 && *size > 0 && *size + len > *max_bytes {
                    file.flush()?;
                    std::fs::rename(&*path, backup_name(path, SystemTime::now()))?;
                    let (fresh, _) = open_append(path).map_err(std::io::Error::other)?;
                    *file = std::io::BufWriter::new(fresh);
                    *size = 0;
                    prune_backups(path, *max_backups);
                }
                file.write_all(line)?;
                *size += len;
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

fn write_loop(mut rx: mpsc::Receiver<Vec<u8>>, mut out: Output) {
    // Write everything queued, then flush once: a burst costs one flush, a lone event is on
    // disk at once.
    while let Some(line) = rx.blocking_recv() {
        let mut result = out.write(&line);
        while result.is_ok()
            && let Ok(more) = rx.try_recv()
        {
            result = out.write(&more);
        }
        if let Err(e) = result.and_then(|()| out.flush()) {
            tracing::error!(error = %e, "writing the audit log");
        }
    }
}

/// `audit.log` → `audit-2026-11-23T10-00-00.123456Z.log` beside it (lumberjack's shape).
pub fn backup_name(path: &Path, at: SystemTime) -> PathBuf {
    let stamp = super::event::micro_time(at).replace(':', "-");
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{stamp}.{ext}"),
        None => format!("{stem}-{stamp}"),
    };
    path.with_file_name(name)
}

/// Of the backups `names`, those to delete so that only the `keep` newest remain (0: keep
/// all). Names sort by their timestamps.
pub fn backups_to_delete(mut names: Vec<String>, keep: usize) -> Vec<String> {
    if keep == 0 || names.len() <= keep {
        return Vec::new();
    }
    names.sort();
    names.truncate(names.len() - keep);
    names
}

fn prune_backups(path: &Path, keep: usize) {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem().and_then(|s| s.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"));
    let prefix = format!("{stem}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix) && ext.as_ref().is_none_or(|x| n.ends_with(x.as_str())))
        .collect();
    for name in backups_to_delete(names, keep) {
        if let Err(e) = std::fs::remove_file(dir.join(&name)) {
            tracing::warn!(error = %e, %name, "removing an old audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_and_pruning() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(
            backup_name(Path::new("/var/log/audit.log"), at),
            PathBuf::from("/var/log/audit-2023-11-14T22-13-20.123456Z.log")
        );
        let names = vec!["a-3.log".to_owned(), "a-1.log".into(), "a-2.log".into()];
        assert_eq!(backups_to_delete(names.clone(), 2), vec!["a-1.log"]);
        assert!(backups_to_delete(names.clone(), 0).is_empty());
        assert!(backups_to_delete(names, 5).is_empty());
    }

    #[test]
    fn rotates_by_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let sink = Sink::start(Destination::File {
            path: path.clone(),
            max_bytes: 100,
            max_backups: 2,
        })
        .expect("start");
        for i in 0..20 {
            sink.send(
                format!("{{\"n\":{i:04},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxx\"}}\n").into_bytes(),
            );
            // Distinct backup timestamps (microseconds) for every rotation.
            std::thread::sleep(Duration::from_millis(2));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current.contains("\"n\":0019") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "last event not written: {current}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert_eq!(files.len(), 3, "the log and two backups: {files:?}");
        for f in &files {
            let len = std::fs::metadata(dir.path().join(f)).expect("meta").len();
            assert!(len <= 100, "{f} is {len} bytes");
        }
        assert_eq!(sink.dropped(), 0);
    }
}
