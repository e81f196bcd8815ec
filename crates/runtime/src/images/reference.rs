//! Image references and their normalisation, the way Docker and Kubernetes spell them
//! (`busybox` → `docker.io/library/busybox:latest`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::digest::Digest;
use super::error::ImageError;

/// Docker Hub's canonical name; `index.docker.io` and `registry-1.docker.io` are aliases.
pub const DOCKER_HUB: &str = "docker.io";

/// A fully qualified image reference: registry, repository, and a tag and/or a digest.
///
/// Parsing applies the normalisation of Docker's `ParseNormalizedNamed`, which the kubelet and
/// containerd's CRI share: a first path component is a registry only if it has a `.` or `:` or
/// is `localhost`; Docker Hub's single-component names live under `library/`; a reference with
/// neither tag nor digest means `:latest`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host (and port), e.g. `docker.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` is filled in only when there is no digest either).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (no tag): how an image is also recorded by digest.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// Whether the registry is on this machine, where plain HTTP is allowed.
    pub fn is_local_registry(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            // A bracketed IPv6 literal keeps its colons inside the brackets.
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason| ImageError::InvalidReference {
            reference: input.to_string(),
            reason,
        };
        if input.is_empty() || input.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(d.parse::<Digest>().map_err(|_| bad("bad digest"))?),
            ),
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/', so `host:5000/foo` has none.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            valid_tag(tag).then_some(()).ok_or_else(|| bad("bad tag"))?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if !valid_registry(&registry) {
            return Err(bad("bad registry host"));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !repository.split('/').all(valid_path_component) {
            return Err(bad(
                "repository must be lowercase [a-z0-9] separated by . _ __ - /",
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `host[:port]`: DNS labels (alphanumerics and inner hyphens) or a bracketed IPv6 literal.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !registry.ends_with(']') => (h, Some(p)),
        _ => (registry, None),
    };
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`, as the distribution spec's grammar says.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let d = format!("sha256:{}", "0".repeat(64));
        let cases: Vec<(String, String)> = vec![
            ("busybox".into(), "docker.io/library/busybox:latest".into()),
            (
                "busybox:1.36".into(),
                "docker.io/library/busybox:1.36".into(),
            ),
            (
                "library/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            ("foo/bar".into(), "docker.io/foo/bar:latest".into()),
            (
                "docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "index.docker.io/busybox:1".into(),
                "docker.io/library/busybox:1".into(),
            ),
            (
                "127.0.0.1:5000/foo".into(),
                "127.0.0.1:5000/foo:latest".into(),
            ),
            (
                "127.0.0.1:5000/foo:v2".into(),
                "127.0.0.1:5000/foo:v2".into(),
            ),
            ("localhost/foo".into(), "localhost/foo:latest".into()),
            (
                "localhost:5000/a/b/c:x".into(),
                "localhost:5000/a/b/c:x".into(),
            ),
            (
                "quay.io/coreos/etcd".into(),
                "quay.io/coreos/etcd:latest".into(),
            ),
            (
                format!("busybox@{d}"),
                format!("docker.io/library/busybox@{d}"),
            ),
            (
                format!("busybox:1@{d}"),
                format!("docker.io/library/busybox:1@{d}"),
            ),
            (
                "a.b-c__d".into(),
                "docker.io/library/a.b-c__d:latest".into(),
            ),
            (
                "registry.k8s.io/pause:3.9".into(),
                "registry.k8s.io/pause:3.9".into(),
            ),
        ];
        for (input, want) in cases {
            let got = input.parse::<Reference>().map(|r| r.to_string());
            assert_eq!(got.ok().as_deref(), Some(want.as_str()), "{input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for input in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:123",
            "foo//bar",
            "foo/-bar",
            "foo/bar_",
            "foo.../bar",
            "a:b:c",
            "bad host!/x",
            "busybox:a/b",
        ] {
            assert!(
                input.parse::<Reference>().is_err(),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn local_registries() {
        let cases = [
            ("127.0.0.1:5000/foo", true),
            ("localhost:5000/foo", true),
            ("localhost/foo", true),
            ("[::1]:5000/foo", true),
            ("quay.io/foo", false),
            ("busybox", false),
            ("127.example.com/foo", false),
        ];
        for (input, want) in cases {
            let r: Reference = input.parse().unwrap();
            assert_eq!(r.is_local_registry(), want, "{input}");
        }
    }
}
