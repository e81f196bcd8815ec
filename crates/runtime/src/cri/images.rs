//! CRI v1 `ImageService` through [`CriRuntime`]: the runtime's own image store (containerd's
//! `k8s.io` namespace), which is where the CRI backend's containers come from. The agent uses
//! [`ImageService`]; the other calls are here for `rudder` tooling and the tests.

use async_trait::async_trait;
use k8s_cri::v1 as cri;

use super::client;
use super::runtime::CriRuntime;
use crate::error::Result;
use crate::image_service::ImageService;

fn spec(reference: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: reference.to_owned(),
        ..Default::default()
    })
}

/// One image of the runtime's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriImage {
    /// The config digest (`sha256:...`).
    pub id: String,
    /// `docker.io/library/busybox:1.36`, ...
    pub repo_tags: Vec<String>,
    /// `docker.io/library/busybox@sha256:...`, ...
    pub repo_digests: Vec<String>,
    /// Size in bytes as the runtime counts it.
    pub size: u64,
}

impl From<cri::Image> for CriImage {
    fn from(i: cri::Image) -> Self {
        CriImage {
            id: i.id,
            repo_tags: i.repo_tags,
            repo_digests: i.repo_digests,
            size: i.size,
        }
    }
}

impl CriRuntime {
    /// `PullImage`: pulls `reference` and returns the pulled image's reference (its id).
    pub async fn pull(&self, reference: &str) -> Result<String> {
        let resp = self
            .client
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: spec(reference),
                auth: None,
                sandbox_config: None,
            })
            .await
            .map_err(|e| client::error("PullImage", "image", reference, e))?;
        Ok(resp.into_inner().image_ref)
    }

    /// `ListImages`: every image in the runtime's store.
    pub async fn list_images(&self) -> Result<Vec<CriImage>> {
        let resp = self
            .client
            .images
            .clone()
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .map_err(|e| client::error("ListImages", "image", "", e))?;
        Ok(resp
            .into_inner()
            .images
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// `ImageStatus`: the image `reference` names, `None` when absent.
    pub async fn image_status(&self, reference: &str) -> Result<Option<CriImage>> {
        let resp = self
            .client
            .images
            .clone()
            .image_status(cri::ImageStatusRequest {
                image: spec(reference),
                verbose: false,
            })
            .await
            .map_err(|e| client::error("ImageStatus", "image", reference, e))?;
        Ok(resp.into_inner().image.map(Into::into))
    }

    /// `RemoveImage`: removes `reference`; removing an absent image succeeds (as CRI says).
    pub async fn remove_image(&self, reference: &str) -> Result<()> {
        self.client
            .images
            .clone()
            .remove_image(cri::RemoveImageRequest {
                image: spec(reference),
            })
            .await
            .map_err(|e| client::error("RemoveImage", "image", reference, e))?;
        Ok(())
    }

    /// `ImageFsInfo`: bytes used by the image filesystems (for the node's disk pressure).
    pub async fn image_fs_used_bytes(&self) -> Result<u64> {
        let resp = self
            .client
            .images
            .clone()
            .image_fs_info(cri::ImageFsInfoRequest {})
            .await
            .map_err(|e| client::error("ImageFsInfo", "image", "", e))?;
        Ok(resp
            .into_inner()
            .image_filesystems
            .iter()
            .filter_map(|f| f.used_bytes.as_ref().map(|u| u.value))
            .sum())
    }
}

#[async_trait]
impl ImageService for CriRuntime {
    async fn image_present(&self, reference: &str) -> Result<bool> {
        Ok(self.image_status(reference).await?.is_some())
    }

    async fn pull_image(&self, reference: &str) -> Result<()> {
        self.pull(reference).await.map(|_| ())
    }
}
