//! The server a bench measures (started in this process, or named by `--server`), and
//! what is left of it afterwards: stopping it, counting leaks, cleaning up after an
//! interrupt.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use runbox_core::config::StaticToken;
use runbox_core::Config;
use runbox_dispatch::Application;
use runbox_sandbox::{list_containers, Backend, ContainerKind};
use tokio_util::sync::CancellationToken;

use super::baselines;
use super::load::{self, PoolProbe, Target};
use super::report::Leaks;

/// The server under test and how to stop it.
pub(super) struct Subject {
    pub(super) target: Arc<Target>,
    in_process: Option<InProcess>,
}

/// How long the bench waits for the pool to be full, preloaded and idle again.
pub(super) const SETTLE_WITHIN: Duration = Duration::from_secs(120);

impl Subject {
    /// Waits until the pool is full, preloaded and idle: every level and every churn
    /// measurement starts from there. False when it was not within `SETTLE_WITHIN`.
    pub(super) async fn settle(&self) -> bool {
        self.target.pool.wait_settled(SETTLE_WITHIN).await
    }
}

struct InProcess {
    stop: CancellationToken,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
    sandboxes: runbox_sandbox::Sandboxes,
    instance: String,
    _data_dir: tempfile::TempDir,
}

/// The server to measure: the one at `server` (with `token`), or one started in this
/// process on a data dir of its own.
pub(super) async fn start_subject(
    config: &Arc<Config>,
    docker: &Arc<dyn Backend>,
    image: &str,
    bench_instance: &str,
    server: Option<&str>,
    token: Option<&str>,
) -> anyhow::Result<Subject> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    if let Some(server) = server {
        let base = server.trim_end_matches('/').to_string();
        let token = token
            .map(str::to_string)
            .or_else(|| config.auth.tokens.first().map(|t| t.token().to_string()))
            .context("--server needs --token (the configuration lists no static token)")?;
        let pool = PoolProbe::Remote {
            client: client.clone(),
            base: base.clone(),
        };
        return Ok(Subject {
            target: Arc::new(Target {
                client,
                base,
                token,
                pool,
            }),
            in_process: None,
        });
    }
    let data_dir = tempfile::tempdir().context("cannot create a data dir for the bench")?;
    let token = format!("bench-{}", baselines::short_id());
    let instance = format!("{bench_instance}-server");
    let mut server_config = (**config).clone();
    server_config.server.host = "127.0.0.1".into();
    server_config.server.port = 0;
    server_config.server.public_url = String::new();
    server_config.data_dir = data_dir.path().to_path_buf();
    server_config.database.url =
        format!("sqlite://{}", data_dir.path().join("runbox.db").display());
    server_config.sandbox.instance = instance.clone();
    server_config
        .auth
        .tokens
        .push(StaticToken::Bare(token.clone()));
    let app = Application::build(server_config, docker.clone(), image.to_string()).await?;
    let address = app
        .local_addr()
        .context("the bench server has no address")?;
    let sandboxes = app.state().runtime.sandboxes().clone();
    let stop = CancellationToken::new();
    let serving = tokio::spawn({
        let stop = stop.clone();
        async move {
            app.run_until_stopped(stop)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    Ok(Subject {
        target: Arc::new(Target {
            client,
            base: format!("http://{address}"),
            token,
            pool: PoolProbe::InProcess(sandboxes.clone()),
        }),
        in_process: Some(InProcess {
            stop,
            serving,
            sandboxes,
            instance,
            _data_dir: data_dir,
        }),
    })
}

/// Stops the in-process server and counts what it left: containers of its instance and
/// port leases. Against a remote server, counts on-demand containers left on the engine
/// and leases beyond the pool's.
pub(super) async fn check_leaks(
    subject: Subject,
    docker: &dyn Backend,
    bench_instance: &str,
    after_load: Option<load::PoolSnapshot>,
) -> Leaks {
    let mut leaks = Leaks {
        after_load,
        ..Leaks::default()
    };
    leaks.baseline_containers = list_containers(docker, Some(bench_instance), None)
        .await
        .ok()
        .map(|ids| ids.len());
    let settled = subject
        .target
        .pool
        .wait_settled(Duration::from_secs(60))
        .await;
    if !settled {
        leaks
            .notes
            .push("sandboxes were still in use 60 s after the load".into());
    }
    match subject.in_process {
        Some(server) => {
            server.stop.cancel();
            match server.serving.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => leaks
                    .notes
                    .push(format!("the server stopped with an error: {err}")),
                Err(err) => leaks.notes.push(format!("the server task failed: {err}")),
            }
            leaks.port_leases = Some(server.sandboxes.status().port_leases);
            leaks.containers = list_containers(docker, Some(&server.instance), None)
                .await
                .ok()
                .map(|ids| ids.len());
        }
        None => {
            // The pool's own containers (and their leases) are the server's to keep.
            let snapshot = subject.target.pool.snapshot().await;
            let pooled_leases = snapshot.map(|s| s.ready).unwrap_or_default();
            leaks.port_leases = snapshot.map(|s| s.port_leases.saturating_sub(pooled_leases));
            leaks.containers = list_containers(docker, None, Some(ContainerKind::OnDemand))
                .await
                .ok()
                .map(|ids| ids.len());
            leaks.notes.push(
                "remote server: containers counts on-demand sandboxes of every runbox on the engine; \
                 port_leases counts leases beyond the pool's (http transport)"
                    .into(),
            );
        }
    }
    leaks
}

/// After an interrupt: stops the in-process server (which removes its pool and its
/// sandboxes), then removes what the bench itself had made (bare containers, the idle
/// memory pools) by their labels, twice, since a create the interrupt cut short may
/// still land. A second interrupt gives up at once.
pub(super) async fn clean_up_after_interrupt(
    subject: Subject,
    docker: &dyn Backend,
    bench_instance: &str,
) {
    eprintln!("interrupted: stopping the server and removing the bench's containers");
    let clean = async {
        let mut instances = vec![
            bench_instance.to_string(),
            format!("{bench_instance}-memory-0"),
            format!("{bench_instance}-memory-1"),
        ];
        if let Some(server) = subject.in_process {
            server.stop.cancel();
            let _ = server.serving.await;
            instances.push(server.instance);
        }
        let mut removed = 0;
        for pass in 0..2 {
            if pass > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            for instance in &instances {
                removed += runbox_sandbox::sweep_instance(docker, instance)
                    .await
                    .unwrap_or_default();
            }
        }
        eprintln!("removed {removed} containers the bench had left");
        instances
    };
    tokio::select! {
        _ = clean => {}
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "interrupted again: containers labelled runbox.instance={bench_instance}… may be left"
            );
        }
    }
}
