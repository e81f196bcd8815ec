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
pub mod hpa;
mod informer;
mod informer_index;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podgc;
pub mod pods;
mod queue_metrics;
pub mod registry;
pub mod replicaset;
pub mod resourcequota;
pub mod revisions;
pub mod rootca;
pub mod serviceaccount;
pub mod serviceaccount_token;
pub mod statefulset;
pub mod volume;

use std::future::Future;

pub use context::Context;
pub use error::{ControllerError, Result};

/// What the controller manager runs, and what it is handed by the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--controllers` entries, upstream's syntax: `*` (all enabled by default), `name`
    /// (enable), `-name` (disable).
    pub controllers: Vec<String>,
    /// The cluster CA (PEM) published as `kube-root-ca.crt` in every namespace and written into
    /// legacy service-account token Secrets; `None` leaves both without it.
    pub root_ca_pem: Option<String>,
    /// The service-account signing key (PEM) legacy token Secrets are signed with; `None`
    /// turns the token controller off.
    pub service_account_key_pem: Option<String>,
    /// Terminated pods kept before the pod garbage collector deletes the oldest
    /// (`--terminated-pod-gc-threshold`; 0 keeps them all).
    pub terminated_pod_gc_threshold: usize,
    /// Where the local-path provisioner puts volumes (`--local-path-dir`).
    pub local_path_dir: std::path::PathBuf,
    /// How often each HorizontalPodAutoscaler is evaluated
    /// (`--horizontal-pod-autoscaler-sync-period`).
    pub hpa_sync_period: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controllers: vec!["*".into()],
            root_ca_pem: None,
            service_account_key_pem: None,
            terminated_pod_gc_threshold: podgc::DEFAULT_TERMINATED_POD_THRESHOLD,
            local_path_dir: volume::LOCAL_PATH_DIR.into(),
            hpa_sync_period: hpa::DEFAULT_SYNC_PERIOD,
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
    let ctx = Context::start(client, stop_rx.clone(), std::sync::Arc::new(options)).await?;
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
