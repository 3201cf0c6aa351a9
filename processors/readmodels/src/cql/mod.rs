//! The read models in ScyllaDB (Apache Cassandra in development and tests: the same CQL).
//!
//! Written the ScyllaDB way: no read before a write. Each order field is its own cell, and the
//! cell's write time (`USING TIMESTAMP`) is derived from the event, so the server's
//! last-write-wins rule *is* the merge rule and writes commute: any order of arrival, any
//! repetition and any number of projector instances feeding one copy end in the same rows.
//!
//! | cell | write time | so the cell holds |
//! |---|---|---|
//! | `status` | its rank ([`Status::rank`]) + 1 | the most advanced status |
//! | set-once fields, `steps[...]` | [`EARLIEST_WINS`] − the event's time | the earliest event's value |
//! | `updated_at`, `last_position` | the event's time in µs | the newest event's; a tie goes to the greater position text, as the server breaks ties by value |
//! | `positions.next_offset` | the offset | the furthest offset |
//!
//! Stock is the exception: an sku's level is a sum over many orders' events. It is changed
//! with a lightweight transaction per sku and batch (compare-and-set on a version), together
//! with the markers of the events applied, so concurrent projectors neither lose nor repeat a
//! change.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;

use futures::stream::{self, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryRowsResult;
use scylla::response::PagingState;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::model::{
    Changes, Fact, Line, OrderSummary, Status, Step, StockLevel, StockMove, TimelineEntry,
};
use crate::store::{DailyStats, ReadStore, ReasonDay, SkuDay, StoreError};

mod schema;

fn cql(error: impl Display) -> StoreError {
    StoreError(format!("cql: {error}"))
}

/// Write times above every event time in ms (2^52 µs is year 2112): a cell written at
/// `EARLIEST_WINS - time` keeps the value of the earliest event.
pub const EARLIEST_WINS: i64 = 1 << 52;

/// How many writes one batch has in flight at once.
const IN_FLIGHT: usize = 32;

/// A copy of the read models in one keyspace.
pub struct CqlStore {
    session: Session,
    keyspace: String,
    statements: OnceCell<Statements>,
}

impl std::fmt::Debug for CqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlStore")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

struct Statements {
    status: PreparedStatement,
    customer: PreparedStatement,
    lines: PreparedStatement,
    currency: PreparedStatement,
    total: PreparedStatement,
    promotion: PreparedStatement,
    reason: PreparedStatement,
    step: PreparedStatement,
    newest: PreparedStatement,
    get_orders: PreparedStatement,
    get_lines: PreparedStatement,
    index_customer: PreparedStatement,
    customer_orders: PreparedStatement,
    put_timeline: PreparedStatement,
    timeline: PreparedStatement,
    get_stock: PreparedStatement,
    stock_markers: PreparedStatement,
    set_stock: PreparedStatement,
    mark_stock: PreparedStatement,
    put_sale: PreparedStatement,
    sales: PreparedStatement,
    put_cancellation: PreparedStatement,
    cancellations: PreparedStatement,
    get_position: PreparedStatement,
    put_position: PreparedStatement,
}

/// The values of one statement of a stock transaction: the new level, or a marker.
enum StockRow<'a> {
    Level((i64, i64, i64, i64, &'a str, Option<i64>)),
    Marker((&'a str, String)),
}

impl SerializeRow for StockRow<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        match self {
            StockRow::Level(values) => values.serialize(ctx, writer),
            StockRow::Marker(values) => values.serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

impl CqlStore {
    /// Connects to `nodes` (comma-separated `host:port`); the copy lives in `keyspace`.
    pub async fn connect(nodes: &str, keyspace: &str) -> Result<Self, StoreError> {
        let mut builder = SessionBuilder::new();
        for node in nodes.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            builder = builder.known_node(node);
        }
        let session = builder.build().await.map_err(cql)?;
        Ok(Self {
            session,
            keyspace: keyspace.to_owned(),
            statements: OnceCell::new(),
        })
    }

    async fn statements(&self) -> Result<&Statements, StoreError> {
        self.statements
            .get_or_try_init(|| async {
                let k = &self.keyspace;
                let prepare =
                    |text: String| async move { self.session.prepare(text).await.map_err(cql) };
                let set = |cells: &str| {
                    prepare(format!(
                        "UPDATE {k}.orders USING TIMESTAMP ? SET {cells} WHERE order_id = ?"
                    ))
                };
                Ok::<_, StoreError>(Statements {
                    status: set("status = ?").await?,
                    customer: set("customer_id = ?").await?,
                    lines: set("lines = ?").await?,
                    currency: set("currency = ?").await?,
                    total: set("total_minor = ?").await?,
                    promotion: set("promotion_code = ?").await?,
                    reason: set("reason = ?, detail = ?").await?,
                    step: set("steps[?] = ?").await?,
                    newest: set("updated_at = ?, last_position = ?").await?,
                    get_orders: prepare(format!(
                        "SELECT order_id, customer_id, status, lines, currency, total_minor, \
                         promotion_code, reason, detail, steps, updated_at, last_position \
                         FROM {k}.orders WHERE order_id IN ?"
                    ))
                    .await?,
                    get_lines: prepare(format!("SELECT lines FROM {k}.orders WHERE order_id = ?"))
                        .await?,
                    index_customer: prepare(format!(
                        "INSERT INTO {k}.customer_orders (customer_id, requested_at, order_id) \
                         VALUES (?, ?, ?)"
                    ))
                    .await?,
                    customer_orders: prepare(format!(
                        "SELECT order_id FROM {k}.customer_orders WHERE customer_id = ?"
                    ))
                    .await?,
                    put_timeline: prepare(format!(
                        "INSERT INTO {k}.timeline (order_id, occurred_at, event_id, event_type, \
                         service, detail) VALUES (?, ?, ?, ?, ?, ?)"
                    ))
                    .await?,
                    timeline: prepare(format!(
                        "SELECT order_id, occurred_at, event_id, event_type, service, detail \
                         FROM {k}.timeline WHERE order_id = ?"
                    ))
                    .await?,
                    get_stock: prepare(format!(
                        "SELECT available, reserved, sold, version FROM {k}.stock \
                         WHERE sku = ? LIMIT 1"
                    ))
                    .await?,
                    stock_markers: prepare(format!(
                        "SELECT marker FROM {k}.stock WHERE sku = ? AND marker IN ?"
                    ))
                    .await?,
                    set_stock: prepare(format!(
                        "UPDATE {k}.stock SET available = ?, reserved = ?, sold = ?, version = ? \
                         WHERE sku = ? IF version = ?"
                    ))
                    .await?,
                    mark_stock: prepare(format!(
                        "INSERT INTO {k}.stock (sku, marker) VALUES (?, ?)"
                    ))
                    .await?,
                    put_sale: prepare(format!(
                        "INSERT INTO {k}.sales (order_id, sku, day, units, revenue_minor) \
                         VALUES (?, ?, ?, ?, ?)"
                    ))
                    .await?,
                    sales: prepare(format!(
                        "SELECT day, sku, units, revenue_minor FROM {k}.sales"
                    ))
                    .await?,
                    put_cancellation: prepare(format!(
                        "INSERT INTO {k}.cancellations (order_id, day, reason) VALUES (?, ?, ?)"
                    ))
                    .await?,
                    cancellations: prepare(format!("SELECT day, reason FROM {k}.cancellations"))
                        .await?,
                    get_position: prepare(format!(
                        "SELECT next_offset FROM {k}.positions WHERE key = ?"
                    ))
                    .await?,
                    put_position: prepare(format!(
                        "UPDATE {k}.positions USING TIMESTAMP ? SET next_offset = ? WHERE key = ?"
                    ))
                    .await?,
                })
            })
            .await
    }

    /// Drops the keyspace (a retired copy).
    pub async fn drop_keyspace(&self) -> Result<(), StoreError> {
        self.session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.keyspace), ())
            .await
            .map_err(cql)?;
        Ok(())
    }

    /// Runs a prepared statement and returns its rows.
    async fn rows(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryRowsResult, StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(cql)?
            .into_rows_result()
            .map_err(cql)
    }

    /// The statements that record what one event says about its order, as one batch on the
    /// order's partition.
    fn summary_batch<'a>(
        s: &Statements,
        changes: &'a Changes,
        batch: &mut Batch,
        values: &mut Vec<SummaryCell<'a>>,
    ) {
        let Some(change) = &changes.summary else {
            return;
        };
        let id = change.order_id;
        let at = changes.timeline.as_ref().map_or(0, |t| t.occurred_at);
        let first = EARLIEST_WINS - at;
        let mut add = |statement: &PreparedStatement, cell: SummaryCell<'a>| {
            batch.append_statement(statement.clone());
            values.push(cell);
        };
        if let Some(status) = change.status {
            add(
                &s.status,
                SummaryCell::Text((i64::from(status.rank()) + 1, status.name(), id)),
            );
        }
        if let Some(customer) = &change.customer_id {
            add(&s.customer, SummaryCell::Text((first, customer, id)));
        }
        if let Some(lines) = &change.lines {
            let json = serde_json::to_string(lines).expect("lines serialise");
            add(&s.lines, SummaryCell::Owned((first, json, id)));
        }
        if let Some(currency) = &change.currency {
            add(&s.currency, SummaryCell::Text((first, currency, id)));
        }
        if let Some(total) = change.total_minor {
            add(&s.total, SummaryCell::Number((first, total, id)));
        }
        if let Some(code) = &change.promotion_code {
            add(&s.promotion, SummaryCell::Text((first, code, id)));
        }
        if let Some((reason, detail)) = &change.reason {
            add(&s.reason, SummaryCell::Pair((first, reason, detail, id)));
        }
        if let Some((step, time)) = change.step {
            add(
                &s.step,
                SummaryCell::Step((EARLIEST_WINS - time, step.column(), time, id)),
            );
        }
        add(
            &s.newest,
            SummaryCell::Newest((at.saturating_mul(1000), at, &changes.position, id)),
        );
    }

    /// The lines of `order_id`: from this batch's changes if one carries them, else as stored.
    async fn lines_of(
        &self,
        s: &Statements,
        batch: &[Changes],
        order_id: Uuid,
    ) -> Result<Vec<Line>, StoreError> {
        let in_batch = batch
            .iter()
            .filter_map(|c| c.summary.as_ref())
            .find_map(|c| {
                (c.order_id == order_id)
                    .then_some(c.lines.as_ref())
                    .flatten()
            });
        if let Some(lines) = in_batch {
            return Ok(lines.clone());
        }
        let rows = self.rows(&s.get_lines, (order_id,)).await?;
        match rows.maybe_first_row::<(Option<String>,)>().map_err(cql)? {
            Some((Some(json),)) => serde_json::from_str(&json).map_err(cql),
            _ => Ok(Vec::new()),
        }
    }

    /// Applies every stock move of a batch: per sku, the moves of the events not applied yet
    /// and their markers, in one compare-and-set; lost to a concurrent projector, it reads
    /// again and retries.
    async fn apply_stock(&self, s: &Statements, batch: &[Changes]) -> Result<(), StoreError> {
        let mut per_sku: BTreeMap<&str, Vec<(String, Vec<StockMove>)>> = BTreeMap::new();
        for change in batch.iter().flat_map(|c| &c.stock) {
            let marker = change.event_id.to_string();
            let moves = per_sku.entry(&change.sku).or_default();
            match moves.iter_mut().find(|(m, _)| *m == marker) {
                Some((_, kinds)) => kinds.push(change.kind),
                None => moves.push((marker, vec![change.kind])),
            }
        }
        for (sku, events) in per_sku {
            loop {
                let markers: Vec<&str> = events.iter().map(|(m, _)| m.as_str()).collect();
                let rows = self.rows(&s.stock_markers, (sku, &markers)).await?;
                let mut applied = Vec::new();
                for row in rows.rows::<(String,)>().map_err(cql)? {
                    applied.push(row.map_err(cql)?.0);
                }
                let fresh: Vec<&(String, Vec<StockMove>)> = events
                    .iter()
                    .filter(|(m, _)| !applied.contains(m))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                let rows = self.rows(&s.get_stock, (sku,)).await?;
                let (level, version) = match rows
                    .maybe_first_row::<(Option<i64>, Option<i64>, Option<i64>, Option<i64>)>()
                    .map_err(cql)?
                {
                    Some((available, reserved, sold, version)) => (
                        StockLevel {
                            available: available.unwrap_or(0),
                            reserved: reserved.unwrap_or(0),
                            sold: sold.unwrap_or(0),
                        },
                        version,
                    ),
                    None => (StockLevel::default(), None),
                };
                let next = fresh
                    .iter()
                    .flat_map(|(_, kinds)| kinds)
                    .fold(level, |level, kind| level.after(*kind));
                let mut cas = Batch::new(BatchType::Logged);
                cas.append_statement(s.set_stock.clone());
                let mut values = vec![StockRow::Level((
                    next.available,
                    next.reserved,
                    next.sold,
                    version.unwrap_or(0) + 1,
                    sku,
                    version,
                ))];
                for (marker, _) in &fresh {
                    cas.append_statement(s.mark_stock.clone());
                    values.push(StockRow::Marker((sku, marker.clone())));
                }
                let result = self.session.batch(&cas, values).await.map_err(cql)?;
                if lwt_applied(result.into_rows_result().map_err(cql)?)? {
                    break;
                }
                tracing::debug!(sku, "stock changed under us; reading again");
            }
        }
        Ok(())
    }
}

