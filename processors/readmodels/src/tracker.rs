//! The saga tracker: every order's progress, read passively from the PostgreSQL read model
//! (`order_summary`: its status, the time of each step, the time of its newest event).
//!
//! An order without an outcome waits on the step after its status; which services take that
//! step comes from `choreography.yaml`. It is *stalled* when nothing has happened to it for
//! longer than the allowance of its status (`TROUPE_SAGA_STALL_AFTER`, default 60 s;
//! `TROUPE_SAGA_STALL_AFTER_<STATUS>` for one status, e.g. `..._RESERVED=2m`).
//!
//! The query API runs it: `GET /sagas` lists orders by state, and every
//! `TROUPE_SAGA_TRACK_INTERVAL_MS` (default 5 s) it sets `troupe_sagas{state}` and
//! `troupe_sagas_stalled{waiting_on}`, counts outcomes and compensations and times finished
//! sagas (`troupe_saga_duration_seconds`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use sqlx::{PgPool, Row};
use troupe_events::choreography::Choreography;
use troupe_events::EventType;
use uuid::Uuid;

use crate::metrics::ApiMetrics;
use crate::model::Status;

/// The statuses an order waits in, and the event that put it there.
const WAITING: [(Status, EventType); 5] = [
    (Status::Requested, EventType::PlaceOrder),
    (Status::Placed, EventType::OrderPlaced),
    (Status::Reserved, EventType::StockReserved),
    (Status::Paid, EventType::PaymentAuthorized),
    (Status::Shipped, EventType::ShipmentScheduled),
];

/// The services whose reaction to the event behind `status` moves the order on (they must
/// emit something), from the choreography. A join waits for its last event: it counts at the
/// status of the latest of its events.
pub fn waiting_on(status: Status) -> Vec<String> {
    let rank = |event: &EventType| WAITING.iter().position(|(_, e)| e == event);
    let Some(here) = WAITING.iter().position(|(s, _)| *s == status) else {
        return Vec::new();
    };
    let event = WAITING[here].1;
    Choreography::current()
        .services
        .iter()
        .filter(|service| {
            service.reactions.iter().any(|r| {
                r.on.contains(&event)
                    && !r.optional
                    && !r.emits.is_empty()
                    && r.on.iter().all(|e| rank(e).is_none_or(|i| i <= here))
            })
        })
        .map(|service| service.name.clone())
        .collect()
}

/// How long an order may sit in each waiting status before it counts as stalled.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowances(BTreeMap<&'static str, Duration>);

impl Allowances {
    /// From `TROUPE_SAGA_STALL_AFTER` and `TROUPE_SAGA_STALL_AFTER_<STATUS>`.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let read = |name: &str, default: Duration| match lookup(name) {
            None => Ok(default),
            Some(text) => parse_duration(&text).map_err(|e| format!("{name}: {e}")),
        };
        let default = read("TROUPE_SAGA_STALL_AFTER", Duration::from_secs(60))?;
        let mut allowances = BTreeMap::new();
        for (status, _) in WAITING {
            let name = format!("TROUPE_SAGA_STALL_AFTER_{}", status.name());
            allowances.insert(status.name(), read(&name, default)?);
        }
        Ok(Self(allowances))
    }

    /// The waiting statuses and, for each, the newest `updated_at` that counts as stalled
    /// at `now_ms`.
    fn cutoffs(&self, now_ms: i64) -> (Vec<String>, Vec<i64>) {
        self.0
            .iter()
            .map(|(status, allowance)| {
                ((*status).to_owned(), now_ms - allowance.as_millis() as i64)
            })
            .unzip()
    }
}

impl Default for Allowances {
    /// 60 s for every status.
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("defaults parse")
    }
}

/// The longest duration [`parse_duration`] accepts: a year.
const MAX_DURATION_MS: u64 = 365 * 24 * 3_600_000;

