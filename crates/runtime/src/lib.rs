//! rudder's container runtime; today its image store: pulling, importing, unpacking and
//! garbage-collecting OCI images on the node's disk.
//!
//! [`images::ImageStore`] is the entry point: it keeps blobs by sha256 digest, an index of image
//! references, and each layer unpacked once into a directory that overlayfs can stack as a lower
//! dir. The `testing` feature adds [`testing`], which builds small busybox images offline and runs
//! a local `docker-registry` for tests.

pub mod images;
#[cfg(feature = "testing")]
pub mod testing;