/// Whether a lightweight transaction applied: the `[applied]` column of its first row.
fn lwt_applied(rows: QueryRowsResult) -> Result<bool, StoreError> {
    let row = rows.first_row::<scylla::value::Row>().map_err(cql)?;
    Ok(matches!(
        row.columns.first(),
        Some(Some(CqlValue::Boolean(true)))
    ))
}

/// The values of one cell write of an order summary (the statements differ in their types).
enum SummaryCell<'a> {
    Text((i64, &'a str, Uuid)),
    Owned((i64, String, Uuid)),
    Number((i64, i64, Uuid)),
    Pair((i64, &'a str, &'a str, Uuid)),
    Step((i64, &'static str, i64, Uuid)),
    Newest((i64, i64, &'a str, Uuid)),
}

impl SerializeRow for SummaryCell<'_> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        match self {
            SummaryCell::Text(v) => v.serialize(ctx, writer),
            SummaryCell::Owned(v) => v.serialize(ctx, writer),
            SummaryCell::Number(v) => v.serialize(ctx, writer),
            SummaryCell::Pair(v) => v.serialize(ctx, writer),
            SummaryCell::Step(v) => v.serialize(ctx, writer),
            SummaryCell::Newest(v) => v.serialize(ctx, writer),
        }
    }

    fn is_empty(&self) -> bool {
        false
    }
}

type SummaryRow = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<BTreeMap<String, i64>>,
    Option<i64>,
    Option<String>,
);

fn summary(row: SummaryRow) -> Result<OrderSummary, StoreError> {
    let (order_id, customer_id, status, lines, currency, total_minor, promotion_code) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
    Ok(OrderSummary {
        order_id,
        customer_id,
        status: status.as_deref().and_then(Status::from_name),
        lines: match lines {
            Some(json) => serde_json::from_str(&json).map_err(cql)?,
            None => Vec::new(),
        },
        currency,
        total_minor,
        promotion_code,
        reason: row.7,
        detail: row.8,
        steps: row.9.unwrap_or_default(),
        updated_at: row.10.unwrap_or(i64::MIN),
        last_position: row.11,
    })
}

impl ReadStore for CqlStore {
    async fn prepare(&self) -> Result<(), StoreError> {
        for statement in schema::statements(&self.keyspace) {
            self.session
                .query_unpaged(statement, ())
                .await
                .map_err(cql)?;
        }
        self.statements().await?;
        Ok(())
    }

    async fn apply(&self, batch: &[Changes]) -> Result<(), StoreError> {
        let s = self.statements().await?;
        // Every write below commutes with every other (module docs), so they all go at once.
        let mut writes = Vec::new();
        for changes in batch {
            let mut summary = Batch::new(BatchType::Unlogged);
            let mut cells = Vec::new();
            Self::summary_batch(s, changes, &mut summary, &mut cells);
            if !cells.is_empty() {
                writes.push(Write::Batch(summary, cells));
            }
            if let Some(change) = &changes.summary {
                if let (Some(customer), Some((Step::Requested, at))) =
                    (&change.customer_id, change.step)
                {
                    writes.push(Write::Index(customer, at, change.order_id));
                }
            }
            if let Some(e) = &changes.timeline {
                writes.push(Write::Timeline(e));
            }
            if let Some(Fact::Cancelled {
                order_id,
                day,
                reason,
            }) = &changes.fact
            {
                writes.push(Write::Cancellation(*order_id, day, reason));
            }
        }
        let mut pending = Vec::with_capacity(writes.len());
        for write in writes {
            pending.push(write.run(&self.session, s));
        }
        stream::iter(pending)
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        // Revenue needs the order's lines, which an earlier write of this batch may carry.
        for changes in batch {
            if let Some(Fact::Confirmed { order_id, day }) = &changes.fact {
                let mut per_sku: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                for line in self.lines_of(s, batch, *order_id).await? {
                    let entry = per_sku.entry(line.sku).or_default();
                    entry.0 += i64::from(line.quantity);
                    entry.1 += i64::from(line.quantity) * line.unit_price_minor;
                }
                for (sku, (units, revenue)) in per_sku {
                    self.session
                        .execute_unpaged(&s.put_sale, (order_id, sku, day, units, revenue))
                        .await
                        .map_err(cql)?;
                }
            }
        }
        self.apply_stock(s, batch).await
    }

    async fn record_positions(
        &self,
        next_offsets: &[(String, i32, i64)],
    ) -> Result<(), StoreError> {
        let s = self.statements().await?;
        for (topic, partition, next) in next_offsets {
            // Written at the offset's write time: the furthest offset stays.
            self.session
                .execute_unpaged(
                    &s.put_position,
                    (*next, *next, format!("{topic}/{partition}")),
                )
                .await
                .map_err(cql)?;
        }
        Ok(())
    }

    async fn position(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        let s = self.statements().await?;
        let rows = self
            .rows(&s.get_position, (format!("{topic}/{partition}"),))
            .await?;
        Ok(rows.maybe_first_row::<(i64,)>().map_err(cql)?.map(|r| r.0))
    }

    async fn order(&self, order_id: Uuid) -> Result<Option<OrderSummary>, StoreError> {
        Ok(self.orders(&[order_id]).await?.into_iter().next())
    }

    async fn customer_orders(
        &self,
        customer_id: &str,
        limit: usize,
        page: usize,
    ) -> Result<Vec<OrderSummary>, StoreError> {
        let s = self.statements().await?;
        // The index is clustered newest first; the server pages it, `limit` rows a page.
        let mut statement = s.customer_orders.clone();
        statement.set_page_size(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let mut paging = PagingState::start();
        let mut ids = Vec::new();
        for current in 0..=page {
            let (result, next) = self
                .session
                .execute_single_page(&statement, (customer_id,), paging)
                .await
                .map_err(cql)?;
            if current == page {
                for row in result
                    .into_rows_result()
                    .map_err(cql)?
                    .rows::<(Uuid,)>()
                    .map_err(cql)?
                {
                    ids.push(row.map_err(cql)?.0);
                }
            }
            match next.into_paging_control_flow() {
                std::ops::ControlFlow::Continue(state) => paging = state,
                std::ops::ControlFlow::Break(()) => break,
            }
        }
        let mut found: HashMap<Uuid, OrderSummary> = self
            .orders(&ids)
            .await?
            .into_iter()
            .map(|o| (o.order_id, o))
            .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn timeline(&self, order_id: Uuid) -> Result<Vec<TimelineEntry>, StoreError> {
        let s = self.statements().await?;
        let rows = self.rows(&s.timeline, (order_id,)).await?;
        let mut entries = Vec::new();
        for row in rows
            .rows::<(Uuid, i64, Uuid, String, String, String)>()
            .map_err(cql)?
        {
            let (order_id, occurred_at, event_id, event_type, service, detail) =
                row.map_err(cql)?;
            entries.push(TimelineEntry {
                order_id,
                occurred_at,
                event_id,
                event_type,
                service,
                detail,
            });
        }
        // Clustered by (occurred_at, event_id) already; the server compares uuids version
        // first, so events of one millisecond are put in byte order here, as PostgreSQL does.
        entries.sort_by_key(|e| (e.occurred_at, e.event_id));
        Ok(entries)
    }

    async fn stock(&self, sku: &str) -> Result<Option<StockLevel>, StoreError> {
        let s = self.statements().await?;
        let rows = self.rows(&s.get_stock, (sku,)).await?;
        Ok(rows
            .maybe_first_row::<(Option<i64>, Option<i64>, Option<i64>, Option<i64>)>()
            .map_err(cql)?
            .filter(|row| row.3.is_some())
            .map(|(available, reserved, sold, _)| StockLevel {
                available: available.unwrap_or(0),
                reserved: reserved.unwrap_or(0),
                sold: sold.unwrap_or(0),
            }))
    }

    async fn daily_stats(&self) -> Result<DailyStats, StoreError> {
        let s = self.statements().await?;
        let rows = self.rows(&s.sales, ()).await?;
        let mut sales: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for row in rows.rows::<(String, String, i64, i64)>().map_err(cql)? {
            let (day, sku, units, revenue) = row.map_err(cql)?;
            let entry = sales.entry((day, sku)).or_default();
            entry.0 += revenue;
            entry.1 += units;
        }
        let rows = self.rows(&s.cancellations, ()).await?;
        let mut cancellations: BTreeMap<(String, String), i64> = BTreeMap::new();
        for row in rows.rows::<(String, String)>().map_err(cql)? {
            let (day, reason) = row.map_err(cql)?;
            *cancellations.entry((day, reason)).or_default() += 1;
        }
        Ok(DailyStats {
            sales: sales
                .into_iter()
                .map(|((day, sku), (revenue, units))| SkuDay {
                    day,
                    sku,
                    confirmed_revenue_minor: revenue,
                    units,
                })
                .collect(),
            cancellations: cancellations
                .into_iter()
                .map(|((day, reason), orders)| ReasonDay {
                    day,
                    reason,
                    orders,
                })
                .collect(),
        })
    }
}

impl CqlStore {
    /// The summaries of `ids` that exist, in no particular order.
    async fn orders(&self, ids: &[Uuid]) -> Result<Vec<OrderSummary>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.statements().await?;
        let rows = self.rows(&s.get_orders, (ids,)).await?;
        let mut orders = Vec::new();
        for row in rows.rows::<SummaryRow>().map_err(cql)? {
            orders.push(summary(row.map_err(cql)?)?);
        }
        Ok(orders)
    }
}

/// One write of a batch, run concurrently with the others.
enum Write<'a> {
    Batch(Batch, Vec<SummaryCell<'a>>),
    Index(&'a str, i64, Uuid),
    Timeline(&'a TimelineEntry),
    Cancellation(Uuid, &'a str, &'a str),
}

impl Write<'_> {
    async fn run(self, session: &Session, s: &Statements) -> Result<(), StoreError> {
        let result = match self {
            Write::Batch(batch, cells) => session.batch(&batch, cells).await.map(drop),
            Write::Index(customer, at, order_id) => session
                .execute_unpaged(&s.index_customer, (customer, at, order_id))
                .await
                .map(drop),
            Write::Timeline(e) => session
                .execute_unpaged(
                    &s.put_timeline,
                    (
                        e.order_id,
                        e.occurred_at,
                        e.event_id,
                        &e.event_type,
                        &e.service,
                        &e.detail,
                    ),
                )
                .await
                .map(drop),
            Write::Cancellation(order_id, day, reason) => session
                .execute_unpaged(&s.put_cancellation, (order_id, day, reason))
                .await
                .map(drop),
        };
        result.map_err(cql)
    }
}
