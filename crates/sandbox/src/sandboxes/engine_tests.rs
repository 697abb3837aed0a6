//! Several engines (`sandbox.engines`) on fake engines: which engine a run goes to,
//! and what happens when one is full, away, failing or lacks a runtime or an image.

use std::collections::BTreeMap;
use std::time::Duration;

use super::engine::{order, Candidate};
use super::*;
use crate::fake::FakeBackend;
use crate::testing::{config, eventually, request, IMAGE, INSTANCE};

const WITHIN: Duration = Duration::from_secs(10);

async fn start_engines(engines: &[(&Arc<FakeBackend>, usize)], pool_size: usize) -> Sandboxes {
    let specs = engines
        .iter()
        .map(|(engine, capacity)| {
            let backend: Arc<dyn Backend> = (*engine).clone();
            EngineSpec {
                address: format!("unix:///fake/{}", backend.name()),
                backend,
                capacity: Some(*capacity),
                pool_size: None,
                labels: BTreeMap::from([("zone".to_string(), "unit".to_string())]),
            }
        })
        .collect();
    Sandboxes::start(
        Arc::new(config(pool_size, 1, &[])),
        EngineSet::configured(specs),
        IMAGE.to_string(),
        INSTANCE.to_string(),
    )
    .await
    .expect("sandboxes start on the fake engines")
}

fn candidate(usable: bool, in_use: usize, capacity: usize) -> Candidate {
    Candidate {
        usable,
        offers: true,
        has_image: true,
        in_use,
        capacity,
    }
}

#[test]
fn the_engine_with_the_most_room_comes_first_and_full_or_away_ones_never() {
    let engines = [
        candidate(true, 3, 4),
        candidate(true, 1, 4),
        candidate(false, 0, 4),
        candidate(true, 4, 4),
    ];
    assert_eq!(order(&engines, 0), vec![1, 0]);
    let mut no_runtime = candidate(true, 0, 8);
    no_runtime.offers = false;
    assert_eq!(order(&[candidate(true, 2, 4), no_runtime], 0), vec![0]);
    let mut lacks_image = candidate(true, 0, 8);
    lacks_image.has_image = false;
    assert_eq!(
        order(&[lacks_image, candidate(true, 3, 4)], 0),
        vec![1, 0],
        "an engine that has the image beats one that needs a copy"
    );
}

#[test]
fn equal_engines_take_turns() {
    let engines = [candidate(true, 0, 4), candidate(true, 0, 4)];
    assert_eq!(order(&engines, 0), vec![0, 1]);
    assert_eq!(order(&engines, 1), vec![1, 0]);
}

#[tokio::test]
async fn runs_spread_over_the_engines_and_skip_one_that_does_not_answer() {
    let (a, b, away) = (
        FakeBackend::named("a"),
        FakeBackend::named("b"),
        FakeBackend::named("away"),
    );
    away.set_faults(|f| f.unavailable = true);
    let sandboxes = start_engines(&[(&a, 4), (&b, 4), (&away, 4)], 0).await;
    for n in 0..6 {
        let outcome = sandboxes
            .run(&request(&format!("print({n})")), RunOptions::default())
            .await
            .expect("a run succeeds while one engine is away");
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }
    assert!(
        a.created() > 0 && b.created() > 0,
        "both engines ran sandboxes"
    );
    assert_eq!(
        away.create_attempts(),
        0,
        "the engine that is away is skipped"
    );
    let engines = sandboxes.engines().await;
    let names: Vec<&str> = engines.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "away"]);
    assert!(engines[0].reachable && !engines[2].reachable);
    assert_eq!(engines[0].capacity, Some(4));
    assert_eq!(engines[0].address, "unix:///fake/a");

    // It answers again: the probe makes it ready, and it takes runs.
    away.set_faults(|f| f.unavailable = false);
    eventually(WITHIN, "the engine is ready again", || {
        sandboxes.inner.engines[2].is_ready()
            && sandboxes.inner.engines[2].reachable.load(Ordering::SeqCst)
    })
    .await;
    for _ in 0..3 {
        sandboxes
            .run(&request("1"), RunOptions::default())
            .await
            .expect("runs succeed");
    }
    assert!(away.created() > 0, "the engine that came back takes runs");
    sandboxes.shutdown().await;
    assert_eq!(a.live() + b.live() + away.live(), 0);
}

