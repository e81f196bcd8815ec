//! Test helpers (feature `testing`): small busybox images built offline, written as OCI layouts
//! or docker-archives, and a local `docker-registry` process to push them to and pull them from.
//!
//! They use Debian's `busybox-static` (`/bin/busybox`) and `docker-registry` packages, which
//! `scripts/test` installs. Errors are `io::Error`s: these helpers serve tests, not the runtime.
//! [`conformance`] (and [`conformance_attach`], [`conformance_pid`]) is the behavioural suite every
//! `ContainerRuntime` implementation runs;
//! [`containerd::Containerd`] a private containerd for the CRI backend's tests and the agent's.

pub mod conformance;
pub mod conformance_attach;
pub mod conformance_pid;
pub mod containerd;
mod image;
mod registry;

pub use image::{BUSYBOX, LayerBuilder, TestImage, busybox_layer};
pub use registry::Registry;
