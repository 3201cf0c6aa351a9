//! Reads: subjects, their versions and schemas by id, and the lookups the other parts share
//! (a version by selector, a subject's live versions, a schema parsed with its references).

use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use super::{Store, StoredSchema, SubjectVersion, VersionSpec};
use crate::error::ApiError;
use crate::schema::{parse_avro, ParsedSchema, SchemaReference};

impl Store {
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
}

pub(super) async fn subject_exists(
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

pub(super) async fn find_version(
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

pub(super) async fn live_versions(
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

/// Resolves `references` (and theirs, depth first) to schema texts, then parses `text`.
pub(super) async fn parse_with_references(
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
