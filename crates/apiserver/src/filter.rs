//! `labelSelector` and `fieldSelector` of a request, checked against what the kind supports and
//! applied to cached objects.

use rudder_machinery::{FieldSelector, LabelSelector};
use serde_json::Value;

use crate::cache::CachedObject;
use crate::params::ListParams;
use crate::resources::Resource;
use crate::status::ApiError;

/// The selection a LIST, WATCH or DELETECOLLECTION applies.
#[derive(Clone, Debug)]
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// The selectors of a list, watch or delete-collection request.
    pub fn from_params(params: &ListParams, resource: &Resource) -> Result<Self, ApiError> {
        Self::parse(&params.label_selector, &params.field_selector, resource)
    }

    /// Parses both selectors; bad ones are 400s with upstream's messages.
    pub fn parse(
        label_selector: &str,
        field_selector: &str,
        resource: &Resource,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(label_selector)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(field_selector)
            .and_then(|f| f.convert_for(&resource.group, &resource.version, &resource.kind))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Self { labels, fields })
    }

    /// Whether the object is selected.
    pub fn matches(&self, obj: &CachedObject) -> bool {
        (self.labels.is_empty() || self.labels.matches(&obj.labels))
            && (self.fields.is_empty() || self.fields.matches(|label| obj.field(label).to_owned()))
    }
}

/// The string form of a `metav1.LabelSelector` (as `Scale.status.selector` shows it).
pub fn selector_string(selector: &Value) -> String {
    LabelSelector::from_value(Some(selector))
        .map(|s| s.to_string())
        .unwrap_or_default()
}
