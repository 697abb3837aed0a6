//! Drives requests: `concurrency` workers in a closed loop, each taking the next of a fixed
//! number of requests until none is left. Paced workers first wait until the warm pool is
//! full, so that what they measure is the warm path, not the refill.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use runbox_sandbox::Sandboxes;
use serde::Serialize;
use serde_json::{json, Value};

use super::stats::{Recorder, Tally};

/// How long a paced request waits for the pool to refill before it goes anyway.
const REFILL_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `print(1)`.
    Print,
    /// numpy + matplotlib: a line plot saved to plot.png, stored, its URL returned.
    Plot,
    /// bash `sleep 1`.
    Sleep,
    /// `print(1)` through the native `/execute` (notebook outputs on).
    Execute,
    /// A figure shown with `plt.show()` through `/execute`: one notebook output, its
    /// PNG stored.
    Show,
}

const SHOW_CODE: &str = "import matplotlib.pyplot as plt
plt.plot([1, 3, 2])
plt.show()";

const PLOT_CODE: &str = "import numpy as np\nimport matplotlib.pyplot as plt\n\
x = np.linspace(0, 10, 200)\nplt.plot(x, np.sin(x))\nplt.title('bench')\n\
plt.savefig('plot.png')\nprint('saved')";

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Print => "print",
            Scenario::Plot => "plot",
            Scenario::Sleep => "sleep",
            Scenario::Execute => "execute",
            Scenario::Show => "show",
        }
    }

    /// The route the scenario's requests go to.
    fn path(self) -> &'static str {
        match self {
            Scenario::Print | Scenario::Plot | Scenario::Sleep => "/runcode",
            Scenario::Execute | Scenario::Show => "/execute",
        }
    }

    fn body(self) -> Value {
        match self {
            Scenario::Print => {
                json!({"languageType": "python", "variables": {}, "code": "print(1)"})
            }
            Scenario::Plot => json!({"languageType": "python", "variables": {}, "code": PLOT_CODE}),
            Scenario::Sleep => json!({"languageType": "bash", "variables": {}, "code": "sleep 1"}),
            Scenario::Execute => json!({"code": "print(1)"}),
            Scenario::Show => json!({"code": SHOW_CODE}),
        }
    }

    /// Whether the response is the one this scenario must get.
    fn check(self, status: u16, body: &Value) -> Result<(), String> {
        if status != 200 {
            return Err(format!("HTTP {status}: {}", short(body)));
        }
        let fine = match self {
            Scenario::Print => body == &json!({"output": "1\n"}),
            Scenario::Plot => {
                body["output"] == "saved\n"
                    && body["images"]["plot.png"]
                        .as_str()
                        .is_some_and(|url| url.contains("/image/"))
            }
            Scenario::Sleep => body == &json!({"output": ""}),
            Scenario::Execute => body["success"] == true && body["stdout"] == "1\n",
            Scenario::Show => {
                body["success"] == true
                    && body["outputs"][0]["data"]["image/png"]["url"]
                        .as_str()
                        .is_some_and(|url| url.contains("/image/"))
            }
        };
        if fine {
            Ok(())
        } else {
            Err(format!("unexpected answer: {}", short(body)))
        }
    }
}

fn short(body: &Value) -> String {
    let mut text = body.to_string();
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// What /health says about the pool and the sandboxes in use.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PoolSnapshot {
    pub ready: usize,
    /// Ready sandboxes that have the configured modules imported.
    pub preloaded: usize,
    pub target: usize,
    pub in_use: usize,
    pub port_leases: usize,
    /// Containers the server owns: pooled, running, starting or being removed (absent
    /// from a server that does not say).
    pub live: Option<usize>,
}

impl PoolSnapshot {
    /// Nothing runs, the pool is back at its size (its preload aside), and no container
    /// is starting or being removed beside the pooled ones.
    fn quiet(&self) -> bool {
        self.in_use == 0
            && self.ready >= self.target
            && self.live.is_none_or(|live| live <= self.ready)
    }
}

/// Reads the server's pool: directly when it runs in this process (no request that
/// would itself load the engine), else from its /health.
#[derive(Clone)]
pub enum PoolProbe {
    InProcess(Sandboxes),
    Remote {
        client: reqwest::Client,
        base: String,
    },
}

