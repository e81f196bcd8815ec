//! What the nftables-based components (the service proxy, the NetworkPolicy enforcer) share:
//! running `nft` ([`apply`], [`delete_table`]), a table held as data and the script from one
//! version to the next ([`ruleset`]), the loop that keeps the kernel's table in step with the
//! watched objects ([`sync`]), and the kernel settings both need.

pub mod ruleset;
pub mod sync;

use std::io::Write;
use std::process::{Command, Stdio};

pub use ruleset::{Chain, Map, Ruleset, Table};

/// What can go wrong talking to nftables.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The `nft` program could not be started (Debian package `nftables`).
    #[error("running nft (is the nftables package installed?): {0}")]
    NftMissing(std::io::Error),
    /// `nft` refused a script.
    #[error("nft: {0}")]
    Nft(String),
    /// The table name is not one nft accepts.
    #[error("invalid table name {0:?}: letters, digits, '-' and '_', starting with a letter")]
    TableName(String),
}

/// Whether `name` is a table name `nft` accepts and that cannot smuggle syntax into a script.
pub fn valid_table(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Runs `script` through `nft -f -` (one atomic transaction).
pub fn apply(script: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::NftMissing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| NftError::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError::Nft(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Deletes `table` if it exists.
pub fn delete_table(table: &Table<'_>) -> Result<(), NftError> {
    apply(&delete_script(table))
}

/// The script deleting `table` whether or not it exists.
fn delete_script(table: &Table<'_>) -> String {
    format!("add table {table}\ndelete table {table}\n")
}

/// Turns on IPv4 forwarding (pods reaching Services and the outside are forwarded), and asks
/// the bridge to pass bridged IPv4 through netfilter when `br_netfilter` is loaded: a reply
/// from a pod to a pod on the same bridge must meet the connection's DNAT to be undone, and
/// NetworkPolicies between pods of one bridge are enforced in the `inet` forward hook.
/// Returns whether bridged traffic reaches netfilter.
pub fn kernel_settings() -> bool {
    match std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        Ok(()) => {}
        Err(e) => tracing::warn!(error = %e, "could not set net.ipv4.ip_forward=1"),
    }
    let bridge_nf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if !std::path::Path::new(bridge_nf).exists() {
        // A modular kernel loads it on demand; a kernel with it built in already has the file.
        let _ = Command::new("modprobe")
            .arg("br_netfilter")
            .stderr(Stdio::null())
            .status();
    }
    if std::path::Path::new(bridge_nf).exists() {
        match std::fs::write(bridge_nf, "1") {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not set net.bridge.bridge-nf-call-iptables=1");
                std::fs::read_to_string(bridge_nf).is_ok_and(|v| v.trim() == "1")
            }
        }
    } else {
        tracing::warn!(
            "br_netfilter is not loaded: replies between pods of one bridge skip netfilter (Service DNAT, NetworkPolicy) (modprobe br_netfilter)"
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        for (name, ok) in [
            ("rudder", true),
            ("rudder-40123", true),
            ("a_b", true),
            ("1abc", false),
            ("", false),
            ("bad name", false),
            ("x;flush ruleset", false),
        ] {
            assert_eq!(valid_table(name), ok, "{name}");
        }
    }
}
