//! `runbox image build`: builds the sandbox image from the context compiled into the
//! binary (and the base image when none can be had).

use clap::Subcommand;
use runbox_core::Config;
use runbox_sandbox::connect_docker;
use runbox_sandbox::image::ensure_image;

use crate::embedded::image_source;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Builds the sandbox image (and the offline base image when no Python base exists).
    Build {
        /// Rebuild even when an image with the current tag exists.
        #[arg(long)]
        force: bool,
    },
    /// Prints the tag of the sandbox image this binary and configuration run.
    Tag,
}

pub async fn run(config: Config, command: ImageCommand) -> anyhow::Result<()> {
    let docker = connect_docker().await?;
    match command {
        ImageCommand::Build { force } => {
            let tag = ensure_sandbox_image(&docker, &config, force).await?;
            println!("{tag}");
        }
        ImageCommand::Tag => {
            let mut progress = |_: &str| {};
            let base = runbox_sandbox::image::resolve_base(
                &docker,
                &config,
                &image_source(),
                false,
                &mut progress,
            )
            .await?;
            println!(
                "{}",
                runbox_sandbox::image::plan(&config, &image_source(), &base).tag
            );
        }
    }
    Ok(())
}

/// Builds what is missing, printing the build's progress on stderr.
pub async fn ensure_sandbox_image(
    docker: &runbox_sandbox::Docker,
    config: &Config,
    force: bool,
) -> anyhow::Result<String> {
    let mut progress = |line: &str| eprintln!("  {line}");
    Ok(ensure_image(docker, config, &image_source(), force, &mut progress).await?)
}
