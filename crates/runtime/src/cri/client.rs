//! Dialling a CRI runtime's gRPC endpoint (a unix socket) and turning gRPC statuses into
//! [`RuntimeError`]s.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use crate::error::{Result, RuntimeError};

/// Both CRI services over one HTTP/2 connection; cheap to clone (one per call).
#[derive(Clone, Debug)]
pub struct CriClient {
    /// `runtime.v1.RuntimeService`.
    pub runtime: RuntimeServiceClient<Channel>,
    /// `runtime.v1.ImageService`.
    pub images: ImageServiceClient<Channel>,
}

/// The socket path of an endpoint: `unix:///run/containerd/containerd.sock` or a plain path.
/// Other schemes (`tcp://`, `npipe://`) are refused: the agent and runtime share a machine.
pub fn socket_path(endpoint: &str) -> Result<PathBuf> {
    let path = match endpoint.split_once("://") {
        Some(("unix", path)) => path,
        Some((scheme, _)) => {
            return Err(RuntimeError::InvalidConfig(format!(
                "container runtime endpoint {endpoint}: scheme {scheme} is not supported, use unix://"
            )));
        }
        None => endpoint,
    };
    if !path.starts_with('/') {
        return Err(RuntimeError::InvalidConfig(format!(
            "container runtime endpoint {endpoint}: the socket path must be absolute"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Connects to `endpoint` and checks it answers CRI v1 (`Version`); returns the clients and the
/// runtime's `name/version` (`containerd/1.6.20`).
pub async fn connect(endpoint: &str) -> Result<(CriClient, String)> {
    let path = socket_path(endpoint)?;
    let connect_err = |e: &dyn std::fmt::Display| RuntimeError::Cri {
        op: "connect",
        message: format!("{endpoint}: {e}"),
    };
    // The URI is a placeholder: the connector below dials the socket whatever it says.
    let channel = Endpoint::from_static("http://cri.invalid")
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| connect_err(&e))?;
    let mut client = CriClient {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    };
    let version = client
        .runtime
        .version(k8s_cri::v1::VersionRequest {
            version: "v1".into(),
        })
        .await
        .map_err(|e| connect_err(&e.message()))?
        .into_inner();
    Ok((
        client,
        format!("{}/{}", version.runtime_name, version.runtime_version),
    ))
}

/// Whether a status means "no such object". containerd answers NotFound; older builds wrap it
/// in Unknown with the `not found` text of its errdefs.
pub fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
        || (status.code() == Code::Unknown && status.message().contains("not found"))
}

/// A failed CRI call as a [`RuntimeError`]: NotFound for `kind` `id`, DeadlineExceeded as a
/// timeout, InvalidArgument as an invalid config, the rest as [`RuntimeError::Cri`].
pub fn error(op: &'static str, kind: &'static str, id: &str, status: Status) -> RuntimeError {
    if is_not_found(&status) {
        return RuntimeError::NotFound {
            kind,
            id: id.to_owned(),
        };
    }
    match status.code() {
        Code::DeadlineExceeded => RuntimeError::Timeout(format!("{op}: {}", status.message())),
        Code::InvalidArgument => RuntimeError::InvalidConfig(status.message().to_owned()),
        code => RuntimeError::Cri {
            op,
            message: format!("{code:?}: {}", status.message()),
        },
    }
}
