use chrono::{Duration, SubsecRound, Utc};
use runbox_store::StoreError;

use crate::harness::{b64, unique, TestDb};

on_both_backends!(
    round_trip_keeps_binary_data_as_base64,
    unknown_image_is_none,
    duplicate_name_is_rejected_and_keeps_the_first,
    retention_deletes_only_rows_before_the_cutoff,
    bytes_total_follows_inserts_and_deletes,
    concurrent_puts_all_land,
    reconnecting_keeps_data_and_migrations,
);

async fn round_trip_keeps_binary_data_as_base64(db: &TestDb) {
    // Every byte value, NULs and invalid UTF-8 included.
    let data: Vec<u8> = (0..=255u8).chain([0, 0, 0xff, 0xfe]).collect();
    let name = unique("plot");
    let before = Utc::now().trunc_subsecs(6);
    db.store.put_image(&name, "image/png", &data).await.unwrap();
    let after = Utc::now();

    let image = db.store.get_image(&name).await.unwrap().unwrap();
    assert_eq!(image.name, name);
    assert_eq!(image.mime, "image/png");
    assert_eq!(image.data, data);
    assert_eq!(image.size, data.len() as u64);
    assert!(
        before <= image.created_at && image.created_at <= after,
        "created_at {} not within [{before}, {after}]",
        image.created_at
    );

    let raw = db.raw_data_base64(&name).await.unwrap();
    assert_eq!(raw, b64(&data), "the column must hold standard base64");

    // Empty images are legal too.
    let empty = unique("empty");
    db.store.put_image(&empty, "image/png", &[]).await.unwrap();
    let image = db.store.get_image(&empty).await.unwrap().unwrap();
    assert!(image.data.is_empty());
    assert_eq!(image.size, 0);
}

async fn unknown_image_is_none(db: &TestDb) {
    assert!(db.store.get_image("no-such-image").await.unwrap().is_none());
}

async fn duplicate_name_is_rejected_and_keeps_the_first(db: &TestDb) {
    let name = unique("dup");
    db.store
        .put_image(&name, "image/png", b"first")
        .await
        .unwrap();
    let err = db
        .store
        .put_image(&name, "image/svg+xml", b"second")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Duplicate(n) if *n == name),
        "{err:?}"
    );
    let image = db.store.get_image(&name).await.unwrap().unwrap();
    assert_eq!(image.data, b"first");
    assert_eq!(image.mime, "image/png");
    // The failed insert must not have broken the connection it ran on.
    db.store.ping().await.unwrap();
}

async fn retention_deletes_only_rows_before_the_cutoff(db: &TestDb) {
    let now = Utc::now().trunc_subsecs(6);
    // Fractional seconds on purpose: on SQLite the comparison is textual.
    let cutoff = now - Duration::hours(24) + Duration::microseconds(123_456);
    let old = unique("old");
    let aged = unique("aged");
    let at_cutoff = unique("at-cutoff");
    let just_before = unique("just-before");
    let fresh = unique("fresh");
    let store = &db.store;
    store
        .put_image_at(&old, "image/png", b"old", now - Duration::days(3))
        .await
        .unwrap();
    store
        .put_image_at(&at_cutoff, "image/png", b"edge", cutoff)
        .await
        .unwrap();
    store
        .put_image_at(
            &just_before,
            "image/png",
            b"edge",
            cutoff - Duration::microseconds(1),
        )
        .await
        .unwrap();
    store.put_image(&aged, "image/png", b"aged").await.unwrap();
    // Whole seconds this time: sqlx then writes no fraction at all on SQLite.
    db.set_created_at(&aged, (now - Duration::days(2)).trunc_subsecs(0))
        .await;
    store
        .put_image(&fresh, "image/png", b"fresh")
        .await
        .unwrap();

    assert_eq!(store.delete_images_older_than(cutoff).await.unwrap(), 3);
    for gone in [&old, &aged, &just_before] {
        assert!(
            store.get_image(gone).await.unwrap().is_none(),
            "{gone} kept"
        );
    }
    for kept in [&at_cutoff, &fresh] {
        assert!(
            store.get_image(kept).await.unwrap().is_some(),
            "{kept} deleted"
        );
    }
    assert_eq!(store.delete_images_older_than(cutoff).await.unwrap(), 0);
}

async fn bytes_total_follows_inserts_and_deletes(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.image_bytes_total().await.unwrap(), 0);
    store
        .put_image(&unique("a"), "image/png", &[1; 3])
        .await
        .unwrap();
    store
        .put_image_at(
            &unique("b"),
            "image/png",
            &[2; 5],
            Utc::now() - Duration::days(9),
        )
        .await
        .unwrap();
    assert_eq!(store.image_bytes_total().await.unwrap(), 8);
    store
        .delete_images_older_than(Utc::now() - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(store.image_bytes_total().await.unwrap(), 3);
}

async fn concurrent_puts_all_land(db: &TestDb) {
    // More writers than pooled connections: SQLite must queue them (busy timeout), not
    // fail with "database is locked".
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let data = vec![i as u8; 1000 + i];
                store
                    .put_image(&format!("concurrent-{i}"), "image/png", &data)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let expected: u64 = (0..32).map(|i| 1000 + i as u64).sum();
    assert_eq!(db.store.image_bytes_total().await.unwrap(), expected);
}

async fn reconnecting_keeps_data_and_migrations(db: &TestDb) {
    let name = unique("persist");
    db.store
        .put_image(&name, "image/png", b"kept")
        .await
        .unwrap();
    // A second connect runs the migrator again against an up-to-date schema.
    let again = runbox_store::Store::connect(&db.url).await.unwrap();
    assert_eq!(again.backend(), db.store.backend());
    let image = again.get_image(&name).await.unwrap().unwrap();
    assert_eq!(image.data, b"kept");
    again.close().await;
}
