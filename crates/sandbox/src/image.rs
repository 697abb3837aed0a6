//! The sandbox image: which one runs, and building it from the context embedded in the
//! binary when it is missing. The tag hashes the context together with everything the
//! configuration feeds into the build, so a changed agent, base image or dependency
//! list always gets a fresh image and never a stale one.

use std::collections::HashMap;
use std::time::Duration;

use runbox_core::Config;
use sha2::{Digest, Sha256};

pub use crate::backend::Progress;
use crate::backend::{Backend, BackendError, ImageBuild};
use crate::labels;
use crate::SandboxError;

/// The Python image used as the base when `sandbox.base_image` is `auto` and it is present
/// or can be pulled.
pub const UPSTREAM_BASE: &str = "python:3.12-slim";
/// The base built offline by scripts/bootstrap-base-image.sh.
pub const BOOTSTRAP_BASE: &str = "runbox-base:bookworm";
const IMAGE_REPOSITORY: &str = "runbox-sandbox";
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

/// docker/ as compiled into the binary (see build.rs).
#[derive(Clone, Copy)]
pub struct ImageSource {
    pub context: &'static [(&'static str, &'static [u8])],
    pub context_hash: &'static str,
    pub bootstrap_script: &'static str,
}

/// What `runbox doctor` and start-up need to know about the sandbox image.
#[derive(Clone, Debug)]
pub struct ImagePlan {
    /// The image sandboxes run.
    pub tag: String,
    /// Whether runbox builds `tag` itself (false: an operator-supplied `sandbox.image`).
    pub built_by_runbox: bool,
}

/// The tag of the image this configuration runs. For runbox's own image it depends on
/// the base: call after [`resolve_base`] when the base is `auto`.
pub fn plan(config: &Config, source: &ImageSource, base: &str) -> ImagePlan {
    let configured = config.sandbox.image.trim();
    if !configured.is_empty() {
        return ImagePlan {
            tag: configured.to_string(),
            built_by_runbox: false,
        };
    }
    let mut hasher = Sha256::new();
    hasher.update(source.context_hash.as_bytes());
    hasher.update([0]);
    hasher.update(base.as_bytes());
    for package in extra_packages(config) {
        hasher.update([0]);
        hasher.update(package.as_bytes());
    }
    hasher.update([1]);
    hasher.update(config.pip.index_url.trim().as_bytes());
    let digest = hex::encode(hasher.finalize());
    ImagePlan {
        tag: format!("{IMAGE_REPOSITORY}:{}", &digest[..16]),
        built_by_runbox: true,
    }
}

fn extra_packages(config: &Config) -> Vec<String> {
    let mut packages: Vec<String> = config
        .dependencies
        .iter()
        .flatten()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    packages.sort();
    packages.dedup();
    packages
}

pub async fn image_exists(engine: &dyn Backend, name: &str) -> Result<bool, SandboxError> {
    match engine.inspect_image(name).await {
        Ok(_) => Ok(true),
        Err(BackendError::NotFound(_)) => Ok(false),
        Err(source) => Err(SandboxError::Docker {
            action: "inspecting an image",
            source,
        }),
    }
}

