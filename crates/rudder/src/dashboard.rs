//! `rudder dashboard token`: a bearer token for the web dashboard with the administrator's
//! rights. The admin kubeconfig holds a client certificate, which a browser cannot present
//! to a page's `fetch`; so, with that kubeconfig, this makes (once) the ServiceAccount
//! `kube-system/rudder-dashboard-admin` bound to `cluster-admin`, and prints a short-lived
//! token for it from the TokenRequest API. Nothing long-lived is stored: each run mints a new
//! token, and deleting the ServiceAccount revokes them all.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};

/// The ServiceAccount (in kube-system) and ClusterRoleBinding the admin's tokens belong to.
pub const ADMIN_ACCOUNT: &str = "rudder-dashboard-admin";
const NAMESPACE: &str = "kube-system";

#[derive(Args, Debug)]
pub struct DashboardArgs {
    #[command(subcommand)]
    command: DashboardCommand,
}

#[derive(Subcommand, Debug)]
enum DashboardCommand {
    /// Prints a token that signs in to the dashboard as cluster-admin (through the
    /// kube-system/rudder-dashboard-admin ServiceAccount, created on first use).
    Token {
        /// The server's data directory (its admin kubeconfig).
        #[arg(long, default_value = ".rudder", env = "RUDDER_DATA_DIR")]
        data_dir: PathBuf,
        /// How long the token is valid, in seconds (at least 600).
        #[arg(long, default_value_t = 8 * 3600)]
        duration_seconds: i64,
    },
}

pub async fn run(args: DashboardArgs) -> Result<()> {
    match args.command {
        DashboardCommand::Token {
            data_dir,
            duration_seconds,
        } => token(&data_dir, duration_seconds).await,
    }
}

/// Creates `obj` unless it exists (409): the account and binding are made on the first run only,
/// and a later run must not fail or change what an administrator may have edited.
async fn ensure<K>(api: &Api<K>, obj: &K) -> Result<()>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn token(data_dir: &std::path::Path, duration_seconds: i64) -> Result<()> {
    let kubeconfig = data_dir.join("kubeconfig");
    let client = crate::node::client(&kubeconfig).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(ADMIN_ACCOUNT.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ensure(&accounts, &account)
        .await
        .context("creating the dashboard's ServiceAccount")?;
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(ADMIN_ACCOUNT.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: ADMIN_ACCOUNT.into(),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        }]),
    };
    ensure(&Api::<ClusterRoleBinding>::all(client), &binding)
        .await
        .context("binding the dashboard's ServiceAccount to cluster-admin")?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(duration_seconds),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = accounts
        .create_token_request(ADMIN_ACCOUNT, &PostParams::default(), &request)
        .await
        .context("requesting a token")?;
    let token = answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("the server answered the TokenRequest without a token")?;
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let server = kc
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref()?.server.clone())
        .unwrap_or_else(|| "https://SERVER:6443".into());
    // The URL goes to stderr so `TOKEN=$(rudder dashboard token)` captures the token alone.
    eprintln!(
        "open {}/dashboard/ and sign in with this token (valid {} s):",
        server.trim_end_matches('/'),
        duration_seconds
    );
    println!("{token}");
    Ok(())
}
