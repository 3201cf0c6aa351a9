//! Compatibility: the global and per-subject levels, and the judgement of a candidate schema
//! against a subject's versions (the rules themselves are `troupe_events::compat`).

use apache_avro::Schema;
use sqlx::PgConnection;
use troupe_events::compat::{self, Existing};
use troupe_events::topology::Compatibility;

use super::versions::{find_version, live_versions, parse_with_references};
use super::{Store, SubjectVersion, VersionSpec, DEFAULT_COMPATIBILITY};
use crate::error::ApiError;
use crate::schema::SchemaReference;

impl Store {
    /// The global compatibility level.
    pub async fn global_level(&self) -> Result<Compatibility, ApiError> {
        let mut conn = self.pool.acquire().await?;
        Ok(configured_level(&mut conn, "")
            .await?
            .unwrap_or(DEFAULT_COMPATIBILITY))
    }

    /// A subject's own level, if it has one.
    pub async fn subject_level(&self, subject: &str) -> Result<Option<Compatibility>, ApiError> {
        let mut conn = self.pool.acquire().await?;
        configured_level(&mut conn, subject).await
    }

    /// Sets the level of a subject, or the global level for `None`.
    pub async fn set_level(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO compatibility_config (subject, compatibility) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
        )
        .bind(subject.unwrap_or(""))
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a subject's own level; returns what it was.
    pub async fn delete_subject_level(&self, subject: &str) -> Result<Compatibility, ApiError> {
        let previous: Option<String> = sqlx::query_scalar(
            "DELETE FROM compatibility_config WHERE subject = $1 RETURNING compatibility",
        )
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        match previous.as_deref().and_then(Compatibility::parse) {
            Some(level) => Ok(level),
            None => Err(ApiError::SubjectConfigNotFound(subject.to_owned())),
        }
    }

    /// Judges a candidate schema: against one version when `spec` is given (both directions
    /// the level names, that version only), else against the subject as registration would.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        text: &str,
        references: Vec<SchemaReference>,
    ) -> Result<Vec<String>, ApiError> {
        let mut conn = self.pool.acquire().await?;
        let parsed = parse_with_references(&mut conn, text, references).await?;
        let level = effective_level(&mut conn, subject).await?;
        let earlier = match spec {
            Some(spec) => vec![find_version(&mut conn, subject, spec, false).await?],
            None => live_versions(&mut conn, subject).await?,
        };
        judge(&mut conn, level, &parsed.schema, &earlier).await
    }
}

async fn configured_level(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<Option<Compatibility>, ApiError> {
    let level: Option<String> =
        sqlx::query_scalar("SELECT compatibility FROM compatibility_config WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(level.as_deref().and_then(Compatibility::parse))
}

pub(super) async fn effective_level(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<Compatibility, ApiError> {
    if let Some(level) = configured_level(conn, subject).await? {
        return Ok(level);
    }
    Ok(configured_level(conn, "")
        .await?
        .unwrap_or(DEFAULT_COMPATIBILITY))
}

pub(super) async fn judge(
    conn: &mut PgConnection,
    level: Compatibility,
    candidate: &Schema,
    earlier: &[SubjectVersion],
) -> Result<Vec<String>, ApiError> {
    let mut parsed = Vec::with_capacity(earlier.len());
    for version in earlier {
        let schema =
            parse_with_references(conn, &version.schema, version.references.clone()).await?;
        parsed.push((version.version, schema.schema));
    }
    let existing: Vec<Existing<'_>> = parsed
        .iter()
        .map(|(version, schema)| Existing {
            version: *version,
            schema,
        })
        .collect();
    Ok(compat::check(level, candidate, &existing))
}
