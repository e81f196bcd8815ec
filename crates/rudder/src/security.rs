//! Encryption-at-rest and audit flags of `rudder server` and the API server options they make
//! (`docs/security.md`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use rudder_apiserver::audit::{AuditConfig, Destination, Policy};
use rudder_apiserver::encryption::Transformer;

/// Encryption at rest and the audit log, upstream's flags.
#[derive(Args, Debug, Clone)]
pub struct SecurityArgs {
    /// An `apiserver.config.k8s.io/v1` EncryptionConfiguration: which resources are encrypted
    /// in the store, with which keys. Without it nothing is encrypted.
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// An `audit.k8s.io/v1` Policy: which requests the audit log records, at which level.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events go, one JSON line each (`-`: standard output).
    #[arg(long)]
    pub audit_log_path: Option<String>,
    /// Megabytes an audit log file may reach before it is rotated (0: never).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// Rotated audit log files to keep (0: all).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
}

/// The transformer of `--encryption-provider-config`, if given.
pub fn encryption(args: &SecurityArgs) -> Result<Option<Arc<Transformer>>> {
    let Some(path) = &args.encryption_provider_config else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let t = Transformer::parse(&text)
        .with_context(|| format!("--encryption-provider-config {}", path.display()))?;
    tracing::info!(
        file = %path.display(),
        secrets = t.writer_for("", "secrets").as_deref().unwrap_or("identity (not listed)"),
        "encryption at rest configured"
    );
    Ok(Some(Arc::new(t)))
}

/// The audit log's configuration, if both the policy and the path are given.
pub fn audit(args: &SecurityArgs) -> Result<Option<AuditConfig>> {
    let (policy, path) = match (&args.audit_policy_file, &args.audit_log_path) {
        (None, None) => return Ok(None),
        (Some(policy), Some(path)) => (policy, path),
        (None, Some(_)) => anyhow::bail!("--audit-log-path needs --audit-policy-file"),
        (Some(_), None) => anyhow::bail!("--audit-policy-file needs --audit-log-path"),
    };
    let text =
        std::fs::read_to_string(policy).with_context(|| format!("reading {}", policy.display()))?;
    let policy = Policy::parse(&text)
        .with_context(|| format!("--audit-policy-file {}", policy.display()))?;
    let destination = if path == "-" {
        Destination::Stdout
    } else {
        Destination::File {
            path: PathBuf::from(path),
            max_bytes: args.audit_log_maxsize.saturating_mul(1024 * 1024),
            max_backups: args.audit_log_maxbackup,
        }
    };
    tracing::info!(path = %path, "audit log configured");
    Ok(Some(AuditConfig {
        policy,
        destination,
    }))
}
