//! Registration and deletion: the changes, each in one transaction under the advisory lock
//! that serialises them (see the module docs of `store`).

use sqlx::types::Json;
use sqlx::Row;

use super::compatibility::{effective_level, judge};
use super::versions::{find_version, live_versions, parse_with_references, subject_exists};
use super::{Store, VersionSpec, REGISTER_LOCK};
use crate::error::ApiError;
use crate::schema::SchemaReference;

impl Store {
    /// Registers a schema under a subject, or returns the id it already has there.
    pub async fn register(
        &self,
        subject: &str,
        text: &str,
        references: Vec<SchemaReference>,
    ) -> Result<i32, ApiError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REGISTER_LOCK)
            .execute(&mut *tx)
            .await?;
        let parsed = parse_with_references(&mut tx, text, references).await?;
        let fingerprint = parsed.fingerprint();

        let existing: Option<i32> = sqlx::query_scalar(
            "SELECT sv.schema_id FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
             WHERE sv.subject = $1 AND NOT sv.deleted AND s.fingerprint = $2
             ORDER BY sv.version DESC LIMIT 1",
        )
        .bind(subject)
        .bind(&fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            return Ok(id);
        }

        let level = effective_level(&mut tx, subject).await?;
        let earlier = live_versions(&mut tx, subject).await?;
        let reasons = judge(&mut tx, level, &parsed.schema, &earlier).await?;
        if !reasons.is_empty() {
            return Err(ApiError::Incompatible {
                subject: subject.to_owned(),
                reasons,
            });
        }

        let inserted: Option<i32> = sqlx::query_scalar(
            "INSERT INTO schemas (schema_type, canonical, refs, fingerprint)
             VALUES ('AVRO', $1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
        )
        .bind(&parsed.canonical)
        .bind(Json(&parsed.references))
        .bind(&fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match inserted {
            Some(id) => id,
            None => {
                sqlx::query_scalar("SELECT id FROM schemas WHERE fingerprint = $1")
                    .bind(&fingerprint)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        sqlx::query(
            "INSERT INTO subject_versions (subject, version, schema_id)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2 FROM subject_versions WHERE subject = $1",
        )
        .bind(subject)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Soft-deletes every version of a subject, or permanently deletes an already soft-deleted
    /// subject. Returns the versions deleted.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REGISTER_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT version, deleted FROM subject_versions WHERE subject = $1 ORDER BY version",
        )
        .bind(subject)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let live: Vec<i32> = rows
            .iter()
            .filter(|r| !r.get::<bool, _>(1))
            .map(|r| r.get(0))
            .collect();
        let deleted = if permanent {
            if !live.is_empty() {
                return Err(ApiError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            sqlx::query("DELETE FROM subject_versions WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM compatibility_config WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            rows.iter().map(|r| r.get(0)).collect()
        } else {
            if live.is_empty() {
                return Err(ApiError::SubjectSoftDeleted(subject.to_owned()));
            }
            sqlx::query("UPDATE subject_versions SET deleted = true WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            live
        };
        tx.commit().await?;
        Ok(deleted)
    }

    /// Soft- or permanently deletes one version. Returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, ApiError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REGISTER_LOCK)
            .execute(&mut *tx)
            .await?;
        if !subject_exists(&mut tx, subject, true).await? {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        // `latest` means the latest live version for a soft delete, and the latest of all for
        // a permanent one (which must already be soft-deleted). A numbered version is found
        // either way, so deleting it twice says so rather than "not found".
        let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
        let found = find_version(&mut tx, subject, spec, include_deleted).await?;
        let deleted: bool = sqlx::query_scalar(
            "SELECT deleted FROM subject_versions WHERE subject = $1 AND version = $2",
        )
        .bind(subject)
        .bind(found.version)
        .fetch_one(&mut *tx)
        .await?;
        match (permanent, deleted) {
            (false, true) => {
                return Err(ApiError::VersionSoftDeleted {
                    subject: subject.to_owned(),
                    version: found.version,
                })
            }
            (true, false) => {
                return Err(ApiError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version: found.version,
                })
            }
            (false, false) => {
                sqlx::query(
                    "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = $2",
                )
                .bind(subject)
                .bind(found.version)
                .execute(&mut *tx)
                .await?;
            }
            (true, true) => {
                sqlx::query("DELETE FROM subject_versions WHERE subject = $1 AND version = $2")
                    .bind(subject)
                    .bind(found.version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(found.version)
    }
}
