//! What a bench run records besides its figures: the commit it measured, the
//! machine's load, and the JSON file it writes.

use anyhow::Context;

/// Writes the JSON to `out` and says where it went.
pub(super) fn write(
    out: &std::path::Path,
    value: &impl serde::Serialize,
    commit: &str,
    dirty: bool,
) -> anyhow::Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(out, text + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "commit {commit}{}; written to {}",
        if dirty { " (dirty)" } else { "" },
        out.display()
    );
    Ok(())
}

/// Which profile this binary was built with, as the reports name it.
pub(super) fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The commit measured, and whether the work tree differs from it.
pub(super) fn source_state() -> (String, bool) {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // The bench's own results do not make the code it measures dirty: a run after the
    // first would otherwise be marked so for the JSON the first one wrote.
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":/",
        ":(top,exclude)bench-results",
    ])
    .is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

pub(super) fn load_average() -> Option<Vec<f64>> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .filter_map(|v| v.parse().ok())
            .collect(),
    )
}