impl PoolProbe {
    pub async fn snapshot(&self) -> Option<PoolSnapshot> {
        match self {
            PoolProbe::InProcess(sandboxes) => {
                let status = sandboxes.status();
                Some(PoolSnapshot {
                    ready: status.pools.iter().map(|p| p.ready).sum(),
                    preloaded: status.pools.iter().map(|p| p.preloaded).sum(),
                    target: status.pools.iter().map(|p| p.target).sum(),
                    in_use: status.in_use,
                    port_leases: status.port_leases,
                    live: Some(status.live_containers),
                })
            }
            PoolProbe::Remote { client, base } => {
                let response = client.get(format!("{base}/health")).send().await.ok()?;
                let body: Value = response.json().await.ok()?;
                let count = |v: &Value| v.as_u64().map(|n| n as usize);
                let preloaded = body["pool"]["pools"]
                    .as_array()
                    .map(|pools| pools.iter().filter_map(|p| count(&p["preloaded"])).sum());
                Some(PoolSnapshot {
                    ready: count(&body["pool"]["ready"])?,
                    preloaded: preloaded.unwrap_or_default(),
                    target: count(&body["pool"]["target"])?,
                    in_use: count(&body["pool"]["in_use"])?,
                    port_leases: count(&body["port_leases"]).unwrap_or_default(),
                    live: count(&body["pool"]["live_containers"]),
                })
            }
        }
    }

    /// Waits until the pool is at its target, every pooled sandbox has its preload, and
    /// nothing runs; false if that is not so within `within`.
    pub async fn wait_settled(&self, within: Duration) -> bool {
        self.wait_until(within, |s| s.quiet() && s.preloaded >= s.ready)
            .await
            .is_some()
    }

    /// Waits until the work a block of load left behind is done (see
    /// [`PoolSnapshot::quiet`]): the removal of its containers and the refill of the
    /// sandboxes it took, not the preload that replaces them later. How long that took,
    /// or `None` when it was not done within `within`.
    pub async fn wait_quiet(&self, within: Duration) -> Option<Duration> {
        self.wait_until(within, PoolSnapshot::quiet).await
    }

    async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&PoolSnapshot) -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        let every = match self {
            PoolProbe::InProcess(_) => Duration::from_millis(5),
            PoolProbe::Remote { .. } => Duration::from_millis(50),
        };
        loop {
            if self.snapshot().await.is_some_and(|s| done(&s)) {
                return Some(started.elapsed());
            }
            if started.elapsed() >= within {
                return None;
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// The runbox server under test.
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
    pub pool: PoolProbe,
}

impl Target {
    /// One request of `scenario`; Ok when it got the expected answer.
    async fn request(&self, scenario: Scenario) -> Result<(), String> {
        let response = self
            .client
            .post(format!("{}{}", self.base, scenario.path()))
            .bearer_auth(&self.token)
            .json(&scenario.body())
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        scenario.check(status, &body)
    }
}

type Operation =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `requests` of `scenario` against `target` by `concurrency` workers.
pub async fn run_scenario(
    target: &Arc<Target>,
    scenario: Scenario,
    concurrency: usize,
    requests: usize,
    paced: bool,
    bar: &ProgressBar,
) -> Tally {
    let operation: Operation = {
        let target = target.clone();
        Arc::new(move || {
            let target = target.clone();
            Box::pin(async move { target.request(scenario).await })
        })
    };
    let pacer = paced.then(|| target.pool.clone());
    closed_loop(concurrency, requests, pacer, bar, operation).await
}

/// Runs `operation` `requests` times with `concurrency` workers; each worker of a paced
/// run first waits for a settled pool (not counted in the latency).
pub async fn closed_loop(
    concurrency: usize,
    requests: usize,
    pacer: Option<PoolProbe>,
    bar: &ProgressBar,
    operation: Operation,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let started = Instant::now();
    // A JoinSet, so that a bench that stops waiting (an interrupt) stops its workers too.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let recorder = recorder.clone();
        let operation = operation.clone();
        let pacer = pacer.clone();
        let bar = bar.clone();
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < requests {
                if let Some(pacer) = &pacer {
                    if !pacer.wait_settled(REFILL_WAIT).await {
                        bar.println("  the pool did not refill within 60 s; sending anyway");
                    }
                }
                let sent = Instant::now();
                let outcome = operation().await;
                let latency = sent.elapsed();
                if let Ok(mut recorder) = recorder.lock() {
                    match outcome {
                        Ok(()) => recorder.ok(latency),
                        Err(message) => recorder.error(message),
                    }
                }
                bar.inc(1);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let wall = started.elapsed();
    let recorder = match Arc::try_unwrap(recorder) {
        Ok(mutex) => mutex.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner())),
    };
    Tally::new(recorder, wall)
}

/// Wraps an async closure as an [`Operation`].
pub fn operation<F, Fut>(f: F) -> Operation
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}
