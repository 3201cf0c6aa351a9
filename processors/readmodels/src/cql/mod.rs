//! The read models in ScyllaDB (Apache Cassandra in development and tests: the same CQL).
//!
//! Written the ScyllaDB way: no read before a write. Each order field is its own cell, and the
//! cell's write time (`USING TIMESTAMP`) is derived from the event, so the server's
//! last-write-wins rule *is* the merge rule and writes commute: any order of arrival, any
//! repetition and any number of projector instances feeding one copy end in the same rows.
//!
//! | cell | write time | so the cell holds |
//! |---|---|---|
//! | `status` | its rank ([`Status::rank`](crate::model::Status::rank)) + 1 | the most advanced status |
//! | set-once fields, `steps[...]` | [`EARLIEST_WINS`] − the event's time | the earliest event's value |
//! | `updated_at`, `last_position` | the event's time in µs | the newest event's; a tie goes to the greater position text, as the server breaks ties by value |
//! | `positions.next_offset` | the offset | the furthest offset |
//!
//! Stock is the exception: an sku's level is a sum over many orders' events. It is changed
//! with a lightweight transaction per sku and batch (compare-and-set on a version), together
//! with the markers of the events applied, so concurrent projectors neither lose nor repeat a
//! change.
//!
//! The store's parts: the prepared statements (`statements.rs`), the summary cells written and
//! read back (`orders.rs`), the stock compare-and-set (`stock.rs`), the tables (`schema.rs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;

use futures::stream::{self, StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryRowsResult;
use scylla::response::PagingState;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::model::{Changes, Fact, OrderSummary, Step, StockLevel, TimelineEntry};
use crate::store::{DailyStats, ReadStore, ReasonDay, SkuDay, StoreError};

use self::orders::SummaryCell;
use self::statements::Statements;

mod orders;
mod schema;
mod statements;
mod stock;

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
