//! The progress bars of a bench run, one per measurement, ending with its figures.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::stats;

pub(super) fn bar(length: usize, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(length as u64);
    let style = ProgressStyle::with_template("{prefix:>34} [{bar:30}] {pos}/{len} {elapsed} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub(super) fn finish(bar: &ProgressBar, figures: &stats::Figures) {
    let rate = figures
        .requests_per_s
        .map(|r| format!(", {r} req/s"))
        .unwrap_or_default();
    bar.finish_with_message(format!(
        "p50 {} ms, p99 {} ms{rate}, {} errors",
        figures.p50_ms, figures.p99_ms, figures.errors
    ));
}
