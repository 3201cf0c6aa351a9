//! The query API: JSON over HTTP (axum), reading one copy of the read models.
//!
//! | endpoint | store |
//! |---|---|
//! | `GET /orders/{id}` | PostgreSQL `order_summary` |
//! | `GET /customers/{id}/orders?limit=&page=` | ScyllaDB, newest first |
//! | `GET /orders/{id}/timeline` | ScyllaDB |
//! | `GET /stock/{sku}` | ScyllaDB |
//! | `GET /stats/daily` | PostgreSQL analytics |
//! | `GET /openapi.json`, `GET /health` | |
//!
//! Read-your-writes: every read takes `?min_position=topic/partition@offset` (what the CLI
//! prints when it publishes) and waits, up to `TROUPE_QUERY_WAIT_MS`, until the store it reads
//! has applied that message. Errors are JSON: `{"error": "...", "code": "..."}`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use troupe_runtime::publish::Position;
use uuid::Uuid;

use crate::cql::CqlStore;
use crate::pg::PgStore;
use crate::store::{ReadStore, StoreError};
use crate::Copy;

/// The API's own metrics, served at `/metrics`.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    registry: prometheus::Registry,
    requests: prometheus::IntCounterVec,
    seconds: prometheus::HistogramVec,
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        let requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "troupe_query_requests_total",
                "Query API requests by route and HTTP status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let seconds = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "troupe_query_request_seconds",
                "Query API request latency, including any wait for min_position",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("register");
        registry
            .register(Box::new(seconds.clone()))
            .expect("register");
        Self {
            registry,
            requests,
            seconds,
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let _ = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts and times every request by its route template (bounded labels, never raw paths).
async fn track(
    State(metrics): State<ApiMetrics>,
    route: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    metrics
        .seconds
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// One copy's stores.
#[derive(Debug)]
pub struct Stores {
    pub copy: String,
    pub pg: PgStore,
    pub cql: CqlStore,
}

impl Stores {
    /// Opens (and prepares) the stores of `copy`.
    pub async fn open(copy: &Copy) -> anyhow::Result<Self> {
        use troupe_runtime::config::{PostgresConfig, ScyllaConfig};
        let url = PostgresConfig::from_env().database_url(&copy.database());
        let pg = PgStore::new(troupe_runtime::db::connect(&url, 8).await?);
        pg.prepare().await?;
        let cql =
            CqlStore::connect(&ScyllaConfig::from_env().nodes.join(","), &copy.database()).await?;
        cql.prepare().await?;
        Ok(Self {
            copy: copy.name().to_owned(),
            pg,
            cql,
        })
    }
}

/// What the handlers share: the copy being served (swapped when another goes live).
#[derive(Debug, Clone)]
pub struct Api {
    current: Arc<std::sync::RwLock<Option<Arc<Stores>>>>,
    /// The longest a read waits for `min_position`.
    wait: Duration,
}

impl Api {
    pub fn new(stores: Option<Stores>, wait: Duration) -> Self {
        Self {
            current: Arc::new(std::sync::RwLock::new(stores.map(Arc::new))),
            wait,
        }
    }

    /// The copy served now.
    fn stores(&self) -> Result<Arc<Stores>, ApiError> {
        self.current
            .read()
            .expect("stores lock")
            .clone()
            .ok_or_else(|| ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "store_unavailable",
                message: "no read-model copy is live yet (is a projector running?)".into(),
            })
    }

    fn serving(&self) -> Option<String> {
        self.current
            .read()
            .expect("stores lock")
            .as_ref()
            .map(|s| s.copy.clone())
    }

    fn serve(&self, stores: Stores) {
        *self.current.write().expect("stores lock") = Some(Arc::new(stores));
    }
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message,
        }
    }

    fn not_found(message: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "store_unavailable",
            message: error.0,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.message, "code": self.code })),
        )
            .into_response()
    }
}

type Params = Query<HashMap<String, String>>;

fn order_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not an order id (a UUID)")))
}

fn number(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "{name} must be a whole number from 0 to {max}, not {text:?}"
            ))),
        },
    }
}

