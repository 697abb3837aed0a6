//! Building and running the server: `Application::build` → `local_addr` →
//! `run_until_stopped`, so tests and the CLI start it the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use runbox_core::Config;
use runbox_runtime::{OpenError, Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::routes::router;
use crate::state::AppState;

/// After the shutdown grace, how long the runs that were stopped get to send their
/// answers.
const ANSWER_AFTER_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] OpenError),
}

/// A bound, ready server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// Ends the MCP sessions (and so their notebooks) at shutdown.
    mcp_stop: CancellationToken,
}

impl Application {
    /// Binds the listener and opens the runtime (the store, the sandboxes and their pools).
    /// `image` is the sandbox image, already made sure of by the caller.
    pub async fn build(
        config: Config,
        engines: impl Into<runbox_runtime::EngineSet>,
        image: String,
    ) -> Result<Application, StartupError> {
        let config = Arc::new(config);
        let address = format!("{}:{}", config.server.host, config.server.port);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?;
        let public_url = public_url(&config, local);
        let runtime = Runtime::open(config.clone(), engines, image, public_url).await?;
        let mcp_stop = CancellationToken::new();
        let peers = match crate::peer_client::PeerClient::new(&config) {
            Ok(peers) => Some(peers),
            Err(err) => {
                tracing::error!(error = %err, "cannot make the client for peers; this replica will not forward");
                None
            }
        };
        let state = AppState {
            mcp: crate::mcp::service(runtime.clone(), peers.clone(), mcp_stop.clone()),
            peers,
            runtime,
            config,
            metrics: crate::metrics::install(),
        };
        Ok(Application {
            listener,
            router: router(state.clone()),
            state,
            mcp_stop,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `stop` fires, then drains: requests in flight get up to
    /// `server.shutdown_grace` to finish; after that their sandboxes are killed. Every
    /// container of this instance is gone when this returns.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> Result<(), StartupError> {
        let Application {
            listener,
            router,
            state,
            mcp_stop,
        } = self;
        let grace = state.config.server.shutdown_grace.get();
        let stopped_at = Arc::new(std::sync::OnceLock::<Instant>::new());
        tokio::spawn({
            let stop = stop.clone();
            let stopped_at = stopped_at.clone();
            async move {
                stop.cancelled().await;
                let _ = stopped_at.set(Instant::now());
            }
        });
        let client_timeout = state.config.server.client_timeout.get();
        let serve = crate::listen::serve(listener, router, client_timeout, stop.clone());
        tokio::pin!(serve);
        let deadline = async {
            stop.cancelled().await;
            tracing::info!(
                grace_s = grace.as_secs_f64(),
                "shutting down: draining requests"
            );
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = &mut serve => {}
            () = deadline => {
                tracing::warn!("shutdown grace expired; killing the sandboxes still running");
                // The runs end with a 503 and session execs with an error, and those
                // answers still reach their clients before the connections close.
                state.runtime.stop_runs().await;
                if tokio::time::timeout(ANSWER_AFTER_GRACE, &mut serve).await.is_err() {
                    tracing::warn!("some connections were still open; closing them");
                }
            }
        }
        // Async tasks get what is left of the grace period, then are killed (they end
        // FAILED, reason `interrupted`).
        let left = stopped_at
            .get()
            .map_or(grace, |at| grace.saturating_sub(at.elapsed()));
        mcp_stop.cancel();
        state.runtime.shutdown(left).await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn public_url(config: &Config, local: SocketAddr) -> String {
    let configured = config.server.public_url.trim().trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    let host = match config.server.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_string(),
        other => other.to_string(),
    };
    format!("http://{host}:{}", local.port())
}
