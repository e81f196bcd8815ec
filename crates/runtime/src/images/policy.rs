//! The image pull policy: Kubernetes' `imagePullPolicy` values, its defaulting rule, and the
//! decision whether to pull. Pure.

use std::str::FromStr;

use super::error::ImageError;
use super::reference::Reference;

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time a container starts (the registry is asked; unchanged layers are not
    /// downloaded again).
    Always,
    /// Pull only when the image is not in the store.
    IfNotPresent,
    /// Never pull; fail if the image is not in the store.
    Never,
}

impl PullPolicy {
    /// Upstream's default when the field is empty: `Always` for `:latest` (including no tag and
    /// no digest, which means `:latest`), `IfNotPresent` otherwise — a digest without a tag is
    /// immutable, so it is `IfNotPresent` too.
    pub fn default_for(image: &Reference) -> PullPolicy {
        if image.tag() == Some("latest") {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }

    /// The policy from the pod spec's field, defaulted by [`PullPolicy::default_for`] when empty.
    pub fn from_spec(field: Option<&str>, image: &Reference) -> Result<PullPolicy, ImageError> {
        match field {
            None | Some("") => Ok(PullPolicy::default_for(image)),
            Some(s) => s.parse(),
        }
    }
}

impl FromStr for PullPolicy {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            _ => Err(ImageError::InvalidFormat {
                what: "imagePullPolicy",
                reason: format!("{s:?} is not Always, IfNotPresent or Never"),
            }),
        }
    }
}

/// What the node agent should do about an image before starting a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullDecision {
    /// Pull from the registry.
    Pull,
    /// Use the stored image as it is.
    UseLocal,
    /// Fail the container with `ErrImageNeverPull`.
    NeverPullMissing,
}

/// The decision for `policy` given whether the image is already stored.
pub fn decide(policy: PullPolicy, present: bool) -> PullDecision {
    match (policy, present) {
        (PullPolicy::Always, _) => PullDecision::Pull,
        (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => PullDecision::UseLocal,
        (PullPolicy::IfNotPresent, false) => PullDecision::Pull,
        (PullPolicy::Never, false) => PullDecision::NeverPullMissing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule() {
        let d = format!("sha256:{}", "1".repeat(64));
        let cases: Vec<(String, PullPolicy)> = vec![
            ("busybox".into(), PullPolicy::Always),
            ("busybox:latest".into(), PullPolicy::Always),
            ("busybox:1.36".into(), PullPolicy::IfNotPresent),
            ("127.0.0.1:5000/foo".into(), PullPolicy::Always),
            ("127.0.0.1:5000/foo:v1".into(), PullPolicy::IfNotPresent),
            (format!("busybox@{d}"), PullPolicy::IfNotPresent),
            (format!("busybox:latest@{d}"), PullPolicy::Always),
        ];
        for (image, want) in cases {
            let r: Reference = image.parse().unwrap();
            assert_eq!(PullPolicy::default_for(&r), want, "{image}");
            assert_eq!(PullPolicy::from_spec(None, &r).unwrap(), want, "{image}");
            assert_eq!(
                PullPolicy::from_spec(Some(""), &r).unwrap(),
                want,
                "{image}"
            );
        }
    }

    #[test]
    fn explicit_field_wins() {
        let r: Reference = "busybox".parse().unwrap();
        let cases = [
            ("Always", Some(PullPolicy::Always)),
            ("IfNotPresent", Some(PullPolicy::IfNotPresent)),
            ("Never", Some(PullPolicy::Never)),
            ("never", None),
            ("Sometimes", None),
        ];
        for (field, want) in cases {
            assert_eq!(PullPolicy::from_spec(Some(field), &r).ok(), want, "{field}");
        }
    }

    #[test]
    fn decisions() {
        use PullDecision::*;
        use PullPolicy::*;
        let cases = [
            (Always, true, Pull),
            (Always, false, Pull),
            (IfNotPresent, true, UseLocal),
            (IfNotPresent, false, Pull),
            (Never, true, UseLocal),
            (Never, false, NeverPullMissing),
        ];
        for (policy, present, want) in cases {
            assert_eq!(
                decide(policy, present),
                want,
                "{policy:?} present={present}"
            );
        }
    }
}
