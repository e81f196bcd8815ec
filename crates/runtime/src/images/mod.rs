//! The content-addressed image store: blobs, manifests, references, unpacked layers; import of
//! OCI layouts and docker-archives; pulls from registries; pull policy; garbage collection.
//!
//! Start with [`ImageStore::open`]. See `docs/images.md` for the user's view.

mod auth;
mod blobs;
mod digest;
mod error;
mod gc;
mod import;
mod manifest;
mod pathsafe;
mod policy;
mod pull;
mod reference;
mod store;
mod unpack;
mod whiteout;

pub use auth::{Credentials, DockerConfig};
pub use blobs::BlobWriter;
pub use digest::{Digest, HashingWriter, chain_ids};
pub use error::{ImageError, Result};
pub use gc::GcReport;
pub use manifest::{
    ConfigFile, Descriptor, ImageConfig, Index, Manifest, Platform, RootFs, media_type,
    select_linux_amd64,
};
pub use policy::{PullDecision, PullPolicy, decide};
pub use pull::{Progress, ProgressFn, PullOptions, Pulled};
pub use reference::Reference;
pub use store::{Image, ImageRootfs, ImageStore};
pub use whiteout::OPAQUE_XATTR;
