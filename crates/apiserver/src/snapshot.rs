//! `GET /snapshot`: streams a consistent copy of the store for `rudder snapshot save`.
//!
//! Upstream has no such endpoint (etcd backups are taken with `etcdctl`); rudder's embedded
//! store lives inside the server process, so the server is the only one that can copy it while
//! serving. It is a non-resource URL, so RBAC decides who may read it: only rules granting
//! `nonResourceURLs: ["*"]` (cluster-admin) or `/snapshot` itself match, since the whole store,
//! Secrets included, is in the answer.

use futures::StreamExt;
use hyper::Response;
use rudder_store::Store;

use crate::http::Body;
use crate::status::ApiError;

/// The path of the endpoint.
pub(crate) const PATH: &str = "/snapshot";

/// Chunks buffered between the store's reader and the connection.
const BUFFERED_CHUNKS: usize = 8;

/// Answers with the store's snapshot stream. A failure after the headers are sent can only end
/// the body early; the snapshot's trailer (its checksum) is then missing and the client refuses
/// the file, which is why the format carries one.
pub(crate) async fn serve(store: &dyn Store) -> Result<Response<Body>, ApiError> {
    let mut stream = store.snapshot().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFERED_CHUNKS);
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        tracing::info!("snapshot client went away");
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "snapshot failed mid-stream");
                    return;
                }
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .body(crate::http::streaming(rx))
        .map_err(|e| ApiError::internal(e.to_string()))
}