/// `1500ms`, `30s`, `5m`, `2h`, or a bare number of seconds, at most a year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 30s, 5m, 1500ms)"))?;
    let scale = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{text:?}: the unit is one of ms, s, m, h")),
    };
    let millis = n
        .checked_mul(scale)
        .filter(|ms| *ms <= MAX_DURATION_MS)
        .ok_or_else(|| format!("{text:?} is longer than a year"))?;
    Ok(Duration::from_millis(millis))
}

/// Orders by state, and the stalled ones by the status they are stuck at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Census {
    pub states: BTreeMap<String, i64>,
    pub stalled: BTreeMap<String, i64>,
    /// Orders whose effect was undone, by effect: stock, payment, shipment.
    pub compensations: BTreeMap<String, i64>,
}

/// The tracker's SQL: waiting statuses joined with their stall cutoffs.
const CENSUS: &str = r#"
SELECT s.status,
       count(*) AS orders,
       count(*) FILTER (WHERE s.updated_at < a.cutoff) AS stalled,
       count(*) FILTER (WHERE s.steps ? 'released_at') AS released,
       count(*) FILTER (WHERE s.steps ? 'refunded_at') AS refunded,
       count(*) FILTER (WHERE s.steps ? 'shipment_cancelled_at') AS shipment_cancelled
  FROM order_summary s
  LEFT JOIN unnest($1::text[], $2::bigint[]) AS a(status, cutoff) ON a.status = s.status
 WHERE s.status IS NOT NULL
 GROUP BY s.status
"#;

/// Counts every order by state at `now_ms`.
pub async fn census(pool: &PgPool, allowances: &Allowances, now_ms: i64) -> sqlx::Result<Census> {
    let (statuses, cutoffs) = allowances.cutoffs(now_ms);
    let rows = sqlx::query(CENSUS)
        .bind(&statuses)
        .bind(&cutoffs)
        .fetch_all(pool)
        .await?;
    let mut census = Census::default();
    for state in ["in_flight", "stalled", "completed", "cancelled", "rejected"] {
        census.states.insert(state.to_owned(), 0);
    }
    for (status, _) in WAITING {
        census.stalled.insert(status.name().to_lowercase(), 0);
    }
    for effect in ["stock", "payment", "shipment"] {
        census.compensations.insert(effect.to_owned(), 0);
    }
    for row in rows {
        let status: String = row.get("status");
        let (orders, stalled): (i64, i64) = (row.get("orders"), row.get("stalled"));
        let state = match Status::from_name(&status) {
            Some(Status::Confirmed) => "completed",
            Some(Status::Cancelled) => "cancelled",
            Some(Status::Rejected) => "rejected",
            _ => {
                *census.states.entry("stalled".into()).or_default() += stalled;
                *census.stalled.entry(status.to_lowercase()).or_default() += stalled;
                "in_flight"
            }
        };
        let moving = if state == "in_flight" {
            orders - stalled
        } else {
            orders
        };
        *census.states.entry(state.into()).or_default() += moving;
        for (column, effect) in [
            ("released", "stock"),
            ("refunded", "payment"),
            ("shipment_cancelled", "shipment"),
        ] {
            *census.compensations.entry(effect.into()).or_default() += row.get::<i64, _>(column);
        }
    }
    Ok(census)
}

/// One order as the tracker lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackedSaga {
    pub order_id: Uuid,
    pub status: String,
    pub customer_id: Option<String>,
    /// The newest event applied, ms since the epoch.
    pub last_progress_at: i64,
    pub idle_ms: i64,
    /// The services whose step comes next.
    pub waiting_on: Vec<String>,
    pub steps: BTreeMap<String, i64>,
}

/// Which orders [`list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// No outcome and idle past their status's allowance.
    Stalled,
    /// No outcome yet (stalled or not).
    InFlight,
}

