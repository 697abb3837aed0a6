//! The pool's policy on the fake engine: size, refill, parallelism, back-off, preload.

use super::*;
use crate::fake::FakeBackend;
use crate::testing::{config, eventually, ready, request, start};
use crate::RunOptions;
use runbox_core::Isolation;

const WITHIN: Duration = Duration::from_secs(10);

#[test]
fn backoff_doubles_up_to_its_cap_and_resets_on_success() {
    let mut backoff = Duration::ZERO;
    let mut seen = Vec::new();
    for _ in 0..10 {
        backoff = next_backoff(backoff, false);
        seen.push(backoff);
    }
    assert_eq!(seen[0], BACKOFF_START);
    assert_eq!(seen[1], BACKOFF_START * 2);
    assert_eq!(*seen.last().expect("some"), BACKOFF_MAX);
    assert_eq!(next_backoff(backoff, true), Duration::ZERO);
}

#[tokio::test]
async fn the_pool_fills_to_its_size_and_refills_after_a_checkout() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(3, 2, &[])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 3).await;
    assert_eq!(engine.live(), 3, "a full pool and nothing else");

    let outcome = sandboxes
        .run(&request("print(1)"), RunOptions::default())
        .await
        .expect("the run succeeds");
    assert_eq!(outcome.stdout, "print(1)", "the fake agent echoes the code");
    assert!(outcome.error.is_none());

    eventually(WITHIN, "refilled, the used sandbox removed", || {
        ready(&sandboxes) == 3 && engine.live() == 3
    })
    .await;
    assert_eq!(
        engine.created(),
        4,
        "one replacement and no on-demand sandbox: the run took a pooled one"
    );
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn refills_start_at_most_refill_parallelism_sandboxes_at_once() {
    let engine = FakeBackend::new();
    engine.set_faults(|f| f.start_delay = Duration::from_millis(100));
    let sandboxes = start(&engine, config(6, 2, &[])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 6).await;
    assert_eq!(
        engine.max_concurrent_starts(),
        2,
        "the refill used its parallelism and never more"
    );
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn create_failures_back_off_and_the_pool_recovers() {
    let engine = FakeBackend::new();
    engine.set_faults(|f| f.creates_fail = true);
    let sandboxes = start(&engine, config(1, 1, &[])).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Back-off from 200 ms, doubling: attempts at about 0, 0.2 and 0.6 s.
    let attempts = engine.create_attempts();
    assert!(
        (2..=4).contains(&attempts),
        "{attempts} creates in the first second: the refill does not back off"
    );
    let failing = sandboxes.status().pools[0].last_error.clone();
    assert!(
        failing.as_deref().is_some_and(|e| e.contains("injected")),
        "the pool reports its failure: {failing:?}"
    );
    assert_eq!(engine.live(), 0);

    engine.set_faults(|f| f.creates_fail = false);
    eventually(WITHIN, "the pool recovers", || ready(&sandboxes) == 1).await;
    assert_eq!(sandboxes.status().pools[0].last_error, None);
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn a_few_failed_creates_delay_the_pool_only_briefly() {
    let engine = FakeBackend::new();
    engine.set_faults(|f| f.failing_creates = 2);
    let sandboxes = start(&engine, config(2, 2, &[])).await;
    eventually(WITHIN, "the pool fills after the failures", || {
        ready(&sandboxes) == 2
    })
    .await;
    assert_eq!(engine.create_attempts(), 4, "two failed, two made the pool");
    assert_eq!(engine.live(), 2);
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn a_pool_without_preload_starts_its_sandboxes_bare() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(2, 2, &[])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 2).await;
    assert_eq!(engine.preloads(), vec![String::new(), String::new()]);
    let status = &sandboxes.status().pools[0];
    assert_eq!(
        status.preloaded, 2,
        "nothing to preload: every sandbox is ready as it is"
    );
    sandboxes.shutdown().await;
}

#[tokio::test]
async fn under_pressure_refills_skip_the_preload_and_are_upgraded_after() {
    let engine = FakeBackend::new();
    let sandboxes = start(&engine, config(2, 2, &["numpy"])).await;
    eventually(WITHIN, "the pool is full", || ready(&sandboxes) == 2).await;
    assert_eq!(sandboxes.status().pools[0].preloaded, 2);
    assert_eq!(engine.preloads(), vec!["numpy", "numpy"]);

    // The second take drains the pool while the first sandbox is still in use: demand
    // beyond the pool's size, so its refills skip the preload.
    let first = sandboxes
        .open_session(&Isolation::Standard)
        .await
        .expect("a session");
    let second = sandboxes
        .open_session(&Isolation::Standard)
        .await
        .expect("a session");
    eventually(WITHIN, "refilled under pressure", || ready(&sandboxes) == 2).await;
    let status = sandboxes.status().pools[0].clone();
    assert!(status.under_pressure);
    assert_eq!(status.preloaded, 0, "refills under pressure are bare");
    assert_eq!(engine.preloads()[2..], ["", ""]);

    // Once the pressure is over, bare sandboxes are replaced by preloaded ones.
    eventually(
        Duration::from_secs(15),
        "upgraded after the pressure",
        || sandboxes.status().pools[0].preloaded == 2,
    )
    .await;
    assert!(engine.preloads()[4..].iter().all(|p| p == "numpy"));
    for mut session in [first, second] {
        session.close().await;
    }
    sandboxes.shutdown().await;
    assert_eq!(engine.live(), 0);
}
