//! Errors in the Confluent REST API's shape: an HTTP status and a body
//! `{"error_code": 40401, "message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::json_response;

/// Everything the API can answer with other than success.
///
/// Each variant maps to one documented Confluent error code ([`ApiError::code`]); clients such
/// as schema_registry_converter and the Java serializers branch on those codes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound { subject: String, version: String },
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted { subject: String, version: i32 },
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: i32 },
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .reasons.join(", "))]
    Incompatible {
        subject: String,
        reasons: Vec<String>,
    },
    /// The request body is not JSON or not of the expected shape.
    #[error("{0}")]
    BadRequest(String),
    #[error("HTTP 415 Unsupported Media Type")]
    UnsupportedMediaType,
    #[error("HTTP 404 Not Found")]
    NotFound,
    /// The backing PostgreSQL failed; the request can be retried.
    #[error("Error in the backend data store")]
    Store(#[source] sqlx::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Store(error)
    }
}

impl ApiError {
    /// The Confluent error code.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::SubjectNotFound(_) => 40401,
            ApiError::VersionNotFound { .. } => 40402,
            ApiError::SchemaNotFound => 40403,
            ApiError::SubjectSoftDeleted(_) => 40404,
            ApiError::SubjectNotSoftDeleted(_) => 40405,
            ApiError::VersionSoftDeleted { .. } => 40406,
            ApiError::VersionNotSoftDeleted { .. } => 40407,
            ApiError::SubjectConfigNotFound(_) => 40408,
            ApiError::InvalidSchema(_) => 42201,
            ApiError::InvalidVersion(_) => 42202,
            ApiError::InvalidCompatibility => 42203,
            ApiError::Incompatible { .. } => 409,
            ApiError::BadRequest(_) => 400,
            ApiError::UnsupportedMediaType => 415,
            ApiError::NotFound => 404,
            ApiError::Store(_) => 50001,
        }
    }

    /// The HTTP status: the first three digits of the code.
    pub fn status(&self) -> StatusCode {
        let code = self.code();
        let status = if code >= 10_000 { code / 100 } else { code };
        StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(error) = &self {
            tracing::error!(%error, "schema store failed");
        }
        let body = serde_json::json!({
            "error_code": self.code(),
            "message": self.to_string(),
        });
        json_response(self.status(), &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_code_prefix() {
        assert_eq!(
            ApiError::SubjectNotFound("s".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::InvalidVersion("x".into()).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            ApiError::Incompatible {
                subject: "s".into(),
                reasons: vec![]
            }
            .status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::Store(sqlx::Error::PoolTimedOut).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            ApiError::UnsupportedMediaType.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
