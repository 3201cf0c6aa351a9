//! An outbox batch write against the local stack's PostgreSQL: one transaction holding the
//! inbox rows and outbox rows of a batch, as the processor loop writes them.
//! `make up && cargo bench -p troupe-runtime`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use troupe_runtime::config::with_database;
use troupe_runtime::outbox::{self, OutboxRow};
use uuid::Uuid;

fn outbox_batches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stack = troupe_testkit::stack();
    let url = with_database(&stack.postgres_url, &troupe_testkit::unique("troupe_bench"));
    let pool = runtime.block_on(async {
        let pool = troupe_runtime::db::connect(&url, 2).await.unwrap();
        outbox::ensure_tables(&pool).await.unwrap();
        pool
    });
    let payload = vec![7u8; 300];
    let mut group = c.benchmark_group("outbox");
    for size in [1usize, 50, 500] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("batch", size), &size, |b, &size| {
            b.to_async(&runtime).iter(|| {
                let pool = pool.clone();
                let payload = payload.clone();
                async move {
                    let ids: Vec<Uuid> = (0..size).map(|_| Uuid::now_v7()).collect();
                    let rows: Vec<OutboxRow> = ids
                        .iter()
                        .map(|id| OutboxRow {
                            topic: "bench".into(),
                            key: Some(id.to_string()),
                            payload: Some(payload.clone()),
                            headers: vec![("troupe.event_type".into(), "OrderPlaced".into())],
                        })
                        .collect();
                    let mut tx = pool.begin().await.unwrap();
                    outbox::claim_inbox(&mut tx, &ids).await.unwrap();
                    outbox::append(&mut tx, &rows).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        });
    }
    group.finish();
    runtime.block_on(async {
        sqlx::query("TRUNCATE troupe_outbox, troupe_inbox")
            .execute(&pool)
            .await
            .unwrap();
    });
}

criterion_group!(benches, outbox_batches);
criterion_main!(benches);
