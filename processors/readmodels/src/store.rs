//! The read-model store contract, implemented by [`crate::pg::PgStore`] and
//! [`crate::cql::CqlStore`]. The same scenario suite (`tests/contract.rs`) runs against both.

use std::future::Future;

use serde::Serialize;
use uuid::Uuid;

use crate::model::{Changes, OrderSummary, StockLevel, TimelineEntry};

/// A store failed; the projector retries the batch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError(format!("postgresql: {error}"))
    }
}

/// Confirmed revenue and units of one sku on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct SkuDay {
    pub day: String,
    pub sku: String,
    pub confirmed_revenue_minor: i64,
    pub units: i64,
}

/// Cancellations for one reason on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct ReasonDay {
    pub day: String,
    pub reason: String,
    pub orders: i64,
}

/// The analytics model, sorted by day, then sku or reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DailyStats {
    pub sales: Vec<SkuDay>,
    pub cancellations: Vec<ReasonDay>,
}

/// A read-model store. Every write is idempotent and order-safe (see [`crate::model`]), so a
/// batch may be applied again after a failure, and events may arrive in any order across
/// topics.
pub trait ReadStore: Send + Sync {
    /// Creates the tables (or keyspace) if they are missing.
    fn prepare(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies the changes of a batch of events, in order.
    fn apply(&self, batch: &[Changes]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records, per (topic, partition), the next offset to read; never moves back.
    fn record_positions(
        &self,
        next_offsets: &[(String, i32, i64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The next offset to read of a partition: everything before it is applied.
    fn position(
        &self,
        topic: &str,
        partition: i32,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    fn order(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<OrderSummary>, StoreError>> + Send;

    /// A customer's orders, newest first (by the time of the request, then id), `limit` per
    /// page. An order is listed once its request (PlaceOrder) is applied.
    fn customer_orders(
        &self,
        customer_id: &str,
        limit: usize,
        page: usize,
    ) -> impl Future<Output = Result<Vec<OrderSummary>, StoreError>> + Send;

    /// An order's events in the order they occurred (then by event id).
    fn timeline(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Vec<TimelineEntry>, StoreError>> + Send;

    fn stock(
        &self,
        sku: &str,
    ) -> impl Future<Output = Result<Option<StockLevel>, StoreError>> + Send;

    fn daily_stats(&self) -> impl Future<Output = Result<DailyStats, StoreError>> + Send;
}
