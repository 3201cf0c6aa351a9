//! Zombie fencing against a real PostgreSQL: two instances' claims on the same partitions, a
//! batch checked while a claim is taken, and a frozen instance's open transaction.

use std::collections::BTreeSet;
use std::time::Duration;

use troupe_runtime::config::with_database;
use troupe_runtime::fencing::{HoldError, Ownership, Partition};
use troupe_runtime::outbox;
use troupe_testkit::{stack, unique, wait_until};

async fn database(lease: Duration) -> (String, sqlx::PgPool) {
    let url = with_database(&stack().postgres_url, &unique("troupe_fencing_test"));
    let pool = troupe_runtime::db::connect_processor(&url, 4, lease)
        .await
        .unwrap();
    outbox::ensure_tables(&pool).await.unwrap();
    (url, pool)
}

fn p(partition: i32) -> Partition {
    ("orders".to_owned(), partition)
}

fn set(partitions: &[i32]) -> BTreeSet<Partition> {
    partitions.iter().map(|&n| p(n)).collect()
}

/// An instance assigned `partitions`, its claims committed.
async fn owner(name: &str, pool: &sqlx::PgPool, partitions: &[i32]) -> Ownership {
    owner_in("g", name, pool, partitions).await
}

/// The same, in consumer group `group`.
async fn owner_in(group: &str, name: &str, pool: &sqlx::PgPool, partitions: &[i32]) -> Ownership {
    let ownership = Ownership::new(name, group);
    let consumer = ownership.consumer();
    ownership.assigned(consumer, partitions.iter().map(|&n| p(n)));
    let mut tx = pool.begin().await.unwrap();
    let claims = ownership.hold(&mut tx, &set(partitions)).await.unwrap();
    tx.commit().await.unwrap();
    ownership.claimed(claims);
    ownership
}

/// Whether the `tx` holds its partitions, committing when it does.
async fn holds(ownership: &Ownership, pool: &sqlx::PgPool, partitions: &[i32]) -> bool {
    let mut tx = pool.begin().await.unwrap();
    match ownership.hold(&mut tx, &set(partitions)).await {
        Ok(claims) => {
            tx.commit().await.unwrap();
            ownership.claimed(claims);
            true
        }
        Err(HoldError::Fenced(_)) => false,
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn a_newer_claim_fences_the_older_owner_on_those_partitions_only() {
    let (_, pool) = database(Duration::from_secs(30)).await;
    let a = owner("a", &pool, &[0, 1]).await;
    assert!(holds(&a, &pool, &[0, 1]).await);
    let _b = owner("b", &pool, &[0]).await;
    assert!(!holds(&a, &pool, &[0, 1]).await, "partition 0 is b's now");
    assert!(!a.applies_to("orders", 0));
    assert!(a.applies_to("orders", 1));
    assert!(holds(&a, &pool, &[1]).await, "partition 1 is still a's");
    // Another group reading the same partitions into the same database fences nobody.
    let _other = owner_in("rebuild", "c", &pool, &[1]).await;
    assert!(holds(&a, &pool, &[1]).await, "a group of its own");
    let epochs: Vec<(i32, i64, String)> = sqlx::query_as(
        "SELECT partition, epoch, owner FROM troupe_partition_owner
         WHERE consumer_group = 'g' ORDER BY partition",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(epochs, [(0, 2, "b".into()), (1, 1, "a".into())]);
}

#[tokio::test]
async fn a_claim_waits_for_a_batch_that_passed_its_check_and_fences_the_next() {
    let (_, pool) = database(Duration::from_secs(30)).await;
    let a = owner("a", &pool, &[0]).await;
    // a's batch: checked, not committed yet.
    let mut batch = pool.begin().await.unwrap();
    a.hold(&mut batch, &set(&[0])).await.unwrap();
    let claiming = {
        let pool = pool.clone();
        tokio::spawn(async move { owner("b", &pool, &[0]).await })
    };
    wait_until(
        "b's claim to wait for a's batch",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'INSERT INTO troupe_partition_owner%'",
                )
                .fetch_one(&pool)
                .await
                .ok()?;
                (waiting == 1).then_some(())
            }
        },
    )
    .await;
    batch.commit().await.expect("a's checked batch commits");
    tokio::time::timeout(Duration::from_secs(30), claiming)
        .await
        .expect("b's claim goes through once a's batch is committed")
        .unwrap();
    assert!(!holds(&a, &pool, &[0]).await, "a's next batch is fenced");
}

#[tokio::test]
async fn a_frozen_instances_open_transaction_is_ended_and_cannot_commit() {
    // A lease of 1 s: PostgreSQL ends a transaction idle for longer.
    let (_, pool) = database(Duration::from_secs(1)).await;
    let a = owner("a", &pool, &[0]).await;
    let mut frozen = pool.begin().await.unwrap();
    a.hold(&mut frozen, &set(&[0])).await.unwrap();
    // a freezes here, its transaction open. b's claim waits for it, and goes through once
    // PostgreSQL has ended a's transaction (not when a wakes: it never does in this test).
    let b = tokio::time::timeout(Duration::from_secs(30), owner("b", &pool, &[0]))
        .await
        .expect("the frozen transaction is ended within the deadline");
    assert!(b.applies_to("orders", 0));
    assert!(
        frozen.commit().await.is_err(),
        "a's frozen transaction was ended: it cannot commit on waking"
    );
    assert!(
        !holds(&a, &pool, &[0]).await,
        "and a's next batch is fenced"
    );
}
