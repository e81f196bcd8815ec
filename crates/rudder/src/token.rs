//! `rudder token create`: a bootstrap token for joining nodes, stored as kubeadm stores it (a
//! `bootstrap.kubernetes.io/token` Secret in kube-system), and the `rudder agent` command that
//! uses it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Creates a bootstrap token and prints the command that joins a node with it.
    Create {
        /// The server's data directory (its admin kubeconfig and CA).
        #[arg(long, default_value = ".rudder", env = "RUDDER_DATA_DIR")]
        data_dir: PathBuf,
        /// How long the token is valid, in hours (0: for ever).
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
    },
}

pub async fn run(args: TokenArgs) -> Result<()> {
    match args.command {
        TokenCommand::Create {
            data_dir,
            ttl_hours,
        } => create(&data_dir, ttl_hours).await,
    }
}

async fn create(data_dir: &std::path::Path, ttl_hours: u64) -> Result<()> {
    let kubeconfig = data_dir.join("kubeconfig");
    let client = crate::node::client(&kubeconfig).await?;
    let token = rudder_auth::bootstrap::BootstrapToken::generate();
    let expires = (ttl_hours > 0).then(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(now + ttl_hours * 3600).unwrap_or(i64::MAX)
    });
    let secret: Secret = serde_json::from_value(token.secret(expires, "rudder token create"))?;
    let secrets: Api<Secret> = Api::namespaced(client, "kube-system");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .context("storing the token")?;
    let ca =
        std::fs::read_to_string(data_dir.join("pki/ca.crt")).context("reading the cluster CA")?;
    let pin = rudder_pki::ca_cert_hash(&ca).context("the cluster CA does not parse")?;
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let server = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref()?.server.clone())
        .unwrap_or_else(|| "https://SERVER:6443".into());
    println!("rudder agent --server {server} --token {token} --ca-cert-hash {pin}");
    Ok(())
}
