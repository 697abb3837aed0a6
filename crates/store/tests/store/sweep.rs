use std::time::{Duration, Instant};

use chrono::Utc;
use runbox_store::{spawn_retention_sweep, NewTask, Retention, TaskStatus};
use tokio_util::sync::CancellationToken;

use crate::harness::{unique, TestDb};

on_both_backends!(sweep_deletes_old_data_and_stops_on_cancel);

async fn sweep_deletes_old_data_and_stops_on_cancel(db: &TestDb) {
    let store = &db.store;
    let old = unique("old");
    let fresh = unique("fresh");
    let expired = unique("expired");
    let recently_expired = unique("recently-expired");
    let now = Utc::now();
    store
        .put_image_at(&old, "image/png", b"old", now - chrono::Duration::hours(2))
        .await
        .unwrap();
    store
        .put_image(&fresh, "image/png", b"fresh")
        .await
        .unwrap();
    store
        .revoke_token(&expired, now - chrono::Duration::days(1))
        .await
        .unwrap();
    // Within the grace period a validator with leeway may still accept the token.
    store
        .revoke_token(&recently_expired, now - chrono::Duration::seconds(30))
        .await
        .unwrap();

    let old_task = unique("old-task");
    let fresh_task = unique("fresh-task");
    for id in [&old_task, &fresh_task] {
        let task = NewTask {
            id: id.clone(),
            function_name: "f".into(),
            function_version: 1,
            args: serde_json::json!({}),
            subject: "s".into(),
            isolation: String::new(),
        };
        store.insert_task(&task).await.unwrap();
        store
            .finish_task(id, TaskStatus::Done, None, None)
            .await
            .unwrap();
    }
    db.set_task_finished_at(&old_task, now - chrono::Duration::days(2))
        .await;

    let cancel = CancellationToken::new();
    // A zero period must not panic (tokio's interval would); the first sweep is immediate.
    let handle = spawn_retention_sweep(
        store.clone(),
        Retention {
            images: Duration::from_secs(3600),
            tasks: Duration::from_secs(86400),
        },
        Duration::ZERO,
        cancel.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get_image(&old).await.unwrap().is_some()
        || store.is_token_revoked(&expired).await.unwrap()
        || store.task(&old_task).await.unwrap().is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the sweep did not run within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.get_image(&fresh).await.unwrap().is_some());
    assert!(store.task(&fresh_task).await.unwrap().is_some());
    assert!(store.is_token_revoked(&recently_expired).await.unwrap());

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("the sweep task did not stop after cancel")
        .unwrap();
}