/// Orders without an outcome, idle for at least `older_than` (and past their allowance when
/// `Stalled`), the longest idle first.
pub async fn list(
    pool: &PgPool,
    allowances: &Allowances,
    filter: Filter,
    older_than: Duration,
    limit: i64,
    now_ms: i64,
) -> sqlx::Result<Vec<TrackedSaga>> {
    let (statuses, mut cutoffs) = allowances.cutoffs(now_ms);
    if filter == Filter::InFlight {
        cutoffs.iter_mut().for_each(|c| *c = i64::MAX);
    }
    let rows = sqlx::query(
        "SELECT s.order_id, s.status, s.customer_id, s.updated_at, s.steps
           FROM order_summary s
           JOIN unnest($1::text[], $2::bigint[]) AS a(status, cutoff) ON a.status = s.status
          WHERE s.updated_at < a.cutoff AND s.updated_at <= $3
          ORDER BY s.updated_at, s.order_id
          LIMIT $4",
    )
    .bind(&statuses)
    .bind(&cutoffs)
    .bind(now_ms - older_than.as_millis() as i64)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let status: String = row.get("status");
            let updated_at: i64 = row.get("updated_at");
            let steps: Option<sqlx::types::Json<BTreeMap<String, i64>>> = row.try_get("steps").ok();
            TrackedSaga {
                order_id: row.get("order_id"),
                waiting_on: Status::from_name(&status)
                    .map(waiting_on)
                    .unwrap_or_default(),
                status,
                customer_id: row.get("customer_id"),
                last_progress_at: updated_at,
                idle_ms: now_ms - updated_at,
                steps: steps.map(|s| s.0).unwrap_or_default(),
            }
        })
        .collect())
}

/// Finished sagas not observed yet: (order, outcome, seconds from request to outcome).
/// Outcomes that occurred after `since_ms` are read; `seen` keeps those already observed.
async fn finished(
    pool: &PgPool,
    since_ms: i64,
    seen: &mut HashMap<Uuid, i64>,
) -> sqlx::Result<Vec<(String, f64)>> {
    let rows = sqlx::query(
        "SELECT order_id, status,
                (steps->>'requested_at')::bigint AS requested_at,
                (steps->>'placed_at')::bigint AS placed_at,
                COALESCE((steps->>'confirmed_at')::bigint, (steps->>'cancelled_at')::bigint,
                         (steps->>'rejected_at')::bigint) AS outcome_at
           FROM order_summary
          WHERE status IN ('CONFIRMED', 'CANCELLED', 'REJECTED')
            AND COALESCE((steps->>'confirmed_at')::bigint, (steps->>'cancelled_at')::bigint,
                         (steps->>'rejected_at')::bigint) > $1",
    )
    .bind(since_ms)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let order: Uuid = row.get("order_id");
        let outcome_at: Option<i64> = row.get("outcome_at");
        let started: Option<i64> = row
            .get::<Option<i64>, _>("requested_at")
            .or(row.get("placed_at"));
        let (Some(outcome_at), Some(started)) = (outcome_at, started) else {
            continue;
        };
        if seen.insert(order, outcome_at).is_some() {
            continue;
        }
        let status: String = row.get("status");
        let outcome = match Status::from_name(&status) {
            Some(Status::Confirmed) => "completed",
            Some(Status::Cancelled) => "cancelled",
            _ => "rejected",
        };
        out.push((
            outcome.to_owned(),
            (outcome_at - started).max(0) as f64 / 1000.0,
        ));
    }
    Ok(out)
}

/// How far back [`finished`] looks again, for outcomes the projector applies late.
const LATE: i64 = 120_000;

