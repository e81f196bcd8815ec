//! Running `nft`: applying a script as one transaction, deleting the proxy's table, and the
//! kernel settings the proxy needs.

use std::io::Write;
use std::process::{Command, Stdio};

use super::ProxyError;

/// Runs `script` through `nft -f -` (one atomic transaction).
pub fn apply(script: &str) -> Result<(), ProxyError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ProxyError::NftMissing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| ProxyError::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ProxyError::Nft(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ProxyError::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Deletes table `table` if it exists.
pub fn delete_table(table: &str) -> Result<(), ProxyError> {
    apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
}

/// Turns on IPv4 forwarding (pods reaching Services and the outside are forwarded), and asks
/// the bridge to pass bridged IPv4 through netfilter when `br_netfilter` is loaded: a reply
/// from a pod to a pod on the same bridge must meet the connection's DNAT to be undone.
pub fn kernel_settings() {
    match std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        Ok(()) => {}
        Err(e) => tracing::warn!(error = %e, "could not set net.ipv4.ip_forward=1"),
    }
    let bridge_nf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if std::path::Path::new(bridge_nf).exists() {
        if let Err(e) = std::fs::write(bridge_nf, "1") {
            tracing::warn!(error = %e, "could not set net.bridge.bridge-nf-call-iptables=1");
        }
    } else {
        tracing::warn!(
            "br_netfilter is not loaded: a pod reaching a Service whose endpoint is on its own bridge may get no answer (modprobe br_netfilter)"
        );
    }
}
