//! Runs, sessions and shutdown on the fake engine: what happens to containers when a
//! sandbox died in the pool, a caller goes away, the engine is away, runbox stops.

use std::time::Duration;

use super::*;
use crate::backend::ContainerFilter;
use crate::fake::FakeBackend;
use crate::testing::{config, eventually, ready, request, start};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_sandbox_that_died_in_the_pool_is_replaced_and_the_run_succeeds() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(1, 1, &[])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 1).await;
    let pooled = engine.ids(&ContainerFilter::default());
    assert_eq!(pooled.len(), 1);
    // Dead before the run begins, and its stream has not said so yet.
    engine.die_silently(&pooled[0]);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let outcome = sandboxes
        .run(&request("print(2)"), RunOptions::default())
        .await
        .expect("the run goes to another sandbox");
    assert_eq!(outcome.stdout, "print(2)");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    eventually(WITHIN, "the dead sandbox is removed", || {
        !engine.exists(&pooled[0])
    })
    .await;
    sandboxes.shutdown().await;
    assert_eq!(engine.live(), 0);
}

#[tokio::test]
async fn a_killed_pooled_sandbox_is_never_handed_out() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(1, 1, &[])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 1).await;
    let pooled = engine.ids(&ContainerFilter::default());
    engine.kill(&pooled[0]);
    let outcome = sandboxes
        .run(&request("print(3)"), RunOptions::default())
        .await
        .expect("the run gets a live sandbox");
    assert_eq!(outcome.stdout, "print(3)");
    eventually(WITHIN, "the killed sandbox is removed", || {
        !engine.exists(&pooled[0])
    })
    .await;
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn shutdown_removes_every_container_and_later_checkouts_fail() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(3, 3, &[])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 3).await;
    sandboxes
        .run(&request("print(4)"), RunOptions::default())
        .await
        .expect("a run before shutdown");

    sandboxes.shutdown().await;
    assert_eq!(engine.live(), 0, "no container is left on the engine");
    assert_eq!(sandboxes.status().live_containers, 0);

    let run = sandboxes
        .run(&request("print(5)"), RunOptions::default())
        .await;
    assert!(matches!(run, Err(SandboxError::ShuttingDown)), "{run:?}");
    let session = sandboxes.open_session(&Isolation::Standard).await;
    assert!(matches!(session, Err(SandboxError::ShuttingDown)));
    assert_eq!(engine.live(), 0);
}

