use chrono::{Duration, Utc};

use crate::harness::{unique, TestDb};

on_both_backends!(
    revoke_is_idempotent_and_visible,
    expired_revocations_are_swept,
    revoking_again_never_shortens,
);

async fn revoke_is_idempotent_and_visible(db: &TestDb) {
    let jti = unique("jti");
    let store = &db.store;
    assert!(!store.is_token_revoked(&jti).await.unwrap());
    let expires = Utc::now() + Duration::hours(1);
    store.revoke_token(&jti, expires).await.unwrap();
    store.revoke_token(&jti, expires).await.unwrap();
    assert!(store.is_token_revoked(&jti).await.unwrap());
    assert!(!store.is_token_revoked(&unique("other")).await.unwrap());
}

async fn expired_revocations_are_swept(db: &TestDb) {
    let store = &db.store;
    let now = Utc::now();
    let expired = unique("expired");
    let live = unique("live");
    store
        .revoke_token(&expired, now - Duration::minutes(1))
        .await
        .unwrap();
    store
        .revoke_token(&live, now + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_revocations(now).await.unwrap(), 1);
    assert!(!store.is_token_revoked(&expired).await.unwrap());
    assert!(store.is_token_revoked(&live).await.unwrap());
    assert_eq!(store.delete_expired_revocations(now).await.unwrap(), 0);
}

async fn revoking_again_never_shortens(db: &TestDb) {
    let store = &db.store;
    let now = Utc::now();
    let jti = unique("jti");
    store
        .revoke_token(&jti, now + Duration::hours(2))
        .await
        .unwrap();
    store
        .revoke_token(&jti, now - Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_revocations(now).await.unwrap(), 0);
    assert!(store.is_token_revoked(&jti).await.unwrap());
    // A later expiry does extend it.
    store
        .revoke_token(&jti, now + Duration::hours(5))
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_expired_revocations(now + Duration::hours(3))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_expired_revocations(now + Duration::hours(6))
            .await
            .unwrap(),
        1
    );
}
