//! The accept loop. axum's own `serve` gives hyper no timer, which turns hyper's
//! header-read timeout off: a client that sends its request headers a byte at a time,
//! or opens a connection and stops mid-header, would hold the connection and its task
//! for ever. Here every connection must deliver each request's headers within
//! `server.client_timeout`; bodies have the same idle limit (routes/body_guard.rs).
//! HTTP/1.1 only, as before: no client of runbox needs HTTP/2.

use std::time::Duration;

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
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) if concerns_one_connection(&err) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept connections; retrying");
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

/// Errors of `accept` that end one connection attempt, not the listener.
fn concerns_one_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