#[tokio::test]
async fn a_full_engine_is_skipped_and_a_session_stays_on_its_engine() {
    let (a, b) = (FakeBackend::named("a"), FakeBackend::named("b"));
    let sandboxes = start_engines(&[(&a, 1), (&b, 1)], 0).await;
    let mut first = sandboxes
        .open_session(&Isolation::Standard)
        .await
        .expect("a session");
    let mut second = sandboxes
        .open_session(&Isolation::Standard)
        .await
        .expect("another session, on the other engine");
    assert_ne!(first.engine(), second.engine());
    assert_eq!(a.live(), 1);
    assert_eq!(b.live(), 1);
    let full = sandboxes.open_session(&Isolation::Standard).await;
    match full {
        Err(SandboxError::DockerUnavailable(why)) => assert!(why.contains("full"), "{why}"),
        Err(other) => panic!("expected every engine full, got {other}"),
        Ok(_) => panic!("expected every engine full, got a session"),
    }
    // The session's execs run in its own sandbox, on its engine.
    let engine_of_first = first.engine().to_string();
    for _ in 0..3 {
        first
            .exec(&request("x = 1"), None)
            .await
            .expect("the session answers");
        assert_eq!(first.engine(), engine_of_first);
    }
    assert_eq!(a.created() + b.created(), 2, "no other sandbox was made");
    first.close().await;
    second.close().await;
    drop((first, second));
    sandboxes
        .run(&request("1"), RunOptions::default())
        .await
        .expect("room again once the sessions end");
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn a_launch_that_fails_is_tried_on_another_engine() {
    let (broken, good) = (FakeBackend::named("broken"), FakeBackend::named("good"));
    let sandboxes = start_engines(&[(&broken, 4), (&good, 4)], 0).await;
    broken.set_faults(|f| f.creates_fail = true);
    for _ in 0..4 {
        let outcome = sandboxes
            .run(&request("print(1)"), RunOptions::default())
            .await
            .expect("the run goes to the engine that works");
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
    }
    assert!(broken.create_attempts() > 0, "the broken engine was tried");
    assert_eq!(good.created(), 4);
    sandboxes.shutdown().await;
    assert_eq!(broken.live() + good.live(), 0);
}

#[tokio::test]
async fn a_strong_run_goes_to_the_engine_that_offers_the_runtime() {
    let (plain, gvisor) = (FakeBackend::named("plain"), FakeBackend::named("gvisor"));
    gvisor.offer_runtimes(&["runsc"]);
    let sandboxes = start_engines(&[(&plain, 4), (&gvisor, 4)], 0).await;
    assert_eq!(
        sandboxes
            .runtime_for(&Isolation::Strong)
            .await
            .expect("offered"),
        "runsc"
    );
    let placement = Placement::new(IMAGE, "runsc");
    for _ in 0..4 {
        let (part, sandbox, _in_use) = sandboxes.acquire(&placement).await.expect("a sandbox");
        assert_eq!(part.name(), "gvisor");
        sandbox.discard();
    }
    assert_eq!(plain.created(), 0);
    assert!(gvisor.runtimes_used().iter().all(|r| r == "runsc"));
    let refused = sandboxes
        .runtime_for(&Isolation::Runtime("kata".into()))
        .await;
    assert!(matches!(
        refused,
        Err(SandboxError::IsolationUnavailable { .. })
    ));
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn an_engine_without_the_sandbox_image_gets_a_copy() {
    let (has, lacks) = (FakeBackend::named("has"), FakeBackend::named("lacks"));
    lacks.set_faults(|f| f.missing_images = vec![IMAGE.to_string()]);
    let sandboxes = start_engines(&[(&has, 4), (&lacks, 4)], 1).await;
    assert_eq!(lacks.images_loaded(), [IMAGE.to_string()]);
    assert!(has.images_loaded().is_empty());
    eventually(WITHIN, "both engines fill their pools", || {
        sandboxes
            .status()
            .pools
            .iter()
            .filter(|p| p.ready == 1)
            .count()
            == 2
    })
    .await;
    let mut engines: Vec<String> = sandboxes
        .status()
        .pools
        .iter()
        .map(|p| p.engine.clone())
        .collect();
    engines.sort();
    assert_eq!(engines, ["has", "lacks"]);
    sandboxes.shutdown().await;
    assert_eq!(has.live() + lacks.live(), 0);
}