/// The base image name for `sandbox.base_image`. `auto` takes python:3.12-slim when it
/// is present, else the bootstrapped Debian base when it is present, else tries to pull
/// python:3.12-slim; when `prepare` is true and nothing could be had, it runs the
/// bootstrap script (debootstrap, about two minutes, needs root).
pub async fn resolve_base(
    engine: &dyn Backend,
    config: &Config,
    source: &ImageSource,
    prepare: bool,
    progress: Progress<'_>,
) -> Result<String, SandboxError> {
    let configured = config.sandbox.base_image.trim();
    if configured != "auto" && !configured.is_empty() {
        return Ok(configured.to_string());
    }
    if image_exists(engine, UPSTREAM_BASE).await? {
        return Ok(UPSTREAM_BASE.into());
    }
    if image_exists(engine, BOOTSTRAP_BASE).await? {
        return Ok(BOOTSTRAP_BASE.into());
    }
    if !prepare {
        // Report the name a build would use; `runbox doctor` says how to get it.
        return Ok(BOOTSTRAP_BASE.into());
    }
    progress(&format!("pulling {UPSTREAM_BASE}"));
    match pull(engine, UPSTREAM_BASE, progress).await {
        Ok(()) => return Ok(UPSTREAM_BASE.into()),
        Err(err) => progress(&format!(
            "cannot pull {UPSTREAM_BASE} ({err}); building {BOOTSTRAP_BASE} offline with debootstrap"
        )),
    }
    run_bootstrap_script(source, progress).await?;
    Ok(BOOTSTRAP_BASE.into())
}

async fn pull(engine: &dyn Backend, image: &str, progress: Progress<'_>) -> Result<(), String> {
    tokio::time::timeout(PULL_TIMEOUT, engine.pull_image(image, progress))
        .await
        .map_err(|_| format!("no answer within {PULL_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

async fn run_bootstrap_script(
    source: &ImageSource,
    progress: Progress<'_>,
) -> Result<(), SandboxError> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    if source.bootstrap_script.is_empty() {
        return Err(SandboxError::ImageBuild(
            "this binary carries no base-image bootstrap script".into(),
        ));
    }
    let mut child = tokio::process::Command::new("bash")
        .arg("-s")
        .arg(BOOTSTRAP_BASE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SandboxError::ImageBuild(format!("cannot run bash for the bootstrap: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(source.bootstrap_script.as_bytes())
            .await
            .map_err(|e| {
                SandboxError::ImageBuild(format!("cannot feed the bootstrap script: {e}"))
            })?;
    }
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            progress(&line);
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| SandboxError::ImageBuild(format!("bootstrap script: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(SandboxError::ImageBuild(format!(
            "scripts/bootstrap-base-image.sh failed ({status}): {}",
            tail.join(" | ")
        )))
    }
}

/// Makes sure the sandbox image exists, building it when runbox owns it and
/// `sandbox.build_missing_image` allows (or `force`). Returns its tag.
pub async fn ensure_image(
    engine: &dyn Backend,
    config: &Config,
    source: &ImageSource,
    force: bool,
    progress: Progress<'_>,
) -> Result<String, SandboxError> {
    let configured = config.sandbox.image.trim();
    if !configured.is_empty() {
        return check_operator_image(engine, configured).await;
    }
    let may_build = force || config.sandbox.build_missing_image;
    let base = resolve_base(engine, config, source, may_build, progress).await?;
    let plan = plan(config, source, &base);
    if !force && image_exists(engine, &plan.tag).await? {
        return Ok(plan.tag);
    }
    if !may_build {
        return Err(SandboxError::ImageMissing(plan.tag));
    }
    build(engine, config, source, &base, &plan.tag, progress).await?;
    Ok(plan.tag)
}

async fn check_operator_image(engine: &dyn Backend, image: &str) -> Result<String, SandboxError> {
    let inspected = match engine.inspect_image(image).await {
        Ok(inspected) => inspected,
        Err(BackendError::NotFound(_)) => {
            return Err(SandboxError::ImageMissing(image.to_string()))
        }
        Err(source) => {
            return Err(SandboxError::Docker {
                action: "inspecting the sandbox image",
                source,
            })
        }
    };
    let has_agent = inspected.labels.contains_key(labels::AGENT);
    if has_agent {
        Ok(image.to_string())
    } else {
        Err(SandboxError::ImageWithoutAgent(image.to_string()))
    }
}

async fn build(
    engine: &dyn Backend,
    config: &Config,
    source: &ImageSource,
    base: &str,
    tag: &str,
    progress: Progress<'_>,
) -> Result<(), SandboxError> {
    progress(&format!("building {tag} from {base}"));
    let context = build_context(config, source)?;
    let mut buildargs = HashMap::from([
        ("BASE_IMAGE".to_string(), base.to_string()),
        (
            "EXTRA_PACKAGES".to_string(),
            extra_packages(config).join(" "),
        ),
    ]);
    let index_url = config.pip.index_url.trim();
    if !index_url.is_empty() {
        buildargs.insert("PIP_INDEX_URL".into(), index_url.into());
    }
    let build = ImageBuild {
        tag: tag.to_string(),
        buildargs,
        labels: HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]),
    };
    let mut tail: Vec<String> = Vec::new();
    let mut keep_tail = |line: &str| {
        progress(line);
        tail.push(line.to_string());
        if tail.len() > 30 {
            tail.remove(0);
        }
    };
    let built = engine.build_image(build, context, &mut keep_tail).await;
    if let Err(err) = built {
        return Err(SandboxError::ImageBuild(format!(
            "{err}\n{}",
            tail.join("\n")
        )));
    }
    if !image_exists(engine, tag).await? {
        return Err(SandboxError::ImageBuild(format!(
            "the build ended without producing {tag}:\n{}",
            tail.join("\n")
        )));
    }
    progress(&format!("built {tag}"));
    Ok(())
}

