//! The registry's state in PostgreSQL, and the rules that need a transaction.
//!
//! Registration takes one transaction-scoped advisory lock, so concurrent registrations are
//! serialised: the same schema registered by many clients at once gets one id, and one version
//! per subject. Reads take no lock.

use apache_avro::Schema;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use troupe_events::topology::Compatibility;

use crate::error::ApiError;
use crate::schema::{parse_avro, ParsedSchema, SchemaReference};
use troupe_events::compat::{self, Existing};

/// The key of the advisory lock that serialises registrations.
const REGISTER_LOCK: i64 = 0x7472_6f75_7065_0001;

/// The level used when neither the subject nor the global config sets one, as in Confluent.
pub const DEFAULT_COMPATIBILITY: Compatibility = Compatibility::Backward;

/// A version selector from a URL: a number or `latest` (also `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text == "latest" || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(ApiError::InvalidVersion(text.to_owned())),
        }
    }

    fn describe(self) -> String {
        match self {
            VersionSpec::Latest => "latest".to_owned(),
            VersionSpec::Number(n) => n.to_string(),
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// A stored schema, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    pub schema: String,
    pub references: Vec<SchemaReference>,
}

/// The registry's PostgreSQL store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `url`, creating the database if it does not exist, and migrates it.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = troupe_runtime::db::connect(url, 16).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

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

    /// Finds the version of `subject` holding this schema.
    pub async fn lookup(
        &self,
        subject: &str,
        text: &str,
        references: Vec<SchemaReference>,
        include_deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let mut conn = self.pool.acquire().await?;
        if !subject_exists(&mut conn, subject, include_deleted).await? {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let parsed = parse_with_references(&mut conn, text, references).await?;
        let row = sqlx::query(
            "SELECT sv.version, s.id, s.canonical, s.refs
             FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
             WHERE sv.subject = $1 AND s.fingerprint = $2 AND ($3 OR NOT sv.deleted)
             ORDER BY sv.version DESC LIMIT 1",
        )
        .bind(subject)
        .bind(parsed.fingerprint())
        .bind(include_deleted)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ApiError::SchemaNotFound)?;
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: row.get(0),
            id: row.get(1),
            schema: row.get(2),
            references: row.get::<Json<Vec<SchemaReference>>, _>(3).0,
        })
    }

    /// Every subject with a live version (or with any version, when `include_deleted`).
    pub async fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, ApiError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT subject FROM subject_versions WHERE $1 OR NOT deleted ORDER BY subject",
        )
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The version numbers of a subject.
    pub async fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let versions: Vec<i32> = sqlx::query_scalar(
            "SELECT version FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted)
             ORDER BY version",
        )
        .bind(subject)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?;
        if versions.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// One version of a subject.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        include_deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let mut conn = self.pool.acquire().await?;
        find_version(&mut conn, subject, spec, include_deleted).await
    }

    /// A schema by its global id. Soft-deleted versions still resolve: records written with
    /// them are still in topics.
    pub async fn schema_by_id(&self, id: i32) -> Result<StoredSchema, ApiError> {
        let row = sqlx::query(
            "SELECT s.canonical, s.refs FROM schemas s
             WHERE s.id = $1 AND EXISTS (SELECT 1 FROM subject_versions sv WHERE sv.schema_id = s.id)",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(ApiError::SchemaNotFound)?;
        Ok(StoredSchema {
            schema: row.get(0),
            references: row.get::<Json<Vec<SchemaReference>>, _>(1).0,
        })
    }

    /// The (subject, version) pairs that hold schema `id`.
    pub async fn versions_by_id(
        &self,
        id: i32,
        include_deleted: bool,
    ) -> Result<Vec<(String, i32)>, ApiError> {
        self.schema_by_id(id).await?;
        let rows = sqlx::query(
            "SELECT subject, version FROM subject_versions
             WHERE schema_id = $1 AND ($2 OR NOT deleted) ORDER BY subject, version",
        )
        .bind(id)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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

async fn subject_exists(
    conn: &mut PgConnection,
    subject: &str,
    include_deleted: bool,
) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted))",
    )
    .bind(subject)
    .bind(include_deleted)
    .fetch_one(&mut *conn)
    .await?)
}

