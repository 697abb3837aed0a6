//! `runbox serve`: the server, until SIGTERM or Ctrl-C.

use std::io::Write;

use clap::Args;
use runbox_core::Config;
use runbox_dispatch::Application;
use runbox_sandbox::{connect_docker, docker_runtimes};
use tokio_util::sync::CancellationToken;

use super::image::ensure_sandbox_image;
use super::logging;

#[derive(Args)]
pub struct ServeArgs {
    /// Stop (gracefully) when stdin reaches end of file: lets a supervising process, such
    /// as a test, be sure the server goes away with it.
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
}

pub async fn run(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    logging::init(&config.logging);
    if !config.sandbox.engines.is_empty() {
        let (engines, image) = super::engines::configured_engines(&config).await?;
        let app = Application::build(config, engines, image.clone()).await?;
        return serve(app, &image, args).await;
    }
    let docker = connect_docker().await?;
    let runtime = config.sandbox.runtime.trim();
    if !runtime.is_empty()
        && !docker_runtimes(docker.as_ref())
            .await
            .iter()
            .any(|r| r == runtime)
    {
        tracing::warn!(
            runtime,
            "sandbox.runtime is not installed in the Docker engine: no sandbox can start \
             and /health reports degraded until it is (see `runbox doctor`)"
        );
    }
    let image = ensure_sandbox_image(docker.as_ref(), &config, false).await?;
    let app = Application::build(config, docker, image.clone()).await?;
    serve(app, &image, args).await
}

/// Announces the address and serves until a signal (or stdin's end, when asked).
async fn serve(app: Application, image: &str, args: ServeArgs) -> anyhow::Result<()> {
    let address = app
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "?".into());
    tracing::info!(%address, image, "runbox listening");
    // Tests and scripts read this line to learn the port (the config may say 0).
    println!("runbox listening on http://{address}");
    let _ = std::io::stdout().flush();

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    if args.stop_on_stdin_eof {
        stop_on_stdin_eof(stop.clone());
    }
    app.run_until_stopped(stop).await?;
    Ok(())
}

pub(super) async fn stop_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    stop.cancel();
}

/// A thread of its own rather than the runtime's blocking pool: a read of stdin cannot
/// be cancelled, and the runtime would wait for it at exit after a SIGTERM.
fn stop_on_stdin_eof(stop: CancellationToken) {
    use std::io::Read;
    let spawned = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buffer = [0u8; 256];
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
            stop.cancel();
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot watch stdin; stop with SIGTERM");
    }
}
