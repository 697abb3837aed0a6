//! The engine's own cost next to runbox's: bare container churn at each concurrency,
//! and sustained levels measured in rounds interleaved with that churn.

use std::sync::Arc;

use indicatif::ProgressBar;
use runbox_core::Config;
use runbox_sandbox::Containers;

use super::baselines;
use super::load::{self, Scenario};
use super::progress::{bar, finish};
use super::report::{ChurnRun, Report, ScenarioRun};
use super::stats::{self, Tally};
use super::subject::{Subject, SETTLE_WITHIN};

/// What the churn baseline runs with: the engine, the sandbox image, the label its
/// bare containers carry (so the leak check finds any), and the containers per level.
pub(super) struct Churn<'a> {
    pub(super) containers: &'a Containers,
    pub(super) config: &'a Arc<Config>,
    pub(super) image: &'a str,
    pub(super) instance: &'a str,
    pub(super) requests: usize,
}

impl Churn<'_> {
    /// The bare container churn at every concurrency level.
    pub(super) async fn every_level(
        &self,
        report: &mut Report,
        levels: &[usize],
        phase: &'static str,
    ) {
        for &concurrency in levels {
            self.level(report, concurrency, phase).await;
        }
    }

    /// The bare container churn at one concurrency level of the whole run.
    pub(super) async fn level(&self, report: &mut Report, concurrency: usize, phase: &'static str) {
        let bar = bar(self.requests, &format!("churn c={concurrency} ({phase})"));
        let figures = self
            .block(concurrency, self.requests, &bar)
            .await
            .figures(false);
        finish(&bar, &figures);
        report.churn.push(ChurnRun {
            concurrency,
            phase,
            beside: None,
            figures,
        });
    }

    /// `requests` bare containers at `concurrency`.
    async fn block(&self, concurrency: usize, requests: usize, bar: &ProgressBar) -> Tally {
        baselines::churn(
            self.containers,
            self.config,
            self.image,
            self.instance,
            concurrency,
            requests,
            bar,
        )
        .await
    }
}

/// How a sustained level measured in rounds runs: how many, and the requests (and bare
/// containers) in each block.
#[derive(Clone, Copy)]
pub(super) struct Rounds {
    pub(super) count: usize,
    pub(super) requests: usize,
}

/// A sustained level whose ratio to the churn is a target. The engine's churn on this
/// kind of machine swings by a tenth within seconds, so one block of each side, however
/// long, gives a ratio as noisy as that. Here each round is a block of bare churn and a
/// block of runbox's requests at the same concurrency, churn first in even rounds and
/// runbox first in odd ones (drift during the level falls on both alike), and the ratio
/// is that of all of runbox's requests over all of its blocks' time to all the bare
/// containers over theirs. A runbox block lasts until the work it left behind is done:
/// its containers removed and the pool refilled (not the later preload), which the churn
/// block pays within its own time. Every block starts from a full, idle pool.
pub(super) async fn interleaved_level(
    subject: &Subject,
    churn: &Churn<'_>,
    report: &mut Report,
    scenario: Scenario,
    concurrency: usize,
    rounds: Rounds,
) -> ScenarioRun {
    let bar = bar(
        rounds.count * rounds.requests * 2,
        &format!(
            "{} c={concurrency} sustained, {} rounds with churn",
            scenario.name(),
            rounds.count
        ),
    );
    let mut runbox = Tally::default();
    let mut bare = Tally::default();
    let mut round_ratios = Vec::new();
    for round in 0..rounds.count {
        let churn_first = round % 2 == 0;
        let (mut churn_rate, mut runbox_rate) = (None, None);
        for runbox_turn in [!churn_first, churn_first] {
            subject.settle().await;
            if runbox_turn {
                let mut block = load::run_scenario(
                    &subject.target,
                    scenario,
                    concurrency,
                    rounds.requests,
                    false,
                    &bar,
                )
                .await;
                let left_behind = subject.target.pool.wait_quiet(SETTLE_WITHIN).await;
                if left_behind.is_none() {
                    bar.println(format!(
                        "  the work a block left was not done within {} s; counted as that long",
                        SETTLE_WITHIN.as_secs()
                    ));
                }
                block.extend_wall(left_behind.unwrap_or(SETTLE_WITHIN));
                runbox_rate = block.rate();
                runbox.absorb(block);
            } else {
                let block = churn.block(concurrency, rounds.requests, &bar).await;
                churn_rate = block.rate();
                bare.absorb(block);
            }
        }
        if let (Some(runbox_rate), Some(churn_rate)) = (runbox_rate, churn_rate) {
            if churn_rate > 0.0 {
                round_ratios.push(stats::round(runbox_rate / churn_rate));
            }
        }
    }
    subject.settle().await;
    let figures = runbox.figures(false);
    finish(&bar, &figures);
    report.churn.push(ChurnRun {
        concurrency,
        phase: "interleaved",
        beside: Some(scenario),
        figures: bare.figures(false),
    });
    let mut run = ScenarioRun::new(scenario, concurrency, "sustained", figures);
    run.round_ratios = round_ratios;
    run
}
