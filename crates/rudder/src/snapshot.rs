//! `rudder snapshot save|restore|status`: backups of the embedded store (docs/operations.md).
//!
//! `save` asks the running server for `GET /snapshot` (cluster-admin only), a copy of the store
//! at one revision taken while it keeps serving; with `--data-dir` it reads a stopped server's
//! store directly. Either way the file is written beside its destination, checked whole (layout,
//! counts, SHA-256) and only then renamed into place. `restore` builds a new data directory's
//! store from a snapshot, offline. etcd clusters are backed up with `etcdctl` instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::{AsyncReadExt, StreamExt};
use rudder_store::Store;
use rudder_store_embedded::snapshot::{self, SnapshotInfo};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Saves a consistent snapshot of the embedded store to FILE: from the running server
    /// (as a cluster administrator), or with `--data-dir` from a stopped server's data directory.
    Save {
        /// Where to write the snapshot.
        file: PathBuf,
        /// Credentials of a cluster administrator (the server's own kubeconfig by default).
        #[arg(long, env = "KUBECONFIG", default_value = ".rudder/kubeconfig")]
        kubeconfig: PathBuf,
        /// Read the store of this data directory directly (the server must be stopped).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Builds a new data directory's store from a snapshot (offline; the directory must be
    /// empty or absent). Then: `rudder server --data-dir DIR`.
    Restore {
        /// The snapshot to restore.
        file: PathBuf,
        /// The new data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Checks a snapshot file whole and prints what it holds.
    Status {
        /// The snapshot to check.
        file: PathBuf,
    },
}

/// The embedded store's file in a data directory.
pub fn store_file(data_dir: &Path) -> PathBuf {
    data_dir.join("store/state.redb")
}

pub async fn run(args: SnapshotArgs) -> Result<()> {
    match args.command {
        SnapshotCommand::Save {
            file,
            kubeconfig,
            data_dir,
        } => {
            let info = match data_dir {
                Some(dir) => save_offline(&dir, &file).await?,
                None => save_online(&kubeconfig, &file).await?,
            };
            println!("saved {} ({})", file.display(), describe(&info));
        }
        SnapshotCommand::Restore { file, data_dir } => {
            let info = restore(&file, &data_dir)?;
            println!(
                "restored {} into {} ({})",
                file.display(),
                data_dir.display(),
                describe(&info)
            );
            println!(
                "start it with: rudder server --data-dir {} (copy pki/ from the old data directory \
                 first to keep the cluster's CA and service-account key)",
                data_dir.display()
            );
        }
        SnapshotCommand::Status { file } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let info = snapshot::verify(std::io::BufReader::new(f))
                .with_context(|| format!("checking {}", file.display()))?;
            println!("{}: {}", file.display(), describe(&info));
        }
    }
    Ok(())
}

fn describe(info: &SnapshotInfo) -> String {
    format!(
        "revision {}, {} keys, {} versions since compaction at {}, data format {}, {} bytes",
        info.revision, info.keys, info.history, info.compacted, info.format, info.bytes
    )
}

/// Streams the running server's snapshot into `file`.
async fn save_online(kubeconfig: &Path, file: &Path) -> Result<SnapshotInfo> {
    let client = crate::node::client(kubeconfig).await?;
    let request = http::Request::get("/snapshot")
        .body(Vec::new())
        .context("building the request")?;
    let mut body = client.request_stream(request).await.context(
        "asking the server for a snapshot (GET /snapshot needs a cluster administrator)",
    )?;
    write_checked(file, async |out| {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = body
                .read(&mut buf)
                .await
                .context("reading the snapshot from the server")?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n])?;
        }
    })
    .await
}

/// Reads the store of a stopped server's data directory into `file`.
async fn save_offline(data_dir: &Path, file: &Path) -> Result<SnapshotInfo> {
    let path = store_file(data_dir);
    if !path.exists() {
        bail!(
            "{} has no embedded store ({} is missing)",
            data_dir.display(),
            path.display()
        );
    }
    // Opening replays the write-ahead log, so writes acknowledged before a crash are included.
    let store = rudder_store_embedded::EmbeddedStore::open(&path).with_context(|| {
        format!(
            "opening {} (if a server is running on it, save through the server: rudder snapshot save FILE)",
            path.display()
        )
    })?;
    let mut stream = store.snapshot().await?;
    write_checked(file, async |out| {
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)?;
        }
        Ok(())
    })
    .await
}

/// Writes `file` through `fill` into a temporary file beside it, checks it whole, and renames it
/// into place: a failed or truncated transfer never leaves a file that looks like a snapshot.
async fn write_checked(
    file: &Path,
    fill: impl AsyncFnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<SnapshotInfo> {
    let mut name = file.file_name().context("FILE has no name")?.to_os_string();
    name.push(".part");
    let partial = file.with_file_name(name);
    let result = async {
        let f = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut out = std::io::BufWriter::new(f);
        fill(&mut out).await?;
        let f = out.into_inner().context("writing the snapshot")?;
        f.sync_all().context("syncing the snapshot")?;
        let f = std::fs::File::open(&partial)?;
        let info = snapshot::verify(std::io::BufReader::new(f))
            .context("the snapshot received is not whole")?;
        std::fs::rename(&partial, file)
            .with_context(|| format!("renaming to {}", file.display()))?;
        Ok(info)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Restores `file` into a new data directory.
fn restore(file: &Path, data_dir: &Path) -> Result<SnapshotInfo> {
    if let Ok(mut entries) = std::fs::read_dir(data_dir)
        && entries.next().is_some()
    {
        bail!(
            "{} is not empty: restore into a new data directory",
            data_dir.display()
        );
    }
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let target = store_file(data_dir);
    let result = snapshot::restore(std::io::BufReader::new(f), &target)
        .with_context(|| format!("restoring {}", file.display()));
    if result.is_err()
        && let Some(dir) = target.parent()
    {
        // The refused restore left no file; leave no empty directory either, so the same
        // directory can be used again.
        let _ = std::fs::remove_dir(dir);
    }
    result
}
