//! The controllers this binary knows, listed once, and upstream's `--controllers` selection.

use futures::future::BoxFuture;

use crate::{Context, ControllerError, Result};

/// One controller: its name (upstream's `*-controller` name), a short alias accepted by
/// `--controllers`, and what starts it.
pub struct Descriptor {
    /// Upstream's name (`replicaset-controller`).
    pub name: &'static str,
    /// The name before upstream added the `-controller` suffix (`replicaset`).
    pub alias: &'static str,
    /// Whether `*` selects it.
    pub enabled_by_default: bool,
    /// Runs the controller until the context's stop signal.
    pub start: fn(Context) -> BoxFuture<'static, Result<()>>,
}

/// Every controller, in start order.
pub fn all() -> Vec<Descriptor> {
    vec![
        Descriptor {
            name: "replicaset-controller",
            alias: "replicaset",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::replicaset::run_replicasets(ctx)),
        },
        Descriptor {
            name: "replicationcontroller-controller",
            alias: "replicationcontroller",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::replicaset::run_replication_controllers(ctx)),
        },
        Descriptor {
            name: "deployment-controller",
            alias: "deployment",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::deployment::run(ctx)),
        },
        Descriptor {
            name: "garbage-collector-controller",
            alias: "garbagecollector",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::gc::run(ctx)),
        },
        Descriptor {
            name: "namespace-controller",
            alias: "namespace",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::namespace::run(ctx)),
        },
        Descriptor {
            name: "serviceaccount-controller",
            alias: "serviceaccount",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::serviceaccount::run(ctx)),
        },
        Descriptor {
            name: "serviceaccount-token-controller",
            alias: "serviceaccount-token",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::serviceaccount_token::run(ctx)),
        },
        Descriptor {
            name: "root-ca-certificate-publisher-controller",
            alias: "root-ca-cert-publisher",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::rootca::run(ctx)),
        },
        Descriptor {
            name: "endpointslice-controller",
            alias: "endpointslice",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::endpoints::run_slices(ctx)),
        },
        Descriptor {
            name: "endpoints-controller",
            alias: "endpoint",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::endpoints::run_endpoints(ctx)),
        },
        Descriptor {
            name: "job-controller",
            alias: "job",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::job::run(ctx)),
        },
        Descriptor {
            name: "cronjob-controller",
            alias: "cronjob",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::cronjob::run(ctx)),
        },
        Descriptor {
            name: "daemonset-controller",
            alias: "daemonset",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::daemonset::run(ctx)),
        },
        Descriptor {
            name: "statefulset-controller",
            alias: "statefulset",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::statefulset::run(ctx)),
        },
        Descriptor {
            name: "horizontal-pod-autoscaler-controller",
            alias: "horizontalpodautoscaling",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::hpa::run(ctx)),
        },
        Descriptor {
            name: "node-lifecycle-controller",
            alias: "nodelifecycle",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::nodelifecycle::run(ctx)),
        },
        Descriptor {
            name: "pod-garbage-collector-controller",
            alias: "podgc",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::podgc::run(ctx)),
        },
        Descriptor {
            name: "resourcequota-controller",
            alias: "resourcequota",
            enabled_by_default: true,
            start: |ctx| Box::pin(crate::resourcequota::run(ctx)),
        },
        Descriptor {
            name: "persistentvolume-binder-controller",
            alias: "persistentvolume-binder",
            enabled_by_default: true,
            start: |ctx| {
                let dir = ctx.local_path_dir.clone();
                Box::pin(crate::volume::run(ctx, dir))
            },
        },
    ]
}

/// The controllers `flags` selects, by upstream's rules: `name` enables, `-name` disables
/// (either form of the name), `*` enables the default ones; an explicit entry wins over `*`.
/// A name the registry does not know is an error, as upstream rejects it at start-up.
pub fn select(flags: &[String]) -> Result<Vec<Descriptor>> {
    let all = all();
    debug_assert!(
        unique_names(&all),
        "duplicate controller names in the registry"
    );
    for flag in flags {
        let name = flag.strip_prefix('-').unwrap_or(flag);
        if name != "*" && !all.iter().any(|d| d.name == name || d.alias == name) {
            return Err(ControllerError::UnknownController(flag.clone()));
        }
    }
    Ok(all.into_iter().filter(|d| enabled(d, flags)).collect())
}

fn enabled(d: &Descriptor, flags: &[String]) -> bool {
    let is = |f: &str| f == d.name || f == d.alias;
    if flags.iter().any(|f| is(f)) {
        return true;
    }
    if flags.iter().any(|f| f.strip_prefix('-').is_some_and(&is)) {
        return false;
    }
    d.enabled_by_default && flags.iter().any(|f| f == "*")
}

fn unique_names(all: &[Descriptor]) -> bool {
    let mut seen = std::collections::HashSet::new();
    all.iter()
        .all(|d| seen.insert(d.name) && seen.insert(d.alias))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(flags: &[&str]) -> Vec<&'static str> {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        select(&flags)
            .expect("valid selection")
            .iter()
            .map(|d| d.alias)
            .collect()
    }

    #[test]
    fn registry_has_unique_names() {
        assert!(unique_names(&all()));
    }

    #[test]
    fn selection_follows_upstream_rules() {
        let every: Vec<&str> = all().iter().map(|d| d.alias).collect();
        assert_eq!(names(&["*"]), every);
        assert!(names(&[]).is_empty());
        assert_eq!(names(&["deployment"]), ["deployment"]);
        assert_eq!(names(&["deployment-controller"]), ["deployment"]);
        let without: Vec<&str> = every
            .iter()
            .copied()
            .filter(|n| *n != "deployment")
            .collect();
        assert_eq!(names(&["*", "-deployment"]), without);
        assert_eq!(names(&["-deployment-controller", "*"]), without);
    }

    #[test]
    fn unknown_controller_is_rejected() {
        let err = select(&["*".into(), "-nope".into()]).err();
        assert!(matches!(err, Some(ControllerError::UnknownController(n)) if n == "-nope"));
    }
}
