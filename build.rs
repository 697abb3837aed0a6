//! Embeds the sandbox image's build context (docker/) into the binary and hashes it into
//! the image tag, so that a binary always runs the agent it was built with and a change
//! to docker/ can never be served by a stale image.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Files under docker/ that are not part of the image: tests of the agent and the
/// deployment recipe. Changing them must not change the image tag.
fn is_context_file(relative: &str) -> bool {
    let excluded_dirs = ["tests/", "deploy/"];
    let excluded_names = ["compose.yaml", "README.md"];
    !excluded_dirs.iter().any(|dir| relative.starts_with(dir))
        && !excluded_names.contains(&relative)
        && !relative.contains("__pycache__")
        && !relative.ends_with(".pyc")
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, root, out);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let relative = relative.to_string_lossy().replace('\\', "/");
            if is_context_file(&relative) {
                out.push((relative, path));
            }
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let docker_dir = manifest.join("docker");
    let bootstrap = manifest.join("scripts/bootstrap-base-image.sh");
    println!("cargo:rerun-if-changed=docker");
    println!("cargo:rerun-if-changed=scripts/bootstrap-base-image.sh");

    let mut files = Vec::new();
    collect(&docker_dir, &docker_dir, &mut files);
    files.sort();

    let mut hasher = Sha256::new();
    for (relative, path) in &files {
        let contents = fs::read(path).unwrap_or_default();
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update((contents.len() as u64).to_be_bytes());
        hasher.update(&contents);
    }
    let hash = hex::encode(hasher.finalize());

    let mut generated = String::new();
    let _ = writeln!(
        generated,
        "/// SHA-256 of the files of docker/ that make the sandbox image.\n\
         pub const SANDBOX_CONTEXT_HASH: &str = {hash:?};"
    );
    generated.push_str(
        "/// The sandbox image's build context: (path inside docker/, contents).\n\
         pub static SANDBOX_CONTEXT: &[(&str, &[u8])] = &[\n",
    );
    for (relative, path) in &files {
        let _ = writeln!(
            generated,
            "    ({relative:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    generated.push_str("];\n");
    let script = if bootstrap.exists() {
        format!("include_str!({:?})", bootstrap.display().to_string())
    } else {
        "\"\"".to_string()
    };
    let _ = writeln!(
        generated,
        "/// scripts/bootstrap-base-image.sh, run when no Python base image can be had.\n\
         pub static BOOTSTRAP_BASE_IMAGE_SCRIPT: &str = {script};"
    );

    let out =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("sandbox_context.rs");
    if let Err(err) = fs::write(&out, generated) {
        panic!("cannot write {}: {err}", out.display());
    }
}
