//! The CRI backend: [`CriRuntime`] implements [`crate::ContainerRuntime`] and
//! [`crate::ImageService`] by speaking CRI v1 (`runtime.v1.RuntimeService`,
//! `runtime.v1.ImageService`) over gRPC on a unix socket — containerd with its CRI plugin in
//! rudder's tests, selected with `--container-runtime-endpoint`.
//!
//! - `client.rs` dials the socket and maps gRPC statuses to [`crate::RuntimeError`];
//! - `convert.rs` maps rudder's types to CRI messages and back (pure, table-tested);
//! - `runtime.rs` is the trait implementation; `images.rs` the image calls;
//! - `stream.rs` turns CRI `Exec`'s streaming URL into an [`crate::ExecProcess`];
//! - `attach.rs` does the same for CRI `Attach` ([`crate::Attachment`]).
//!
//! Pod networking is the runtime's (containerd runs CNI: the agent writes a bridge + host-local
//! config for the node's pod subnet), so [`crate::SandboxStatus::ip`] carries the address; see
//! ADR 0021.

mod attach;
mod client;
pub mod convert;
mod images;
mod runtime;
mod stream;

pub use client::socket_path;
pub use images::CriImage;
pub use runtime::{CriOptions, CriRuntime};
