//! rudder's controller manager: the controllers that move the cluster toward its declared
//! state, each a level-triggered loop on `kube::runtime` (watcher, reflector, Controller).
//!
//! Each controller is one module: a pure `decide` part (observed objects in, a plan of creates,
//! deletes and patches out, table-tested) and an IO part that watches, calls `decide` and
//! applies the plan through the API. [`registry`] lists them once; [`run`] starts the ones
//! `--controllers` selects and stops them when `stop` resolves.

mod context;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
mod error;
mod events;
mod expectations;
pub mod gc;
pub mod hash;
mod informer;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod pods;
pub mod registry;
pub mod replicaset;
pub mod resourcequota;
pub mod serviceaccount;
pub mod statefulset;
pub mod volume;

use std::future::Future;

pub use context::Context;
pub use error::{ControllerError, Result};

/// What the controller manager runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--controllers` entries, upstream's syntax: `*` (all enabled by default), `name`
    /// (enable), `-name` (disable).
    pub controllers: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controllers: vec!["*".into()],
        }
    }
}

/// Runs the selected controllers until `stop` resolves. Returns early only on an unusable
/// selection or when a cache cannot be filled.
pub async fn run(
    client: kube::Client,
    options: Options,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let selected = registry::select(&options.controllers)?;
    let names: Vec<&str> = selected.iter().map(|c| c.name).collect();
    tracing::info!(controllers = ?names, "starting the controller manager");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = Context::start(client, stop_rx.clone(), volume::LOCAL_PATH_DIR.into()).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for c in selected {
        let ctx = ctx.clone();
        let name = c.name;
        tasks.spawn(async move {
            if let Err(e) = (c.start)(ctx).await {
                tracing::error!(controller = name, error = %e, "controller stopped");
            }
        });
    }
    stop.await;
    let _ = stop_tx.send(true);
    // Controllers shut down gracefully on the stop signal; do not wait for ever on a stuck one.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