/// docker/ as a tar archive, plus the operator's CA bundle for pip when configured.
fn build_context(config: &Config, source: &ImageSource) -> Result<Vec<u8>, SandboxError> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut append = |path: &str, contents: &[u8]| -> Result<(), SandboxError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(if path.ends_with(".sh") { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_cksum();
        archive
            .append_data(&mut header, path, contents)
            .map_err(|e| SandboxError::ImageBuild(format!("cannot pack {path}: {e}")))
    };
    for (path, contents) in source.context {
        append(path, contents)?;
    }
    let bundle = config.pip.extra_ca_bundle.trim();
    if !bundle.is_empty() {
        let contents = std::fs::read(bundle)
            .map_err(|e| SandboxError::ImageBuild(format!("pip.extra_ca_bundle {bundle}: {e}")))?;
        append("pip-ca.crt", &contents)?;
    }
    archive
        .into_inner()
        .map_err(|e| SandboxError::ImageBuild(format!("cannot pack the build context: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: ImageSource = ImageSource {
        context: &[("Dockerfile", b"FROM scratch\n")],
        context_hash: "abc",
        bootstrap_script: "",
    };

    #[test]
    fn the_tag_follows_everything_that_changes_the_build() {
        let config = Config::defaults();
        let base = plan(&config, &SOURCE, BOOTSTRAP_BASE).tag;
        assert!(base.starts_with("runbox-sandbox:"));
        assert_ne!(base, plan(&config, &SOURCE, UPSTREAM_BASE).tag);
        let mut with_deps = config.clone();
        with_deps.dependencies = Some(vec!["tabulate".into()]);
        assert_ne!(base, plan(&with_deps, &SOURCE, BOOTSTRAP_BASE).tag);
        let other = ImageSource {
            context_hash: "abd",
            ..SOURCE
        };
        assert_ne!(base, plan(&config, &other, BOOTSTRAP_BASE).tag);
    }

    #[test]
    fn an_operator_image_is_used_as_is() {
        let mut config = Config::defaults();
        config.sandbox.image = "acme/sandbox:1".into();
        let plan = plan(&config, &SOURCE, BOOTSTRAP_BASE);
        assert_eq!(plan.tag, "acme/sandbox:1");
        assert!(!plan.built_by_runbox);
    }

    #[test]
    fn the_context_is_a_tar_of_docker_dir() {
        let tar = build_context(&Config::defaults(), &SOURCE).expect("packs");
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .filter_map(|e| e.ok())
            .filter_map(|e| e.path().ok().map(|p| p.display().to_string()))
            .collect();
        assert_eq!(names, vec!["Dockerfile".to_string()]);
    }
}