/// Waits until `store` applied `min_position`, if the request names one.
async fn applied<S: ReadStore>(
    store: &S,
    params: &HashMap<String, String>,
    wait: Duration,
) -> Result<(), ApiError> {
    let Some(text) = params.get("min_position") else {
        return Ok(());
    };
    let wanted: Position = text.parse().map_err(ApiError::bad_request)?;
    let deadline = Instant::now() + wait;
    loop {
        let next = store.position(&wanted.topic, wanted.partition).await?;
        if next.is_some_and(|next| next > wanted.offset) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ApiError {
                status: StatusCode::GATEWAY_TIMEOUT,
                code: "not_applied_yet",
                message: format!(
                    "{wanted} is not applied after {} ms (applied up to offset {} of that partition)",
                    wait.as_millis(),
                    next.map_or("none".into(), |n| (n - 1).to_string())
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn order(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let stores = api.stores()?;
    applied(&stores.pg, &params, api.wait).await?;
    match stores.pg.order(id).await? {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(ApiError::not_found(format!("no order {id}"))),
    }
}

async fn customer_orders(
    State(api): State<Api>,
    Path(customer): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    if customer.is_empty() || customer.len() > 200 {
        return Err(ApiError::bad_request(
            "a customer id is 1 to 200 characters".into(),
        ));
    }
    let limit = number(&params, "limit", 20, 100)?;
    if limit == 0 {
        return Err(ApiError::bad_request("limit must be at least 1".into()));
    }
    let page = number(&params, "page", 0, 100_000)?;
    let stores = api.stores()?;
    applied(&stores.cql, &params, api.wait).await?;
    let orders = stores.cql.customer_orders(&customer, limit, page).await?;
    Ok(Json(json!({
        "customer_id": customer,
        "limit": limit,
        "page": page,
        "orders": orders,
    }))
    .into_response())
}

async fn timeline(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let stores = api.stores()?;
    applied(&stores.cql, &params, api.wait).await?;
    let entries = stores.cql.timeline(id).await?;
    if entries.is_empty() {
        return Err(ApiError::not_found(format!("no order {id}")));
    }
    Ok(Json(json!({ "order_id": id, "events": entries })).into_response())
}

async fn stock(
    State(api): State<Api>,
    Path(sku): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let stores = api.stores()?;
    applied(&stores.cql, &params, api.wait).await?;
    match stores.cql.stock(&sku).await? {
        Some(level) => Ok(Json(json!({
            "sku": sku,
            "available": level.available,
            "reserved": level.reserved,
            "sold": level.sold,
        }))
        .into_response()),
        None => Err(ApiError::not_found(format!(
            "no stock recorded for sku {sku:?}"
        ))),
    }
}

async fn daily(State(api): State<Api>, Query(params): Params) -> Result<Response, ApiError> {
    let stores = api.stores()?;
    applied(&stores.pg, &params, api.wait).await?;
    Ok(Json(stores.pg.daily_stats().await?).into_response())
}

/// Up, and which copy it serves.
async fn health(State(api): State<Api>) -> Response {
    Json(json!({ "status": "ok", "copy": api.serving() })).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json".into())
}

/// The routes.
pub fn router(api: Api) -> Router {
    let metrics = ApiMetrics::new();
    let exposed = metrics.clone();
    Router::new()
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/timeline", get(timeline))
        .route("/customers/{id}/orders", get(customer_orders))
        .route("/stock/{sku}", get(stock))
        .route("/stats/daily", get(daily))
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(metrics, track))
        .route("/metrics", get(move || async move { exposed.text() }))
        .with_state(api)
}

/// Serves on `TROUPE_QUERY_LISTEN` (default `127.0.0.1:28090`) until `shutdown`.
///
/// With `TROUPE_READMODEL_COPY` set it serves that copy; otherwise it serves the live copy of
/// its topic prefix and follows the switch when a rebuilt copy goes live (checked every second).
pub async fn serve_from_env(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use troupe_runtime::config::{env_or, PostgresConfig};
    let listen = env_or("TROUPE_QUERY_LISTEN", "127.0.0.1:28090");
    let wait_ms: u64 = env_or("TROUPE_QUERY_WAIT_MS", "5000")
        .parse()
        .map_err(|_| anyhow::anyhow!("TROUPE_QUERY_WAIT_MS must be a number of milliseconds"))?;
    let fixed = std::env::var("TROUPE_READMODEL_COPY")
        .ok()
        .filter(|c| !c.is_empty());
    let api = Api::new(None, Duration::from_millis(wait_ms));
    match fixed {
        Some(name) => {
            let copy = Copy::new(&name).map_err(anyhow::Error::msg)?;
            api.serve(Stores::open(&copy).await?);
        }
        None => {
            let control = crate::control::connect(&PostgresConfig::from_env().url).await?;
            let prefix = troupe_runtime::topics::Topics::from_env()
                .prefix()
                .to_owned();
            follow_live(&api, &control, &prefix).await?;
            let follower = api.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Err(error) = follow_live(&follower, &control, &prefix).await {
                        tracing::warn!(%error, "cannot check the live read-model copy");
                    }
                }
            });
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, copy = ?api.serving(), "query API serving");
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Serves the live copy if it is not served already.
async fn follow_live(api: &Api, control: &sqlx::PgPool, prefix: &str) -> anyhow::Result<()> {
    let Some(live) = crate::control::live(control, prefix).await? else {
        return Ok(());
    };
    if api.serving().as_deref() == Some(live.as_str()) {
        return Ok(());
    }
    let copy = Copy::new(&live).map_err(anyhow::Error::msg)?;
    api.serve(Stores::open(&copy).await?);
    tracing::info!(copy = live, "serving the live read-model copy");
    Ok(())
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> serde_json::Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let min_position = json!({
        "name": "min_position", "in": "query", "required": false,
        "description": "Wait until the read model has applied this message (topic/partition@offset, as `troupe` prints it)",
        "schema": { "type": "string", "example": "troupe.orders.commands/3@17" }
    });
    let errors = |found: bool| {
        let mut responses = json!({
            "400": { "description": "malformed request", "content": { "application/json": { "schema": error } } },
            "503": { "description": "a store is unavailable", "content": { "application/json": { "schema": error } } },
            "504": { "description": "min_position not applied in time", "content": { "application/json": { "schema": error } } }
        });
        if found {
            responses["404"] = json!({ "description": "not found", "content": { "application/json": { "schema": error } } });
        }
        responses
    };
    let ok = |schema: serde_json::Value, found: bool| {
        let mut responses = errors(found);
        responses["200"] =
            json!({ "description": "ok", "content": { "application/json": { "schema": schema } } });
        responses
    };
    let id = |name: &str, description: &str| {
        json!({
            "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" }
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "troupe query API", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/orders/{id}": { "get": {
                "summary": "An order's summary",
                "parameters": [id("id", "order id (UUID)"), min_position],
                "responses": ok(json!({ "$ref": "#/components/schemas/OrderSummary" }), true)
            }},
            "/orders/{id}/timeline": { "get": {
                "summary": "Every event of an order, in the order they occurred",
                "parameters": [id("id", "order id (UUID)"), min_position],
                "responses": ok(json!({ "type": "object", "properties": {
                    "order_id": { "type": "string", "format": "uuid" },
                    "events": { "type": "array", "items": { "$ref": "#/components/schemas/TimelineEntry" } }
                }}), true)
            }},
            "/customers/{id}/orders": { "get": {
                "summary": "A customer's orders, newest first",
                "parameters": [
                    id("id", "customer id"),
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 } },
                    { "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } },
                    min_position
                ],
                "responses": ok(json!({ "type": "object", "properties": {
                    "customer_id": { "type": "string" }, "limit": { "type": "integer" }, "page": { "type": "integer" },
                    "orders": { "type": "array", "items": { "$ref": "#/components/schemas/OrderSummary" } }
                }}), false)
            }},
            "/stock/{sku}": { "get": {
                "summary": "Stock of one sku",
                "parameters": [id("sku", "sku"), min_position],
                "responses": ok(json!({ "type": "object", "properties": {
                    "sku": { "type": "string" }, "available": { "type": "integer" },
                    "reserved": { "type": "integer" }, "sold": { "type": "integer" }
                }}), true)
            }},
            "/stats/daily": { "get": {
                "summary": "Confirmed revenue and units per day and sku; cancellations per day and reason",
                "parameters": [min_position],
                "responses": ok(json!({ "$ref": "#/components/schemas/DailyStats" }), false)
            }}
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error", "code"], "properties": {
                "error": { "type": "string" },
                "code": { "type": "string", "enum": ["bad_request", "not_found", "not_applied_yet", "store_unavailable"] }
            }},
            "OrderSummary": { "type": "object", "properties": {
                "order_id": { "type": "string", "format": "uuid" },
                "customer_id": { "type": ["string", "null"] },
                "status": { "type": ["string", "null"], "enum": ["REQUESTED", "PLACED", "RESERVED", "PAID", "SHIPPED", "CONFIRMED", "CANCELLED", "REJECTED", null] },
                "lines": { "type": "array", "items": { "type": "object", "properties": {
                    "sku": { "type": "string" }, "quantity": { "type": "integer" }, "unit_price_minor": { "type": "integer" }
                }}},
                "currency": { "type": ["string", "null"] },
                "total_minor": { "type": ["integer", "null"] },
                "promotion_code": { "type": ["string", "null"] },
                "reason": { "type": ["string", "null"] },
                "detail": { "type": ["string", "null"] },
                "steps": { "type": "object", "additionalProperties": { "type": "integer" },
                           "description": "ms since the epoch of each step: requested_at, placed_at, reserved_at, paid_at, shipped_at, confirmed_at, cancelled_at, rejected_at, released_at, committed_at, refunded_at, shipment_cancelled_at, notified_at" },
                "updated_at": { "type": "integer" },
                "last_position": { "type": ["string", "null"] }
            }},
            "TimelineEntry": { "type": "object", "properties": {
                "order_id": { "type": "string", "format": "uuid" }, "occurred_at": { "type": "integer" },
                "event_id": { "type": "string", "format": "uuid" }, "event_type": { "type": "string" },
                "service": { "type": "string" }, "detail": { "type": "string" }
            }},
            "DailyStats": { "type": "object", "properties": {
                "sales": { "type": "array", "items": { "type": "object", "properties": {
                    "day": { "type": "string" }, "sku": { "type": "string" },
                    "confirmed_revenue_minor": { "type": "integer" }, "units": { "type": "integer" }
                }}},
                "cancellations": { "type": "array", "items": { "type": "object", "properties": {
                    "day": { "type": "string" }, "reason": { "type": "string" }, "orders": { "type": "integer" }
                }}}
            }}
        }}
    })
}
