//! [`ImageService`]: how the node agent makes sure a pod's images are on the node, whichever
//! runtime holds them — rudder's own [`ImageStore`] for the embedded runtime, containerd's image
//! store (CRI `ImageService`) for the CRI backend.

use async_trait::async_trait;

use crate::error::Result;
use crate::images::{ImageStore, PullOptions};

/// The images a [`crate::ContainerRuntime`] creates containers from. Object-safe: the agent
/// holds it as `Arc<dyn ImageService>` next to the runtime.
#[async_trait]
pub trait ImageService: Send + Sync + 'static {
    /// Whether `reference` is present (what the pull policy decides on).
    async fn image_present(&self, reference: &str) -> Result<bool>;

    /// Pulls `reference` from its registry into the store.
    async fn pull_image(&self, reference: &str) -> Result<()>;
}

#[async_trait]
impl ImageService for ImageStore {
    async fn image_present(&self, reference: &str) -> Result<bool> {
        // The index is a small file; reading it here does not block the executor for long.
        Ok(self.contains(reference)?)
    }

    async fn pull_image(&self, reference: &str) -> Result<()> {
        self.pull(reference, &PullOptions::default()).await?;
        Ok(())
    }
}
