//! Which copy of the read models is live: the blue/green switch.
//!
//! The control table lives in the PostgreSQL database `troupe_readmodels` and is scoped by topic
//! prefix, so deployments sharing a server (or tests) never see each other's copies. A copy is
//! `building` (a projector fills it, the API does not read it), `live` (the API reads it; at
//! most one per prefix) or `retired` (kept, read by nobody, until dropped).

use sqlx::{PgPool, Row};

use crate::Copy;

/// The control database.
pub const DATABASE: &str = "troupe_readmodels";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState {
    pub name: String,
    pub state: String,
    pub created_at: String,
}

/// Connects to the control database, creating it and its table when missing.
pub async fn connect(postgres_url: &str) -> Result<PgPool, sqlx::Error> {
    let url = troupe_runtime::config::with_database(postgres_url, DATABASE);
    let pool = troupe_runtime::db::connect(&url, 2).await?;
    // Several processes may start at once; CREATE … IF NOT EXISTS is not safe against itself.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7230917)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS readmodel_copies (
             topic_prefix text NOT NULL,
             name         text NOT NULL,
             state        text NOT NULL CHECK (state IN ('building', 'live', 'retired')),
             created_at   timestamptz NOT NULL DEFAULT now(),
             switched_at  timestamptz,
             PRIMARY KEY (topic_prefix, name))",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "CREATE UNIQUE INDEX IF NOT EXISTS readmodel_copies_one_live
         ON readmodel_copies (topic_prefix) WHERE state = 'live'",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pool)
}

/// Registers `copy` if it is not known: live when the prefix has no live copy yet (the first
/// copy), building otherwise. Returns its state.
pub async fn register(pool: &PgPool, prefix: &str, copy: &Copy) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO readmodel_copies (topic_prefix, name, state)
         SELECT $1, $2, CASE WHEN EXISTS (SELECT 1 FROM readmodel_copies
                                          WHERE topic_prefix = $1 AND state = 'live')
                             THEN 'building' ELSE 'live' END
         ON CONFLICT DO NOTHING",
    )
    .bind(prefix)
    .bind(copy.name())
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT state FROM readmodel_copies WHERE topic_prefix = $1 AND name = $2")
        .bind(prefix)
        .bind(copy.name())
        .fetch_one(pool)
        .await
}

/// The live copy of `prefix`, if any.
pub async fn live(pool: &PgPool, prefix: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT name FROM readmodel_copies WHERE topic_prefix = $1 AND state = 'live'",
    )
    .bind(prefix)
    .fetch_optional(pool)
    .await
}

/// Every copy of `prefix`, oldest first.
pub async fn list(pool: &PgPool, prefix: &str) -> Result<Vec<CopyState>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, state, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') FROM readmodel_copies
         WHERE topic_prefix = $1 ORDER BY created_at, name",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| CopyState {
            name: r.get(0),
            state: r.get(1),
            created_at: r.get(2),
        })
        .collect())
}

/// Makes `copy` live and the previously live copy retired, in one transaction. Returns the
/// retired copy.
pub async fn switch(
    pool: &PgPool,
    prefix: &str,
    copy: &Copy,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let old: Option<String> = sqlx::query_scalar(
        "UPDATE readmodel_copies SET state = 'retired', switched_at = now()
         WHERE topic_prefix = $1 AND state = 'live' AND name <> $2 RETURNING name",
    )
    .bind(prefix)
    .bind(copy.name())
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE readmodel_copies SET state = 'live', switched_at = now()
         WHERE topic_prefix = $1 AND name = $2",
    )
    .bind(prefix)
    .bind(copy.name())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(old)
}

/// Forgets `copy` (after its database and keyspace are dropped).
pub async fn forget(pool: &PgPool, prefix: &str, copy: &Copy) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM readmodel_copies WHERE topic_prefix = $1 AND name = $2")
        .bind(prefix)
        .bind(copy.name())
        .execute(pool)
        .await?;
    Ok(())
}

/// The state of `copy`, if registered.
pub async fn state(
    pool: &PgPool,
    prefix: &str,
    copy: &Copy,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM readmodel_copies WHERE topic_prefix = $1 AND name = $2")
        .bind(prefix)
        .bind(copy.name())
        .fetch_optional(pool)
        .await
}
