//! The scale run's pod watch: when each pod was first seen, bound and Running, parsing only the
//! fields it needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::TryStreamExt;
use kube::api::{WatchEvent, WatchParams};
use serde::Deserialize;
use tokio::sync::Mutex;

/// A pod as the watch needs it: parsing only these fields keeps the client's share of the two
/// cores small with 150,000 pods going through three or four updates each.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct SlimPod {
    metadata: SlimMeta,
    #[serde(default)]
    spec: SlimSpec,
    #[serde(default)]
    status: SlimStatus,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: String,
    creation_timestamp: Option<String>,
    resource_version: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimSpec {
    node_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct SlimStatus {
    phase: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct SlimList {
    metadata: ListMeta,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: Option<String>,
}

/// When the watch saw each step of one pod.
#[derive(Default)]
pub(super) struct PodTimes {
    /// `metadata.creationTimestamp` (whole seconds, truncated by the server).
    pub created: Option<SystemTime>,
    /// First seen by the watch.
    pub seen: Option<SystemTime>,
    pub bound: Option<SystemTime>,
    pub running: Option<SystemTime>,
}

#[derive(Default)]
pub(super) struct Watched {
    pub pods: HashMap<String, PodTimes>,
    /// Kept as counters so the progress line need not walk every pod.
    pub bound: usize,
    pub running: usize,
    pub relists: usize,
}

pub(super) async fn list_rv(client: &kube::Client, namespace: &str) -> Result<String> {
    let req = http::Request::get(format!("/api/v1/namespaces/{namespace}/pods?limit=1"))
        .body(Vec::new())
        .context("list request")?;
    let list: SlimList = client.request(req).await.context("listing pods")?;
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// Follows every pod of the namespace, resuming from the last resourceVersion when the server
/// ends a watch, and starting over from a fresh list if that version has expired.
pub(super) async fn watch_pods(
    client: kube::Client,
    namespace: String,
    mut rv: String,
    watched: Arc<Mutex<Watched>>,
) -> Result<()> {
    loop {
        let params = WatchParams::default().timeout(290).disable_bookmarks();
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
            .watch(&params, &rv)
            .context("watch request")?;
        let stream = match client.request_events::<SlimPod>(req).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("watch failed ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        futures::pin_mut!(stream);
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    if let Some(v) = &p.metadata.resource_version {
                        rv.clone_from(v);
                    }
                    observe(&mut *watched.lock().await, &p, SystemTime::now());
                }
                Ok(Some(WatchEvent::Deleted(p))) => {
                    if let Some(v) = &p.metadata.resource_version {
                        rv.clone_from(v);
                    }
                }
                Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                Ok(Some(WatchEvent::Error(e))) => {
                    // 410 Gone: too old; whatever happened meanwhile shows in the relist's
                    // later events only, so count it (the report says how many).
                    eprintln!("watch error {}: {}", e.code, e.message);
                    watched.lock().await.relists += 1;
                    rv = list_rv(&client, &namespace).await?;
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("watch stream failed ({e}); resuming");
                    break;
                }
            }
        }
    }
}

fn observe(w: &mut Watched, p: &SlimPod, now: SystemTime) {
    let t = w.pods.entry(p.metadata.name.clone()).or_default();
    if t.seen.is_none() {
        t.seen = Some(now);
        t.created = p
            .metadata
            .creation_timestamp
            .as_deref()
            .and_then(parse_timestamp);
    }
    if t.bound.is_none() && p.spec.node_name.is_some() {
        t.bound = Some(now);
        w.bound += 1;
    }
    if t.running.is_none() && p.status.phase.as_deref() == Some("Running") {
        t.running = Some(now);
        w.running += 1;
    }
}

/// `2026-12-07T18:20:33Z` (the form the API server writes) as a time.
fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let secs = rudder_machinery::timestamp::parse_rfc3339(s)?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_the_server_writes_them() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2000-03-01T00:00:00Z", Some(951_868_800)),
            ("2026-12-07T18:20:33Z", Some(1_796_667_633)),
            ("2024-02-29T23:59:59Z", Some(1_709_251_199)),
            ("2026-13-07T18:20:33Z", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_timestamp(text)
                .map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
            assert_eq!(got, want, "{text}");
        }
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn slim(name: &str, node: Option<&str>, phase: Option<&str>) -> SlimPod {
        SlimPod {
            metadata: SlimMeta {
                name: name.into(),
                creation_timestamp: Some("2026-12-07T18:20:33Z".into()),
                resource_version: Some("5".into()),
            },
            spec: SlimSpec {
                node_name: node.map(Into::into),
            },
            status: SlimStatus {
                phase: phase.map(Into::into),
            },
        }
    }

    #[test]
    fn each_step_is_recorded_once() {
        let mut w = Watched::default();
        observe(&mut w, &slim("a", None, Some("Pending")), at(1));
        observe(&mut w, &slim("a", Some("n1"), Some("Pending")), at(2));
        observe(&mut w, &slim("a", Some("n1"), Some("Running")), at(3));
        observe(&mut w, &slim("a", Some("n1"), Some("Running")), at(4));
        observe(&mut w, &slim("b", Some("n1"), Some("Pending")), at(5));
        let t = &w.pods["a"];
        assert_eq!(
            (t.seen, t.bound, t.running),
            (Some(at(1)), Some(at(2)), Some(at(3)))
        );
        assert_eq!(t.created, parse_timestamp("2026-12-07T18:20:33Z"));
        assert_eq!((w.pods.len(), w.bound, w.running), (2, 2, 1));
    }
}
