//! ImageLocality: prefers nodes that already have the pod's images, weighted by size and by how
//! many nodes have them (an image everywhere does not pull pods anywhere in particular).

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Point, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this, having the image barely matters (upstream's 23 MB).
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container: above this, more image does not score more.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

/// `busybox` and `busybox:latest` are the same image for this purpose.
fn normalize(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

#[derive(Clone)]
struct State {
    /// (image name as nodes report it, spread factor = nodes having it / all nodes).
    images: Vec<(Vec<String>, f64)>,
    containers: i64,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::PreScore, Point::Score]
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let total = snap.nodes.len().max(1) as f64;
        let containers = pod
            .pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let images = containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .map(|i| {
                let names = vec![
                    i.to_owned(),
                    normalize(i),
                    format!("docker.io/library/{}", normalize(i)),
                ];
                let count = names
                    .iter()
                    .filter_map(|n| snap.image_nodes.get(n))
                    .max()
                    .copied()
                    .unwrap_or(0);
                (names, count as f64 / total)
            })
            .collect();
        state.write(
            NAME,
            State {
                images,
                containers: containers.len() as i64,
            },
        );
        Status::success()
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(st) = state.read::<State>(NAME) else {
            return 0;
        };
        let sum: i64 = st
            .images
            .iter()
            .filter_map(|(names, spread)| {
                let size = names.iter().find_map(|n| node.images.get(n))?;
                Some((*size as f64 * spread) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * st.containers.max(1);
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn table() {
        let with = |size: i64| json!({"status": {"images": [{"names": ["docker.io/library/big:latest", "big:latest"], "sizeBytes": size}]}});
        let snap = snapshot(
            vec![
                node("has", json!({}), with(600 * MB)),
                node("small", json!({}), with(10 * MB)),
                node("none", json!({}), json!({})),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [{"name": "c", "image": "big"}]}),
        );
        // 600 MB seen on 2 of 3 nodes: 400 MB effective → (400-23)/(1000-23) of 100.
        assert_eq!(
            scores(&ImageLocality, &p, &snap),
            vec![("has".into(), 38), ("none".into(), 0), ("small".into(), 0)]
        );
        assert_eq!(normalize("registry:5000/x"), "registry:5000/x:latest");
        assert_eq!(normalize("x@sha256:ab"), "x@sha256:ab");
    }
}
