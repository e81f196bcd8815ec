//! rudder's container runtime: the [`ContainerRuntime`] trait the node agent drives, the
//! embedded implementation of it ([`embedded::EmbeddedRuntime`]: namespaces, cgroups, overlayfs),
//! a CRI client implementing it against containerd ([`cri::CriRuntime`]), and the image store
//! those containers are made from.
//!
//! [`images::ImageStore`] keeps blobs by sha256 digest, an index of image
//! references, and each layer unpacked once into a directory that overlayfs can stack as a lower
//! dir. The `testing` feature adds [`testing`], which builds small busybox images offline and runs
//! a local `docker-registry` for tests.

pub mod cri;
pub mod embedded;
mod error;
mod image_service;
pub mod images;
mod runtime;
pub mod simulated;
pub mod spdy_frame;
mod types;

pub use error::{Result, RuntimeError};
pub use image_service::ImageService;
pub use runtime::ContainerRuntime;
pub use types::*;
#[cfg(feature = "testing")]
pub mod testing;
