//! Latency figures of one run of requests.

use std::time::Duration;

use serde::Serialize;

/// What one scenario at one concurrency (or one baseline) measured.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Successful requests per second of wall time; `None` where requests were paced
    /// (the waits between them are not load).
    pub requests_per_s: Option<f64>,
    pub wall_s: f64,
    /// Up to five distinct error messages, to say what went wrong.
    pub error_samples: Vec<String>,
}

#[derive(Default)]
pub struct Recorder {
    latencies: Vec<Duration>,
    errors: usize,
    error_samples: Vec<String>,
}

impl Recorder {
    pub fn ok(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    pub fn error(&mut self, message: String) {
        self.errors += 1;
        self.keep_sample(message);
    }

    /// Keeps up to five distinct error messages.
    fn keep_sample(&mut self, message: String) {
        if self.error_samples.len() < 5 && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    /// Takes in the requests of another block.
    pub fn absorb(&mut self, other: Recorder) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        for message in other.error_samples {
            self.keep_sample(message);
        }
    }

    pub fn figures(mut self, wall: Duration, paced: bool) -> Figures {
        self.latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let ok = self.latencies.len();
        let mean = if ok == 0 {
            0.0
        } else {
            self.latencies.iter().map(|d| ms(*d)).sum::<f64>() / ok as f64
        };
        let wall_s = wall.as_secs_f64();
        Figures {
            requests: ok + self.errors,
            ok,
            errors: self.errors,
            p50_ms: round(ms(percentile(&self.latencies, 50.0))),
            p95_ms: round(ms(percentile(&self.latencies, 95.0))),
            p99_ms: round(ms(percentile(&self.latencies, 99.0))),
            mean_ms: round(mean),
            max_ms: round(ms(self.latencies.last().copied().unwrap_or_default())),
            requests_per_s: (!paced && wall_s > 0.0).then(|| round(ok as f64 / wall_s)),
            wall_s: round(wall_s),
            error_samples: self.error_samples,
        }
    }
}

/// The requests of one block of load, or of several blocks taken together, and the wall
/// time they took: a rate over several blocks is their requests over their summed time.
#[derive(Default)]
pub struct Tally {
    recorder: Recorder,
    wall: Duration,
}

impl Tally {
    pub fn new(recorder: Recorder, wall: Duration) -> Self {
        Tally { recorder, wall }
    }

    /// Time the block goes on after its last answer (work it left behind), counted in.
    pub fn extend_wall(&mut self, by: Duration) {
        self.wall += by;
    }

    pub fn absorb(&mut self, block: Tally) {
        self.recorder.absorb(block.recorder);
        self.wall += block.wall;
    }

    /// Successful requests per second of wall time.
    pub fn rate(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        (wall > 0.0).then(|| self.recorder.latencies.len() as f64 / wall)
    }

    pub fn figures(self, paced: bool) -> Figures {
        self.recorder.figures(self.wall, paced)
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut recorder = Recorder::default();
        for ms in 1..=100 {
            recorder.ok(Duration::from_millis(ms));
        }
        recorder.error("boom".into());
        recorder.error("boom".into());
        let figures = recorder.figures(Duration::from_secs(2), false);
        assert_eq!(figures.p50_ms, 50.0);
        assert_eq!(figures.p95_ms, 95.0);
        assert_eq!(figures.p99_ms, 99.0);
        assert_eq!(figures.max_ms, 100.0);
        assert_eq!(figures.errors, 2);
        assert_eq!(figures.error_samples, vec!["boom".to_string()]);
        assert_eq!(figures.requests_per_s, Some(50.0));
    }

    #[test]
    fn blocks_taken_together_rate_over_their_summed_time() {
        let block = |count: u64, wall_ms: u64, error: Option<&str>| {
            let mut recorder = Recorder::default();
            for ms in 1..=count {
                recorder.ok(Duration::from_millis(ms));
            }
            if let Some(message) = error {
                recorder.error(message.into());
            }
            Tally::new(recorder, Duration::from_millis(wall_ms))
        };
        let mut tally = Tally::default();
        tally.absorb(block(10, 1000, Some("boom")));
        let mut slow = block(10, 3000, Some("boom"));
        slow.extend_wall(Duration::from_millis(1000));
        tally.absorb(slow);
        // 20 answers in 5 s, not the mean of 10/s and 2.5/s.
        assert_eq!(tally.rate(), Some(4.0));
        let figures = tally.figures(false);
        assert_eq!(figures.ok, 20);
        assert_eq!(figures.errors, 2);
        assert_eq!(figures.error_samples, vec!["boom".to_string()]);
        assert_eq!(figures.wall_s, 5.0);
        assert_eq!(figures.max_ms, 10.0);
    }
}
