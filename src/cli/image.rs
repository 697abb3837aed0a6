//! `runbox image build`: builds the sandbox image from the context compiled into the
//! binary (and the base image when none can be had). `runbox image spec`: the container
//! a sandbox is created as. `runbox image prune`: removes the
//! dependency environments that no stored function needs any more.

use std::collections::HashSet;

use clap::Subcommand;
use runbox_core::Config;
use runbox_sandbox::image::ensure_image;
use runbox_sandbox::{connect_docker, plan_environment, prune_environments, DependencySet};
use runbox_store::{EnvironmentStatus, Store};

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
    /// Prints, as JSON, the body runbox sends the engine to create a one-shot sandbox
    /// (stdio transport): its image, user, limits, mounts and labels.
    Spec,
    /// Removes dependency-environment images that the latest version of no stored
    /// function uses (superseded pins, deleted functions, older sandbox images).
    Prune {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(config: Config, command: ImageCommand) -> anyhow::Result<()> {
    let docker = connect_docker().await?;
    match command {
        ImageCommand::Build { force } => {
            let tag = ensure_sandbox_image(docker.as_ref(), &config, force).await?;
            println!("{tag}");
        }
        ImageCommand::Tag => println!("{}", sandbox_image_tag(docker.as_ref(), &config).await?),
        ImageCommand::Spec => {
            let image = sandbox_image_tag(docker.as_ref(), &config).await?;
            let instance = runbox_dispatch::instance_name(&config);
            let body = runbox_sandbox::stdio_sandbox_body(&config, &image, &instance)?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        ImageCommand::Prune { dry_run } => prune(docker.as_ref(), &config, dry_run).await?,
    }
    Ok(())
}

async fn sandbox_image_tag(
    docker: &dyn runbox_sandbox::Backend,
    config: &Config,
) -> anyhow::Result<String> {
    let mut progress = |_: &str| {};
    let base =
        runbox_sandbox::image::resolve_base(docker, config, &image_source(), false, &mut progress)
            .await?;
    Ok(runbox_sandbox::image::plan(config, &image_source(), &base).tag)
}

/// Keeps the environments the latest version of each stored function needs under the
/// current sandbox image; removes the other environment images and their records.
async fn prune(
    docker: &dyn runbox_sandbox::Backend,
    config: &Config,
    dry_run: bool,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url()).await?;
    let sandbox_image = sandbox_image_tag(docker, config).await?;
    let mut keep = HashSet::new();
    for function in store.list_functions().await? {
        let deps = DependencySet::parse(&function.dependencies).unwrap_or_default();
        if !deps.is_empty() {
            keep.insert(plan_environment(config, &sandbox_image, &deps).hash);
        }
    }
    let report = prune_environments(docker, &keep, dry_run).await?;
    if !dry_run {
        for environment in store.list_environments().await? {
            // A build in progress belongs to a registration that has not stored its
            // function yet.
            let building = environment.status == EnvironmentStatus::Building;
            if !keep.contains(&environment.hash) && !building {
                store.delete_environment(&environment.hash).await?;
            }
        }
    }
    store.close().await;
    let verb = if dry_run { "would remove" } else { "removed" };
    for image in &report.removed {
        println!("{verb} {image}");
    }
    for (image, reason) in &report.failed {
        eprintln!("cannot remove {image}: {reason}");
    }
    println!(
        "{verb} {} environment image(s), kept {}, {} could not be removed",
        report.removed.len(),
        report.kept.len(),
        report.failed.len()
    );
    if !report.failed.is_empty() {
        anyhow::bail!("some environment images could not be removed");
    }
    Ok(())
}

/// Builds what is missing, printing the build's progress on stderr.
pub async fn ensure_sandbox_image(
    docker: &dyn runbox_sandbox::Backend,
    config: &Config,
    force: bool,
) -> anyhow::Result<String> {
    let mut progress = |line: &str| eprintln!("  {line}");
    Ok(ensure_image(docker, config, &image_source(), force, &mut progress).await?)
}
