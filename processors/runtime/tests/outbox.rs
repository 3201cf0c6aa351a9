//! The inbox and outbox against a real PostgreSQL, on a database of their own.

use std::time::Duration;

use sqlx::Row;
use troupe_runtime::config::with_database;
use troupe_runtime::outbox::{self, OutboxRow};
use troupe_testkit::{stack, unique};
use uuid::Uuid;

async fn database() -> sqlx::PgPool {
    let url = with_database(&stack().postgres_url, &unique("troupe_outbox_test"));
    let pool = troupe_runtime::db::connect(&url, 4).await.unwrap();
    outbox::ensure_tables(&pool).await.unwrap();
    pool
}

#[tokio::test]
async fn the_inbox_admits_each_event_id_once() {
    let pool = database().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut conn = pool.acquire().await.unwrap();
    let fresh = outbox::claim_inbox(&mut conn, &[a, b, a]).await.unwrap();
    assert_eq!(fresh.len(), 2, "a repeat within one batch counts once");
    let again = outbox::claim_inbox(&mut conn, &[a, Uuid::now_v7()])
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(!again.contains(&a));
}

#[tokio::test]
async fn outbox_rows_keep_their_order_and_fields() {
    let pool = database().await;
    let rows: Vec<OutboxRow> = (0..50)
        .map(|i| OutboxRow {
            topic: format!("t{}", i % 3),
            key: (i % 2 == 0).then(|| format!("k{i}")),
            payload: Some(vec![i as u8; 3]),
            headers: vec![("n".into(), i.to_string())],
        })
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    outbox::append(&mut conn, &rows).await.unwrap();
    let stored = sqlx::query("SELECT topic, key, payload, headers FROM troupe_outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 50);
    for (row, expected) in stored.iter().zip(&rows) {
        assert_eq!(row.get::<String, _>(0), expected.topic);
        assert_eq!(row.get::<Option<String>, _>(1), expected.key);
        assert_eq!(row.get::<Option<Vec<u8>>, _>(2), expected.payload);
        let sqlx::types::Json(headers): sqlx::types::Json<Vec<(String, String)>> = row.get(3);
        assert_eq!(headers, expected.headers);
    }
    assert_eq!(outbox::pending(&pool).await.unwrap(), 50);
}

#[tokio::test]
async fn pruning_forgets_only_old_inbox_entries() {
    let pool = database().await;
    let (old, recent) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query("INSERT INTO troupe_inbox (event_id, received_at) VALUES ($1, now() - interval '9 days'), ($2, now())")
        .bind(old)
        .bind(recent)
        .execute(&pool)
        .await
        .unwrap();
    let pruned = outbox::prune_inbox(&pool, Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let mut conn = pool.acquire().await.unwrap();
    // The recent id is still remembered; the old one would be admitted again.
    let fresh = outbox::claim_inbox(&mut conn, &[old, recent])
        .await
        .unwrap();
    assert_eq!(fresh.into_iter().collect::<Vec<_>>(), vec![old]);
}

#[tokio::test]
async fn an_order_locked_by_one_batch_waits_for_its_commit() {
    let pool = database().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut first = pool.begin().await.unwrap();
    troupe_runtime::service::lock_orders(&mut first, &[b, a, b])
        .await
        .unwrap();

    let mut second = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '300ms'")
        .execute(&mut *second)
        .await
        .unwrap();
    let error = troupe_runtime::service::lock_orders(&mut second, &[a])
        .await
        .expect_err("an order locked by an open transaction is not granted");
    assert!(error.to_string().contains("lock timeout"), "{error}");
    second.rollback().await.unwrap();

    let other = Uuid::now_v7();
    let mut third = pool.begin().await.unwrap();
    troupe_runtime::service::lock_orders(&mut third, &[other])
        .await
        .expect("another order is not held up");
    third.commit().await.unwrap();

    first.commit().await.unwrap();
    let mut fourth = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '300ms'")
        .execute(&mut *fourth)
        .await
        .unwrap();
    troupe_runtime::service::lock_orders(&mut fourth, &[a, b])
        .await
        .expect("granted once the first batch committed");
    fourth.commit().await.unwrap();
}
