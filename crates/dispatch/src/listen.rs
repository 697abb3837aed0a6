//! The accept loop. axum's own `serve` gives hyper no timer, which turns hyper's
//! header-read timeout off: a client that sends its request headers a byte at a time,
//! or opens a connection and stops mid-header, would hold the connection and its task
//! for ever. Here every connection must deliver each request's headers within
//! `server.client_timeout`; bodies have the same idle limit (routes/body_guard.rs).
//! HTTP/1.1 only, as before: no client of runbox needs HTTP/2.

use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// After an accept error that is not about one connection (out of file descriptors),
/// how long the loop waits before it accepts again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);
/// While accepting keeps failing, how often the failure is logged again (the loop
/// retries every `ACCEPT_ERROR_PAUSE`: a warning each time would flood the log).
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `stop` fires; then accepts no more connections,
/// lets each open one finish the request it is answering (idle ones close at once) and
/// returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    client_timeout: Duration,
    stop: CancellationToken,
) {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
    let connections = GracefulShutdown::new();
    let mut trouble = AcceptTrouble::default();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Some((failures, lasted)) = trouble.over() {
                        tracing::warn!(
                            failures,
                            seconds = lasted.as_secs(),
                            "accepting connections again"
                        );
                    }
                    stream
                }
                Err(err) if concerns_one_connection(&err) => continue,
                Err(err) => {
                    metrics::counter!("runbox_accept_errors_total").increment(1);
                    if let Some(failures) = trouble.failed(Instant::now()) {
                        tracing::warn!(
                            error = %err,
                            failures,
                            "cannot accept connections; retrying every {} ms",
                            ACCEPT_ERROR_PAUSE.as_millis()
                        );
                    }
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a client connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// A spell of failing accepts (out of file descriptors, say), so that it is logged when
/// it starts, now and then while it lasts, and when it ends, not every retry.
#[derive(Debug, Default)]
struct AcceptTrouble {
    /// When the spell began and when it was last logged.
    spell: Option<(Instant, Instant)>,
    failures: u64,
}

impl AcceptTrouble {
    /// Counts a failure at `now`; the failures so far when this one is to be logged.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        self.failures += 1;
        match &mut self.spell {
            None => {
                self.spell = Some((now, now));
                Some(self.failures)
            }
            Some((_, logged)) if now.duration_since(*logged) >= ACCEPT_ERROR_LOG_EVERY => {
                *logged = now;
                Some(self.failures)
            }
            Some(_) => None,
        }
    }

    /// An accept succeeded: the failures and the length of the spell that just ended.
    fn over(&mut self) -> Option<(u64, Duration)> {
        let (began, _) = self.spell.take()?;
        let failures = std::mem::take(&mut self.failures);
        Some((failures, began.elapsed()))
    }
}

/// Errors of `accept` that end one connection attempt, not the listener.
fn concerns_one_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spell_of_failed_accepts_is_logged_when_it_starts_now_and_then_and_when_it_ends() {
        let mut trouble = AcceptTrouble::default();
        assert_eq!(trouble.over(), None, "no spell, nothing to report");
        let start = Instant::now();
        assert_eq!(trouble.failed(start), Some(1));
        let logged: Vec<u64> = (1..=150u32)
            .filter_map(|i| trouble.failed(start + ACCEPT_ERROR_PAUSE * i))
            .collect();
        // 150 retries 200 ms apart: the one at the 30 s mark is logged, 149 are not.
        assert_eq!(logged, vec![151]);
        let (failures, _) = trouble.over().expect("the spell ended");
        assert_eq!(failures, 151);
        assert_eq!(
            trouble.failed(start),
            Some(1),
            "a new spell is logged at once"
        );
    }
}
