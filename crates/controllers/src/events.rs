//! core/v1 Events, recorded as upstream controllers record them (`kubectl describe` and
//! `kubectl get events` read these): through `rudder-events`, so a repeated event bumps the
//! `count` of one Event instead of creating another, floods are combined and spam is filtered,
//! as upstream's correlator does. Recording never waits and never fails a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Resource, ResourceExt};

/// Event type `Normal`.
pub const NORMAL: &str = "Normal";
/// Event type `Warning`.
pub const WARNING: &str = "Warning";

/// Records events in the name of one component, through the controller manager's shared
/// background writer.
#[derive(Clone)]
pub struct Recorder {
    events: rudder_events::Recorder,
    component: &'static str,
}

impl Recorder {
    pub fn new(events: rudder_events::Recorder, component: &'static str) -> Self {
        Recorder { events, component }
    }

    /// Records `reason`/`message` about `obj` (queued; written in the background).
    pub fn record<K>(&self, obj: &K, type_: &str, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        self.events.record(rudder_events::Draft {
            involved: reference(obj),
            type_: type_.into(),
            reason: reason.into(),
            message,
            component: self.component.into(),
            instance: String::new(),
            host: None,
        });
    }
}

/// The `involvedObject` of an event about `obj`.
fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: Some(obj.name_any()),
        namespace: obj.namespace(),
        uid: obj.uid(),
        resource_version: obj.resource_version(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Node;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::reference;

    #[test]
    fn references_name_the_kind_and_keep_cluster_scope() {
        let d = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = reference(&d);
        assert_eq!(r.kind.as_deref(), Some("Deployment"));
        assert_eq!(r.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        let n = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            reference(&n).namespace,
            None,
            "a Node's events go to `default`"
        );
    }
}