async fn find_version(
    conn: &mut PgConnection,
    subject: &str,
    spec: VersionSpec,
    include_deleted: bool,
) -> Result<SubjectVersion, ApiError> {
    if !subject_exists(conn, subject, include_deleted).await? {
        return Err(ApiError::SubjectNotFound(subject.to_owned()));
    }
    let row = match spec {
        VersionSpec::Latest => {
            sqlx::query(
                "SELECT sv.version, s.id, s.canonical, s.refs
                 FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
                 WHERE sv.subject = $1 AND ($2 OR NOT sv.deleted)
                 ORDER BY sv.version DESC LIMIT 1",
            )
            .bind(subject)
            .bind(include_deleted)
            .fetch_optional(&mut *conn)
            .await?
        }
        VersionSpec::Number(n) => {
            sqlx::query(
                "SELECT sv.version, s.id, s.canonical, s.refs
                 FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
                 WHERE sv.subject = $1 AND sv.version = $2 AND ($3 OR NOT sv.deleted)",
            )
            .bind(subject)
            .bind(n)
            .bind(include_deleted)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let row = row.ok_or_else(|| ApiError::VersionNotFound {
        subject: subject.to_owned(),
        version: spec.describe(),
    })?;
    Ok(SubjectVersion {
        subject: subject.to_owned(),
        version: row.get(0),
        id: row.get(1),
        schema: row.get(2),
        references: row.get::<Json<Vec<SchemaReference>>, _>(3).0,
    })
}

async fn live_versions(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<Vec<SubjectVersion>, ApiError> {
    let rows = sqlx::query(
        "SELECT sv.version, s.id, s.canonical, s.refs
         FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
         WHERE sv.subject = $1 AND NOT sv.deleted ORDER BY sv.version",
    )
    .bind(subject)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| SubjectVersion {
            subject: subject.to_owned(),
            version: row.get(0),
            id: row.get(1),
            schema: row.get(2),
            references: row.get::<Json<Vec<SchemaReference>>, _>(3).0,
        })
        .collect())
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

async fn effective_level(
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

async fn judge(
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

/// Resolves `references` (and theirs, depth first) to schema texts, then parses `text`.
async fn parse_with_references(
    conn: &mut PgConnection,
    text: &str,
    references: Vec<SchemaReference>,
) -> Result<ParsedSchema, ApiError> {
    let mut resolved = Vec::new();
    let mut pending: Vec<(SchemaReference, bool)> = references
        .iter()
        .rev()
        .cloned()
        .map(|r| (r, false))
        .collect();
    let mut seen = std::collections::HashSet::new();
    // Iterative post-order walk: a referenced schema's own references come before it.
    while let Some((reference, expanded)) = pending.pop() {
        let key = (reference.subject.clone(), reference.version);
        let version = find_version(
            conn,
            &reference.subject,
            VersionSpec::Number(reference.version),
            true,
        )
        .await
        .map_err(|_| {
            ApiError::InvalidSchema(format!(
                "reference {} (subject {}, version {}) not found",
                reference.name, reference.subject, reference.version
            ))
        })?;
        if expanded {
            if seen.insert(key) {
                resolved.push(version.schema);
            }
            continue;
        }
        if seen.contains(&key) {
            continue;
        }
        pending.push((reference, true));
        for inner in version.references.into_iter().rev() {
            pending.push((inner, false));
        }
    }
    parse_avro(text, references, &resolved).map_err(|e| ApiError::InvalidSchema(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specs() {
        assert_eq!(VersionSpec::parse("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("3").unwrap(), VersionSpec::Number(3));
        for bad in ["0", "-2", "abc", "", "2147483648", "1.5"] {
            assert!(
                matches!(VersionSpec::parse(bad), Err(ApiError::InvalidVersion(_))),
                "{bad}"
            );
        }
    }
}
