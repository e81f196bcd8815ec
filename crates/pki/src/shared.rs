//! Several API servers of one cluster share its identity: the CA, the service-account signing key
//! and the admin certificate are copied from a first server's `pki/` before a second one starts,
//! while each server keeps a serving certificate of its own (its own names).

use std::path::Path;

use crate::{ADMIN_CERT, ADMIN_KEY, CA_CERT, CA_KEY, PkiError, SA_KEY, SA_PUB, files};

/// The files that make a cluster's identity, and whether each is secret.
const SHARED: [(&str, bool); 6] = [
    (CA_CERT, false),
    (CA_KEY, true),
    (SA_KEY, true),
    (SA_PUB, false),
    (ADMIN_CERT, false),
    (ADMIN_KEY, true),
];

/// What [`seed_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    /// `dir` had no CA: the shared files were copied into it.
    Copied,
    /// `dir` already holds the same CA (a restart): nothing was written.
    AlreadyShared,
}

/// Makes `dir` hold the cluster identity of `source` (another server's `pki/`), before
/// [`crate::Pki::load_or_create`] runs on it. A `dir` with a CA of its own is an error, not
/// overwritten: its server already issued certificates that would stop being trusted.
pub fn seed_from(source: &Path, dir: &Path) -> Result<Seeded, PkiError> {
    let source_ca = files::read_opt(&source.join(CA_CERT))?.ok_or_else(|| PkiError::Corrupt {
        path: source.join(CA_CERT),
        message: "no cluster CA to share (start the first server before copying its pki/)".into(),
    })?;
    files::ensure_dir(dir)?;
    if let Some(own) = files::read_opt(&dir.join(CA_CERT))? {
        return if own.trim() == source_ca.trim() {
            Ok(Seeded::AlreadyShared)
        } else {
            Err(PkiError::Corrupt {
                path: dir.join(CA_CERT),
                message: format!(
                    "a different cluster CA than {}'s: this server belongs to another cluster \
                     (remove its pki/ to join this one)",
                    source.display()
                ),
            })
        };
    }
    // Everything is read before anything is written, so a missing file leaves `dir` empty.
    let mut contents = Vec::with_capacity(SHARED.len());
    for (name, secret) in SHARED {
        let path = source.join(name);
        let text = files::read_opt(&path)?.ok_or_else(|| PkiError::Corrupt {
            path: path.clone(),
            message: "missing from the server's pki/ to share".into(),
        })?;
        contents.push((name, secret, text));
    }
    // The CA certificate goes last: its presence marks a complete copy for the next start.
    contents.sort_by_key(|(name, _, _)| *name == CA_CERT);
    for (name, secret, text) in contents {
        if secret {
            files::write_secret(&dir.join(name), &text)?;
        } else {
            files::write_public(&dir.join(name), &text)?;
        }
    }
    Ok(Seeded::Copied)
}
