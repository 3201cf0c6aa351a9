//! What one order costs: CPU per process from the phase's samples, and PostgreSQL's
//! transactions and WAL flushes from its statistics views.

use sqlx::PgPool;

use super::report::{CostReport, ProcessReport};

/// PostgreSQL's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PgCounters {
    /// Transactions committed in the bench's databases (`pg_stat_database.xact_commit`).
    transactions: i64,
    /// WAL flushes to disk, the whole server (`pg_stat_wal.wal_sync`).
    wal_flushes: i64,
}

impl PgCounters {
    /// Reads the counters; `databases` are the bench's own.
    pub(super) async fn read(pool: &PgPool, databases: &[String]) -> Result<Self, sqlx::Error> {
        // A backend publishes its counts when idle or at most a second later: the phases are
        // long enough (tens of seconds) for that to blur only their edges.
        let transactions: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(xact_commit), 0)::bigint FROM pg_stat_database WHERE datname = ANY($1)",
        )
        .bind(databases)
        .fetch_one(pool)
        .await?;
        let wal_flushes: i64 = sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
            .fetch_one(pool)
            .await?;
        Ok(Self {
            transactions,
            wal_flushes,
        })
    }
}

/// The cost per order of a phase in which `orders` ended.
pub(super) fn per_order(
    processes: &[ProcessReport],
    orders: u64,
    before: PgCounters,
    after: PgCounters,
) -> CostReport {
    let orders = orders.max(1) as f64;
    let us = |cpu_seconds: f64| (cpu_seconds * 1e6 / orders).round();
    let cpu_us_per_order: Vec<(String, f64)> = processes
        .iter()
        .map(|p| (p.name.clone(), us(p.cpu_seconds)))
        .collect();
    let processors = processes
        .iter()
        .filter(|p| is_processor(&p.name))
        .map(|p| p.cpu_seconds)
        .sum();
    let per = |n: i64| ((n as f64 / orders) * 100.0).round() / 100.0;
    CostReport {
        cpu_us_per_order,
        processors_cpu_us_per_order: us(processors),
        pg_transactions_per_order: per(after.transactions - before.transactions),
        wal_flushes_per_order: per(after.wal_flushes - before.wal_flushes),
    }
}

/// Whether a process of the report is one of the saga's processors.
fn is_processor(name: &str) -> bool {
    name.starts_with("troupe-") && name != "troupe-registry"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(name: &str, cpu_seconds: f64) -> ProcessReport {
        ProcessReport {
            name: name.into(),
            cpu_seconds,
            cores: 0.0,
            peak_rss_mib: 0.0,
        }
    }

    #[test]
    fn costs_are_per_order_ended() {
        let processes = [
            process("troupe-order", 0.5),
            process("troupe-payment", 0.25),
            process("troupe-registry", 1.0),
            process("broker (Apache Kafka)", 2.0),
        ];
        let cost = per_order(
            &processes,
            1000,
            PgCounters {
                transactions: 100,
                wal_flushes: 10,
            },
            PgCounters {
                transactions: 14_100,
                wal_flushes: 7_010,
            },
        );
        assert_eq!(cost.cpu_us_per_order[0], ("troupe-order".to_owned(), 500.0));
        assert_eq!(cost.cpu_us_per_order[3].1, 2000.0);
        assert_eq!(cost.processors_cpu_us_per_order, 750.0);
        assert_eq!(cost.pg_transactions_per_order, 14.0);
        assert_eq!(cost.wal_flushes_per_order, 7.0);
    }
}
