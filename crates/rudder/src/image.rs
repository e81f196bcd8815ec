//! `rudder image ...`: the node's image store from the command line (import archives, list).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rudder_runtime::images::ImageStore;

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The node's data directory (its image store is `<data-dir>/images`).
    #[arg(
        long,
        default_value = ".rudder",
        env = "RUDDER_DATA_DIR",
        global = true
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Imports an OCI image layout or `docker save` tarball (plain or gzipped).
    Import {
        /// The archive.
        file: PathBuf,
    },
    /// Lists the stored images.
    Ls,
}

/// The image store of a data directory.
pub fn store(data_dir: &std::path::Path) -> Result<ImageStore> {
    ImageStore::open(data_dir.join("images")).context("opening the image store")
}

pub fn run(args: ImageArgs) -> Result<()> {
    let images = store(&args.data_dir)?;
    match args.command {
        ImageCommand::Import { file } => {
            tracing::info!(file = %file.display(), "importing");
            let refs = images
                .import(&file)
                .with_context(|| format!("importing {}", file.display()))?;
            for r in refs {
                println!("imported {r}");
            }
        }
        ImageCommand::Ls => {
            for (reference, digest) in images.list().context("listing images")? {
                println!("{reference}\t{digest}");
            }
        }
    }
    Ok(())
}