#[tokio::test]
async fn a_run_whose_caller_goes_away_leaves_no_container() {
    let engine = FakeBackend::new();
    engine.set_faults(|f| f.answer_delay = Duration::from_secs(60));
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    let request = request("while True: pass");
    let run = sandboxes.run(&request, RunOptions::default());
    let dropped = tokio::time::timeout(Duration::from_millis(300), run).await;
    assert!(dropped.is_err(), "the run was still going when dropped");
    assert_eq!(engine.created(), 1);
    eventually(WITHIN, "the dropped run's container is removed", || {
        engine.live() == 0
    })
    .await;
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn a_caller_gone_while_the_engine_creates_leaves_no_container() {
    let engine = FakeBackend::new();
    engine.set_faults(|f| f.create_delay = Duration::from_millis(300));
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    let request = request("print(6)");
    let run = sandboxes.run(&request, RunOptions::default());
    let dropped = tokio::time::timeout(Duration::from_millis(50), run).await;
    assert!(dropped.is_err(), "dropped while the engine was creating");
    eventually(WITHIN, "the orphan is created, then removed", || {
        engine.created() == 1 && engine.live() == 0
    })
    .await;
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn an_absent_engine_is_reported_as_unavailable() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    engine.set_faults(|f| f.unavailable = true);
    let failed = sandboxes
        .run(&request("print(7)"), RunOptions::default())
        .await;
    match failed {
        Err(err) => assert!(err.is_unavailable(), "{err}"),
        Ok(outcome) => panic!("ran without an engine: {outcome:?}"),
    }
    assert!(!sandboxes.docker_status().await.reachable);

    engine.set_faults(|f| f.unavailable = false);
    let outcome = sandboxes
        .run(&request("print(8)"), RunOptions::default())
        .await
        .expect("runs once the engine is back");
    assert_eq!(outcome.stdout, "print(8)");
    sandboxes.shutdown().await;
    assert_eq!(engine.live(), 0);
}

#[tokio::test]
async fn a_missing_image_is_named() {
    let engine = FakeBackend::new();
    engine.set_faults(|f| f.missing_images = vec![crate::testing::IMAGE.to_string()]);
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    let failed = sandboxes
        .run(&request("print(9)"), RunOptions::default())
        .await;
    assert!(
        matches!(failed, Err(SandboxError::ImageMissing(_))),
        "{failed:?}"
    );
    assert_eq!(engine.live(), 0);
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn a_session_keeps_its_sandbox_until_closed() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    let mut session = sandboxes
        .open_session(&Isolation::Standard)
        .await
        .expect("a session");
    for code in ["x = 1", "print(x)"] {
        let outcome = session.exec(&request(code), None).await.expect("runs");
        assert_eq!(outcome.stdout, code);
    }
    assert!(session.is_alive());
    assert_eq!(engine.live(), 1);
    session.close().await;
    assert_eq!(engine.live(), 0);
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn an_environment_build_leaves_no_container() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    let deps = DependencySet::parse(&["tabulate==0.9.0"]).expect("valid");
    let plan = sandboxes.plan_environment(&deps);
    let report = sandboxes
        .build_environment(&deps, &plan, Duration::from_secs(5))
        .await
        .expect("builds");
    // The fake's pip installs nothing: the sandbox image itself serves the set.
    assert_eq!(report.image, crate::testing::IMAGE);
    assert_eq!(engine.created(), 1, "one build container");
    assert_eq!(engine.live(), 0, "removed after the build");
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn a_tier_nobody_offers_is_refused_never_downgraded() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(0, 1, &[])).await;
    let mut strong = request("print(1)");
    strong.isolation = Isolation::Strong;
    let refused = sandboxes.run(&strong, RunOptions::default()).await;
    assert!(
        matches!(&refused, Err(SandboxError::IsolationUnavailable { asked, runtime, .. }) if asked == "strong" && runtime == "runsc"),
        "{refused:?}"
    );
    assert_eq!(engine.created(), 0, "no sandbox was made for it");
    let mut named = request("print(1)");
    named.isolation = Isolation::Runtime("crun".into());
    assert!(sandboxes.run(&named, RunOptions::default()).await.is_err());
    let session = sandboxes.open_session(&Isolation::Strong).await;
    assert!(matches!(
        session,
        Err(SandboxError::IsolationUnavailable { .. })
    ));
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn each_tier_runs_under_its_own_runtime_and_pool() {
    let engine = FakeBackend::new();
    engine.offer_runtimes(&["runsc", "crun"]);
    let mut settings = config(1, 1, &[]);
    settings.sandbox.pool.strong_size = 1;
    let sandboxes = start(&engine, settings).await;
    eventually(WITHIN, "both pools are full", || ready(&sandboxes) == 2).await;
    let mut used = engine.runtimes_used();
    used.sort();
    assert_eq!(used, ["", "runsc"], "one warm sandbox of each tier");
    let mut strong = request("print(1)");
    strong.isolation = Isolation::Strong;
    let outcome = sandboxes
        .run(&strong, RunOptions::default())
        .await
        .expect("strong runs");
    assert!(outcome.error.is_none());
    let mut crun = request("print(1)");
    crun.isolation = Isolation::Runtime("crun".into());
    sandboxes
        .run(&crun, RunOptions::default())
        .await
        .expect("a named runtime the engine has runs");
    assert!(
        engine.runtimes_used().iter().any(|r| r == "crun"),
        "{:?}",
        engine.runtimes_used()
    );
    // The standard pool's sandbox was not handed to either.
    let status = sandboxes.status();
    let default_pool = status
        .pools
        .iter()
        .find(|p| p.runtime.is_empty())
        .expect("the standard pool");
    assert_eq!(default_pool.ready, 1, "{:?}", status.pools);
    sandboxes.shutdown().await;
}
