//! A streamed run's events on their way from the sandbox to a surface: output passes
//! through as it is; each display item has its images stored first, so that its event
//! carries their URLs, and the views made here are the first outputs of the result.

use std::future::Future;

use runbox_core::ExecEvent;
use tokio::sync::mpsc;

use crate::execution::Runner;
use crate::outputs::OutputView;

/// Events buffered between the sandbox and the relay.
const DEPTH: usize = 64;

/// What a surface receives while a run streams.
#[derive(Clone, Debug)]
pub enum RunEvent {
    Stdout(String),
    Stderr(String),
    /// A display item, its images stored.
    Display(OutputView),
}

/// Runs `run` with a sender for its sandbox's events when `to` is there, relaying them
/// to `to`; returns what `run` returned and the outputs already shown.
pub(crate) async fn relayed<F, Fut>(
    runner: &Runner,
    to: Option<mpsc::Sender<RunEvent>>,
    run: F,
) -> (Fut::Output, Vec<OutputView>)
where
    F: FnOnce(Option<mpsc::Sender<ExecEvent>>) -> Fut,
    Fut: Future,
{
    let Some(to) = to else {
        return (run(None).await, Vec::new());
    };
    let (events, received) = mpsc::channel(DEPTH);
    // `run` owns the sender: when it ends, the relay drains what is left and ends too.
    tokio::join!(run(Some(events)), relay(runner, received, to))
}

async fn relay(
    runner: &Runner,
    mut received: mpsc::Receiver<ExecEvent>,
    to: mpsc::Sender<RunEvent>,
) -> Vec<OutputView> {
    let mut shown: Vec<OutputView> = Vec::new();
    // After a failure to store, items are left to the result (which stores them again
    // or fails): a stream never shows an item out of its place.
    let mut storing = true;
    while let Some(event) = received.recv().await {
        let event = match event {
            ExecEvent::Stdout(data) => RunEvent::Stdout(data),
            ExecEvent::Stderr(data) => RunEvent::Stderr(data),
            ExecEvent::Display(_) if !storing => continue,
            ExecEvent::Display(item) => match runner.store_output(shown.len(), item).await {
                Ok(view) => {
                    shown.push(view.clone());
                    RunEvent::Display(view)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot store a display item while streaming");
                    storing = false;
                    continue;
                }
            },
        };
        // A client that went away: the run goes on (or is being cancelled) regardless.
        let _ = to.send(event).await;
    }
    shown
}