/// Sets the saga metrics every `interval` from the copy `served` returns (its name and pool;
/// `None`: no copy served yet), until the task is dropped. When another copy is served, the
/// counters start again from its figures (its catch-up is not counted as new outcomes).
pub async fn track(
    served: impl Fn() -> Option<(String, PgPool)>,
    allowances: Allowances,
    metrics: ApiMetrics,
    interval: Duration,
) {
    let started = troupe_runtime::handler::now_ms();
    let mut seen: HashMap<Uuid, i64> = HashMap::new();
    let mut newest = started;
    let mut last: Option<(String, Census)> = None;
    loop {
        if let Some((copy, pool)) = served() {
            let now = troupe_runtime::handler::now_ms();
            match census(&pool, &allowances, now).await {
                Ok(census) => {
                    let before = last.as_ref().filter(|(c, _)| *c == copy).map(|(_, b)| b);
                    publish(&metrics, before, &census);
                    last = Some((copy, census));
                }
                Err(error) => tracing::warn!(%error, "saga census failed"),
            }
            match finished(&pool, (newest - LATE).max(started), &mut seen).await {
                Ok(done) => {
                    for (outcome, seconds) in done {
                        metrics
                            .durations
                            .with_label_values(&[&outcome])
                            .observe(seconds);
                    }
                    newest = seen.values().copied().max().unwrap_or(newest).max(newest);
                    seen.retain(|_, at| *at > newest - LATE);
                }
                Err(error) => tracing::warn!(%error, "finished sagas not read"),
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// The gauges from `now`; the counters by what grew since `before` (the first census only
/// sets the baseline, so counters count from the tracker's start).
fn publish(metrics: &ApiMetrics, before: Option<&Census>, now: &Census) {
    for (state, n) in &now.states {
        metrics.sagas.with_label_values(&[state]).set(*n);
    }
    for (status, n) in &now.stalled {
        metrics.stalled.with_label_values(&[status]).set(*n);
    }
    for (outcome, n) in &now.states {
        if !matches!(outcome.as_str(), "completed" | "cancelled" | "rejected") {
            continue;
        }
        let counter = metrics.outcomes.with_label_values(&[outcome]);
        if let Some(grew) = before.and_then(|b| grown(b.states.get(outcome), *n)) {
            counter.inc_by(grew);
        }
    }
    for (effect, n) in &now.compensations {
        let counter = metrics.compensations.with_label_values(&[effect]);
        if let Some(grew) = before.and_then(|b| grown(b.compensations.get(effect), *n)) {
            counter.inc_by(grew);
        }
    }
}

/// How much a count grew (nothing when it shrank: a copy rebuilt or switched).
fn grown(before: Option<&i64>, now: i64) -> Option<u64> {
    let before = *before?;
    (now > before).then(|| (now - before) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_waiting_status_waits_on_a_service_of_the_choreography() {
        assert_eq!(waiting_on(Status::Requested), ["order"]);
        assert_eq!(waiting_on(Status::Placed), ["inventory"]);
        assert_eq!(waiting_on(Status::Reserved), ["payment"]);
        assert_eq!(waiting_on(Status::Paid), ["shipping"]);
        assert_eq!(waiting_on(Status::Shipped), ["order"]);
        assert!(waiting_on(Status::Confirmed).is_empty());
    }

    #[test]
    fn allowances_default_and_override_per_status() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let a =
            Allowances::from_lookup(env(&[("TROUPE_SAGA_STALL_AFTER_RESERVED", "2m")])).unwrap();
        assert_eq!(a.0["RESERVED"], Duration::from_secs(120));
        assert_eq!(a.0["PLACED"], Duration::from_secs(60));
        let (statuses, cutoffs) = a.cutoffs(1_000_000);
        let reserved = statuses.iter().position(|s| s == "RESERVED").unwrap();
        assert_eq!(cutoffs[reserved], 880_000);
        let bad = Allowances::from_lookup(env(&[("TROUPE_SAGA_STALL_AFTER", "soon")]));
        assert!(bad.unwrap_err().contains("TROUPE_SAGA_STALL_AFTER"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("9999999999999h").is_err());
        assert!(parse_duration("8761h").is_err());
    }

    #[test]
    fn counters_count_growth_since_the_first_census_only() {
        let metrics = ApiMetrics::new();
        let census = |completed: i64| Census {
            states: BTreeMap::from([("completed".into(), completed)]),
            ..Census::default()
        };
        publish(&metrics, None, &census(10));
        let value = || metrics.outcomes.with_label_values(&["completed"]).get();
        assert_eq!(value(), 0);
        publish(&metrics, Some(&census(10)), &census(13));
        assert_eq!(value(), 3);
        publish(&metrics, Some(&census(13)), &census(2));
        assert_eq!(
            value(),
            3,
            "a shrinking count (a rebuilt copy) is not counted"
        );
    }
}
