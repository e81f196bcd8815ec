//! `pods/eviction`: a delete that respects PodDisruptionBudgets (what `kubectl drain` uses).
//!
//! The budget's allowance is computed here from the pods it selects (no disruption controller
//! keeps `status.disruptionsAllowed` yet): healthy pods (Running and Ready) less what
//! `minAvailable` keeps, or `maxUnavailable` less the pods already unhealthy. A pod that is not
//! running yet, has finished, or is already being deleted may always go, as upstream.

use hyper::Response;
use rudder_machinery::label_selector::LabelSelector;
use serde_json::{Value, json};

use super::Ctx;
use super::delete::{DeleteOptions, delete_one};
use crate::http::{Body, json_response};
use crate::keys;
use crate::objects;
use crate::status::ApiError;

/// POST pods/NAME/eviction.
pub(crate) async fn evict(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let body: Value = serde_json::from_slice(&ctx.req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding Eviction: {e}")))?;
    let name = objects::meta_str(&body, "name");
    if !name.is_empty() && name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name} != {}",
            ctx.name()
        )));
    }
    let opts = DeleteOptions::from_value(body.get("deleteOptions").unwrap_or(&Value::Null), &ctx)?;
    let key = ctx.key()?;
    let got = ctx.server.store.get(&key, None).await?;
    let kv = got.kv.ok_or_else(|| ctx.not_found())?;
    let pod = objects::from_stored(&key, &kv.value, kv.mod_revision).map_err(ApiError::internal)?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    let free = objects::is_deleting(&pod)
        || matches!(phase, None | Some("Pending" | "Succeeded" | "Failed"));
    if !free {
        check_budgets(&ctx, &pod).await?;
    }
    delete_one(&ctx, &key, ctx.name(), &opts).await?;
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Success", "code": 201,
    });
    Ok(json_response(
        201,
        serde_json::to_vec(&status).unwrap_or_default(),
    ))
}

/// Refuses (429) when a budget selecting `pod` allows no disruption.
async fn check_budgets(ctx: &Ctx<'_>, pod: &Value) -> Result<(), ApiError> {
    let ns = ctx.target.namespace.as_deref();
    ctx.server.cache.sync().await?;
    let values = |group: &str, plural: &str| -> Vec<Value> {
        let prefix = keys::collection_prefix(group, plural, ns);
        let (objs, _, _) = ctx.server.cache.list(&prefix, None, 0, |_| true);
        objs.iter().filter_map(|o| o.value().ok()).collect()
    };
    let budgets: Vec<(Value, LabelSelector)> = values("policy", "poddisruptionbudgets")
        .into_iter()
        .filter_map(|b| {
            let sel = LabelSelector::from_value(b.pointer("/spec/selector")).ok()?;
            sel.matches_object(pod).then_some((b, sel))
        })
        .collect();
    let [(budget, selector)] = budgets.as_slice() else {
        if budgets.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        return Ok(());
    };
    let pods: Vec<Value> = values("", "pods")
        .into_iter()
        .filter(|p| selector.matches_object(p) && !objects::is_deleting(p))
        .collect();
    let expected = i64::try_from(pods.len()).unwrap_or(i64::MAX);
    let healthy = i64::try_from(pods.iter().filter(|p| is_healthy(p)).count()).unwrap_or(0);
    let allowed = match (
        budget.pointer("/spec/minAvailable"),
        budget.pointer("/spec/maxUnavailable"),
    ) {
        (Some(min), _) => healthy - scaled(min, expected),
        (None, Some(max)) => scaled(max, expected) - (expected - healthy),
        (None, None) => healthy - 1,
    };
    if allowed <= 0 {
        let mut e = ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            0,
        );
        // No Retry-After, as upstream: client-go would retry a 429 that has one by itself
        // (ten times), where `kubectl drain` wants to decide.
        e.retry_after = None;
        e.details = Some(Box::new(crate::status::Details {
            group: "policy".into(),
            kind: "poddisruptionbudgets".into(),
            name: objects::meta_str(budget, "name").to_owned(),
            causes: vec![crate::status::Cause {
                reason: "DisruptionBudget".into(),
                message: format!(
                    "The disruption budget {} allows no more disruptions ({healthy} of {expected} pods healthy)",
                    objects::meta_str(budget, "name"),
                ),
                field: String::new(),
            }],
        }));
        return Err(e);
    }
    Ok(())
}

/// A pod counted as available: Running with condition Ready.
fn is_healthy(p: &Value) -> bool {
    p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && p.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}

/// An int-or-percent of `total` (percentages rounded up, as upstream).
fn scaled(v: &Value, total: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => (p * total + 99) / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&json!("50%"), 3), 2);
        assert_eq!(scaled(&json!(2), 3), 2);
        assert_eq!(scaled(&json!("100%"), 4), 4);
    }

    #[test]
    fn healthy_means_running_and_ready() {
        let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let unready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(is_healthy(&ready));
        assert!(!is_healthy(&unready));
    }
}
