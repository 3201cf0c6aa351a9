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
use crate::metrics::ApiMetrics;
use crate::pg::PgStore;
use crate::store::{ReadStore, StoreError};
use crate::Copy;

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
    pub(crate) metrics: ApiMetrics,
    /// The saga tracker's stall allowances.
    allowances: crate::tracker::Allowances,
}

impl Api {
    pub fn new(stores: Option<Stores>, wait: Duration) -> Self {
        Self {
            current: Arc::new(std::sync::RwLock::new(stores.map(Arc::new))),
            wait,
            metrics: ApiMetrics::new(),
            allowances: crate::tracker::Allowances::default(),
        }
    }

    /// The same API with the tracker's stall allowances set.
    pub fn with_allowances(mut self, allowances: crate::tracker::Allowances) -> Self {
        self.allowances = allowances;
        self
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
    api: &Api,
    route: &str,
) -> Result<(), ApiError> {
    let Some(text) = params.get("min_position") else {
        return Ok(());
    };
    let wanted: Position = text.parse().map_err(ApiError::bad_request)?;
    let (wait, started) = (api.wait, Instant::now());
    let deadline = started + wait;
    let waited = |outcome: &str| {
        api.metrics
            .position_waits
            .with_label_values(&[route, outcome])
            .observe(started.elapsed().as_secs_f64());
    };
    loop {
        let next = store.position(&wanted.topic, wanted.partition).await?;
        if next.is_some_and(|next| next > wanted.offset) {
            waited("reached");
            return Ok(());
        }
        if Instant::now() >= deadline {
            waited("timeout");
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
    applied(&stores.pg, &params, &api, "/orders/{id}").await?;
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
    applied(&stores.cql, &params, &api, "/customers/{id}/orders").await?;
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
    applied(&stores.cql, &params, &api, "/orders/{id}/timeline").await?;
    order_events(id, stores.cql.timeline(id).await?)
}

/// An order's events as `{"order_id", "events"}`; no events: no such order.
fn order_events<T: serde::Serialize>(id: Uuid, events: Vec<T>) -> Result<Response, ApiError> {
    if events.is_empty() {
        return Err(ApiError::not_found(format!("no order {id}")));
    }
    Ok(Json(json!({ "order_id": id, "events": events })).into_response())
}

async fn stock(
    State(api): State<Api>,
    Path(sku): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let stores = api.stores()?;
    applied(&stores.cql, &params, &api, "/stock/{sku}").await?;
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

/// An order's events as a causation tree's entries (PostgreSQL).
async fn trace(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let stores = api.stores()?;
    applied(&stores.pg, &params, &api, "/orders/{id}/trace").await?;
    order_events(id, stores.pg.trace(id).await?)
}

/// The saga tracker's list (`?status=stalled|in_flight&older_than=5m&limit=100`) and census.
async fn sagas(State(api): State<Api>, Query(params): Params) -> Result<Response, ApiError> {
    use crate::tracker::{self, Filter};
    let filter = match params.get("status").map(String::as_str) {
        None | Some("stalled") => Filter::Stalled,
        Some("in_flight") => Filter::InFlight,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status is stalled or in_flight, not {other:?}"
            )))
        }
    };
    let older_than = match params.get("older_than") {
        None => Duration::ZERO,
        Some(text) => tracker::parse_duration(text)
            .map_err(|e| ApiError::bad_request(format!("older_than: {e}")))?,
    };
    let limit = number(&params, "limit", 100, 1000)?.max(1) as i64;
    let stores = api.stores()?;
    let now = troupe_runtime::handler::now_ms();
    let pool = stores.pg.pool();
    let sagas = tracker::list(pool, &api.allowances, filter, older_than, limit, now)
        .await
        .map_err(StoreError::from)?;
    let census = tracker::census(pool, &api.allowances, now)
        .await
        .map_err(StoreError::from)?;
    Ok(Json(json!({ "census": census, "sagas": sagas })).into_response())
}

async fn daily(State(api): State<Api>, Query(params): Params) -> Result<Response, ApiError> {
    let stores = api.stores()?;
    applied(&stores.pg, &params, &api, "/stats/daily").await?;
    Ok(Json(stores.pg.daily_stats().await?).into_response())
}

/// Up, and which copy it serves.
async fn health(State(api): State<Api>) -> Response {
    Json(json!({ "status": "ok", "copy": api.serving() })).into_response()
}

/// The readiness probe: a copy is live and its PostgreSQL store answers within 2 s. (`/live`
/// is the process answering at all.)
async fn ready(State(api): State<Api>) -> Response {
    let stores = match api.stores() {
        Ok(stores) => stores,
        Err(error) => return error.into_response(),
    };
    let ping = sqlx::query("SELECT 1").execute(stores.pg.pool());
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => Json(json!({ "status": "ok", "copy": stores.copy })).into_response(),
        _ => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "store_unavailable",
            message: format!(
                "the PostgreSQL store of copy {} does not answer",
                stores.copy
            ),
        }
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json".into())
}

/// The routes.
pub fn router(api: Api) -> Router {
    let metrics = api.metrics.clone();
    let exposed = metrics.clone();
    Router::new()
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/timeline", get(timeline))
        .route("/customers/{id}/orders", get(customer_orders))
        .route("/stock/{sku}", get(stock))
        .route("/stats/daily", get(daily))
        .route("/orders/{id}/trace", get(trace))
        .route("/sagas", get(sagas))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::openapi()) }),
        )
        .route("/health", get(health))
        .route("/live", get(health))
        .route("/ready", get(ready))
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
    let allowances = crate::tracker::Allowances::from_env().map_err(anyhow::Error::msg)?;
    let interval: u64 = env_or("TROUPE_SAGA_TRACK_INTERVAL_MS", "5000")
        .parse()
        .map_err(|_| anyhow::anyhow!("TROUPE_SAGA_TRACK_INTERVAL_MS must be milliseconds"))?;
    let api = Api::new(None, Duration::from_millis(wait_ms)).with_allowances(allowances.clone());
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
    let tracked = api.clone();
    let tracker = tokio::spawn(crate::tracker::track(
        move || {
            let stores = tracked.stores().ok()?;
            Some((stores.copy.clone(), stores.pg.pool().clone()))
        },
        allowances,
        api.metrics.clone(),
        Duration::from_millis(interval.max(100)),
    ));
    let target = troupe_runtime::metrics::register_scrape_target(
        troupe_runtime::config::scrape_targets_dir().as_deref(),
        "query",
        &env_or("TROUPE_INSTANCE", "query"),
        &listener.local_addr()?.port().to_string(),
        listener.local_addr()?,
    );
    let served = axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await;
    tracker.abort();
    troupe_runtime::metrics::unregister_scrape_target(target);
    Ok(served?)
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
