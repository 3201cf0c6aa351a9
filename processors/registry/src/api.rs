//! The Confluent Schema Registry REST API v1, as far as troupe-registry implements it.
//!
//! Every response carries `application/vnd.schemaregistry.v1+json`. Request bodies are parsed
//! here rather than by an extractor, so malformed JSON gets the registry's error shape.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use troupe_events::topology::Compatibility;

use crate::error::ApiError;
use crate::schema::{check_type, SchemaReference};
use crate::store::{Store, SubjectVersion, VersionSpec};

/// The registry's own media type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request media types the registry accepts, as Confluent's does.
const ACCEPTED_REQUEST_TYPES: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

/// The router, over a store.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/mode", get(mode))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_raw_version),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_subject),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn(check_content_type))
        .with_state(store)
}

/// A JSON response with the registry's media type.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: &impl Serialize) -> ApiResult {
    Ok(json_response(StatusCode::OK, body))
}

async fn check_content_type(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::POST | Method::PUT) {
        if let Some(value) = request.headers().get(header::CONTENT_TYPE) {
            let media = value
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !ACCEPTED_REQUEST_TYPES.contains(&media.as_str()) {
                return ApiError::UnsupportedMediaType.into_response();
            }
        }
    }
    next.run(request).await
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::BadRequest(format!("request body has the wrong shape: {e}"))
        }
        _ => ApiError::BadRequest(format!("request body is not valid JSON: {e}")),
    })
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true"))
}

fn parse_id(text: &str) -> Result<i32, ApiError> {
    text.parse::<i32>().map_err(|_| ApiError::SchemaNotFound)
}

/// The body of register, lookup and compatibility requests. Unknown fields (`metadata`,
/// `ruleSet`, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

impl SchemaRequest {
    fn parse(body: &Bytes) -> Result<Self, ApiError> {
        let request: SchemaRequest = parse_body(body)?;
        check_type(request.schema_type.as_deref())
            .map_err(|e| ApiError::InvalidSchema(e.to_string()))?;
        Ok(request)
    }
}

fn version_body(v: &SubjectVersion) -> Value {
    let mut body = json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": v.schema,
    });
    if !v.references.is_empty() {
        body["references"] = json!(v.references);
    }
    body
}

async fn root() -> ApiResult {
    ok(&json!({}))
}

async fn health(State(store): State<Store>) -> ApiResult {
    store.ping().await?;
    ok(&json!({"status": "ok"}))
}

async fn mode() -> ApiResult {
    ok(&json!({"mode": "READWRITE"}))
}

async fn schema_types() -> ApiResult {
    ok(&["AVRO"])
}

async fn schema_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    let stored = store.schema_by_id(parse_id(&id)?).await?;
    let mut body = json!({ "schema": stored.schema });
    if !stored.references.is_empty() {
        body["references"] = json!(stored.references);
    }
    ok(&body)
}

async fn raw_schema_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    let stored = store.schema_by_id(parse_id(&id)?).await?;
    Ok(raw_schema(&stored.schema))
}

fn raw_schema(schema: &str) -> Response {
    let value: Value = serde_json::from_str(schema).unwrap_or(Value::String(schema.to_owned()));
    json_response(StatusCode::OK, &value)
}

async fn subjects_by_id(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let pairs = store
        .versions_by_id(parse_id(&id)?, flag(&params, "deleted"))
        .await?;
    let mut subjects: Vec<String> = pairs.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    ok(&subjects)
}

async fn versions_by_id(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let pairs = store
        .versions_by_id(parse_id(&id)?, flag(&params, "deleted"))
        .await?;
    let body: Vec<Value> = pairs
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    ok(&body)
}

async fn list_subjects(State(store): State<Store>, Query(params): Params) -> ApiResult {
    ok(&store.subjects(flag(&params, "deleted")).await?)
}

async fn list_versions(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    ok(&store.versions(&subject, flag(&params, "deleted")).await?)
}

async fn register(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request = SchemaRequest::parse(&body)?;
    let id = store
        .register(&subject, &request.schema, request.references)
        .await?;
    tracing::info!(subject, id, "schema registered");
    ok(&json!({ "id": id }))
}

async fn lookup(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let request = SchemaRequest::parse(&body)?;
    let found = store
        .lookup(
            &subject,
            &request.schema,
            request.references,
            flag(&params, "deleted"),
        )
        .await?;
    ok(&version_body(&found))
}

async fn delete_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    ok(&store
        .delete_subject(&subject, flag(&params, "permanent"))
        .await?)
}

async fn get_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let found = store
        .version(&subject, spec, flag(&params, "deleted"))
        .await?;
    ok(&version_body(&found))
}

async fn get_raw_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let found = store
        .version(&subject, spec, flag(&params, "deleted"))
        .await?;
    Ok(raw_schema(&found.schema))
}

async fn delete_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    ok(&store
        .delete_version(&subject, spec, flag(&params, "permanent"))
        .await?)
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn parse_level(body: &Bytes) -> Result<Compatibility, ApiError> {
    let request: ConfigRequest = parse_body(body)?;
    Compatibility::parse(&request.compatibility.to_ascii_uppercase())
        .ok_or(ApiError::InvalidCompatibility)
}

async fn get_global_config(State(store): State<Store>) -> ApiResult {
    ok(&json!({"compatibilityLevel": store.global_level().await?}))
}

async fn put_global_config(State(store): State<Store>, body: Bytes) -> ApiResult {
    let level = parse_level(&body)?;
    store.set_level(None, level).await?;
    ok(&json!({ "compatibility": level }))
}

async fn get_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let level = match store.subject_level(&subject).await? {
        Some(level) => level,
        None if flag(&params, "defaultToGlobal") => store.global_level().await?,
        None => return Err(ApiError::SubjectConfigNotFound(subject)),
    };
    ok(&json!({ "compatibilityLevel": level }))
}

async fn put_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = parse_level(&body)?;
    store.set_level(Some(&subject), level).await?;
    ok(&json!({ "compatibility": level }))
}

async fn delete_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
) -> ApiResult {
    let previous = store.delete_subject_level(&subject).await?;
    ok(&json!({ "compatibilityLevel": previous }))
}

fn compatibility_body(reasons: Vec<String>, verbose: bool) -> Value {
    let mut body = json!({ "is_compatible": reasons.is_empty() });
    if verbose {
        body["messages"] = json!(reasons);
    }
    body
}

async fn check_against_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let request = SchemaRequest::parse(&body)?;
    let reasons = store
        .check_compatibility(&subject, None, &request.schema, request.references)
        .await?;
    ok(&compatibility_body(reasons, flag(&params, "verbose")))
}

async fn check_against_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let request = SchemaRequest::parse(&body)?;
    let reasons = store
        .check_compatibility(&subject, Some(spec), &request.schema, request.references)
        .await?;
    ok(&compatibility_body(reasons, flag(&params, "verbose")))
}
