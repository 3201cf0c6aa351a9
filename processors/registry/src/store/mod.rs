//! The registry's state in PostgreSQL, and the rules that need a transaction.
//!
//! Registration takes one transaction-scoped advisory lock, so concurrent registrations are
//! serialised: the same schema registered by many clients at once gets one id, and one version
//! per subject. Reads take no lock.
//!
//! The parts: [`Store`] and the shapes it returns (here); reads of subjects, versions and
//! schemas (`versions.rs`); registration and deletion, under the lock (`register.rs`);
//! compatibility levels and judgement (`compatibility.rs`).

use sqlx::PgPool;
use troupe_events::topology::Compatibility;

use crate::error::ApiError;
use crate::schema::SchemaReference;

mod compatibility;
mod register;
mod versions;

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
