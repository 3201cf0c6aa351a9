//! The read models in ScyllaDB (the local stack's troupe-cql in development and tests).
//!
//! Written for what both servers do (docs/local-stack.md): equality on partition keys, prepared
//! statements, logged batches. The guards that PostgreSQL expresses in one upsert are a read,
//! a merge in Rust ([`OrderSummary::merged`]) and a write here; that is safe because one
//! projector instance owns every event of an order — all saga topics have the same partition
//! count and are keyed by order id, and the range assignor gives the same partitions of every
//! topic to the same member. Stock is the exception (an sku's events come from many orders);
//! its read-modify-write is guarded by the applied-event marker, written in the same batch.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Display;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryRowsResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::model::{Changes, Fact, OrderSummary, StockChange, StockLevel, TimelineEntry};
use crate::store::{DailyStats, ReadStore, ReasonDay, SkuDay, StoreError};

fn cql(error: impl Display) -> StoreError {
    StoreError(format!("cql: {error}"))
}

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
    get_order: PreparedStatement,
    put_order: PreparedStatement,
    index_customer: PreparedStatement,
    customer_orders: PreparedStatement,
    put_timeline: PreparedStatement,
    timeline: PreparedStatement,
    get_stock: PreparedStatement,
    /// The new level of an sku and the marker of the event that made it, together.
    stock_batch: Batch,
    stock_applied: PreparedStatement,
    put_sale: PreparedStatement,
    sales: PreparedStatement,
    put_cancellation: PreparedStatement,
    cancellations: PreparedStatement,
    get_position: PreparedStatement,
    put_position: PreparedStatement,
}

impl CqlStore {
    /// Connects to `nodes` (comma-separated `host:port`); the copy lives in `keyspace`.
    pub async fn connect(nodes: &str, keyspace: &str) -> Result<Self, StoreError> {
        let mut builder = SessionBuilder::new();
        for node in nodes.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            builder = builder.known_node(node);
        }
        // troupe-cql answers schema-agreement queries with nothing; ScyllaDB does not need
        // the wait for a single-statement DDL either (every statement names its keyspace).
        let session = builder
            .auto_await_schema_agreement(false)
            .build()
            .await
            .map_err(cql)?;
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
                let prepare = |text: String| async move {
                    self.session.prepare(text).await.map_err(cql)
                };
                let mut stock_batch = Batch::new(BatchType::Logged);
                stock_batch.append_statement(
                    prepare(format!(
                        "INSERT INTO {k}.stock (sku, available, reserved, sold) VALUES (?, ?, ?, ?)"
                    ))
                    .await?,
                );
                stock_batch.append_statement(
                    prepare(format!("INSERT INTO {k}.stock_applied (key) VALUES (?)")).await?,
                );
                Ok::<_, StoreError>(Statements {
                    get_order: prepare(format!("SELECT body FROM {k}.orders WHERE order_id = ?")).await?,
                    put_order: prepare(format!("INSERT INTO {k}.orders (order_id, body) VALUES (?, ?)")).await?,
                    index_customer: prepare(format!(
                        "INSERT INTO {k}.customer_orders (customer_id, order_id) VALUES (?, ?)"
                    ))
                    .await?,
                    customer_orders: prepare(format!(
                        "SELECT order_id FROM {k}.customer_orders WHERE customer_id = ?"
                    ))
                    .await?,
                    put_timeline: prepare(format!(
                        "INSERT INTO {k}.timeline (order_id, event_id, occurred_at, event_type, service, detail) \
                         VALUES (?, ?, ?, ?, ?, ?)"
                    ))
                    .await?,
                    timeline: prepare(format!(
                        "SELECT order_id, occurred_at, event_id, event_type, service, detail FROM {k}.timeline \
                         WHERE order_id = ?"
                    ))
                    .await?,
                    get_stock: prepare(format!(
                        "SELECT available, reserved, sold FROM {k}.stock WHERE sku = ?"
                    ))
                    .await?,
                    stock_batch,
                    stock_applied: prepare(format!("SELECT key FROM {k}.stock_applied WHERE key = ?")).await?,
                    put_sale: prepare(format!(
                        "INSERT INTO {k}.sales (order_id, sku, day, units, revenue_minor) VALUES (?, ?, ?, ?, ?)"
                    ))
                    .await?,
                    sales: prepare(format!("SELECT day, sku, units, revenue_minor FROM {k}.sales")).await?,
                    put_cancellation: prepare(format!(
                        "INSERT INTO {k}.cancellations (order_id, day, reason) VALUES (?, ?, ?)"
                    ))
                    .await?,
                    cancellations: prepare(format!("SELECT day, reason FROM {k}.cancellations")).await?,
                    get_position: prepare(format!("SELECT next_offset FROM {k}.positions WHERE key = ?")).await?,
                    put_position: prepare(format!(
                        "INSERT INTO {k}.positions (key, next_offset) VALUES (?, ?)"
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

    /// Runs a prepared write.
    async fn write(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(cql)?;
        Ok(())
    }

    async fn load_order(
        &self,
        s: &Statements,
        order_id: Uuid,
    ) -> Result<Option<OrderSummary>, StoreError> {
        let rows = self.rows(&s.get_order, (order_id,)).await?;
        let Some((body,)) = rows.maybe_first_row::<(String,)>().map_err(cql)? else {
            return Ok(None);
        };
        serde_json::from_str(&body).map(Some).map_err(cql)
    }

    /// The summary of `order_id` as this batch has it: read once per batch, then merged in
    /// memory and written once at the end.
    async fn touched<'a>(
        &self,
        s: &Statements,
        orders: &'a mut HashMap<Uuid, Touched>,
        order_id: Uuid,
    ) -> Result<&'a mut Touched, StoreError> {
        match orders.entry(order_id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let stored = self.load_order(s, order_id).await?;
                let merged = stored
                    .clone()
                    .unwrap_or_else(|| OrderSummary::empty(order_id));
                Ok(entry.insert(Touched { stored, merged }))
            }
        }
    }

    async fn apply_stock(&self, s: &Statements, change: &StockChange) -> Result<(), StoreError> {
        let marker = format!("{}/{}", change.event_id, change.sku);
        if self.rows(&s.stock_applied, (&marker,)).await?.rows_num() > 0 {
            return Ok(());
        }
        let level = self.stock(&change.sku).await?.unwrap_or_default();
        let next = level.after(change.kind);
        // The new level and the marker land together or not at all.
        self.session
            .batch(
                &s.stock_batch,
                (
                    (&change.sku, next.available, next.reserved, next.sold),
                    (&marker,),
                ),
            )
            .await
            .map_err(cql)?;
        Ok(())
    }
}

/// An order a batch touched: as stored, and as the batch's changes made it.
struct Touched {
    stored: Option<OrderSummary>,
    merged: OrderSummary,
}

impl ReadStore for CqlStore {
    async fn prepare(&self) -> Result<(), StoreError> {
        let k = &self.keyspace;
        let statements = [
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {k} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            format!("CREATE TABLE IF NOT EXISTS {k}.orders (order_id uuid PRIMARY KEY, body text)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.customer_orders \
                 (customer_id text, order_id uuid, PRIMARY KEY (customer_id, order_id))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.timeline (order_id uuid, event_id uuid, \
                 occurred_at bigint, event_type text, service text, detail text, \
                 PRIMARY KEY (order_id, event_id))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.stock \
                 (sku text PRIMARY KEY, available bigint, reserved bigint, sold bigint)"
            ),
            format!("CREATE TABLE IF NOT EXISTS {k}.stock_applied (key text PRIMARY KEY)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.sales (order_id uuid, sku text, day text, \
                 units bigint, revenue_minor bigint, PRIMARY KEY (order_id, sku))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.cancellations \
                 (order_id uuid PRIMARY KEY, day text, reason text)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.positions (key text PRIMARY KEY, next_offset bigint)"
            ),
        ];
        for statement in statements {
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
        let mut orders: HashMap<Uuid, Touched> = HashMap::new();
        let mut customers: BTreeSet<(String, Uuid)> = BTreeSet::new();
        for changes in batch {
            if let Some(change) = &changes.summary {
                let at = changes.timeline.as_ref().map_or(0, |t| t.occurred_at);
                let touched = self.touched(s, &mut orders, change.order_id).await?;
                let current =
                    std::mem::replace(&mut touched.merged, OrderSummary::empty(change.order_id));
                touched.merged = current.merged(change, at, &changes.position);
                // Indexed by every event that names the customer, so a retry after a failure
                // between the writes still indexes the order.
                if let Some(customer) = &change.customer_id {
                    customers.insert((customer.clone(), change.order_id));
                }
            }
            if let Some(e) = &changes.timeline {
                self.write(
                    &s.put_timeline,
                    (
                        e.order_id,
                        e.event_id,
                        e.occurred_at,
                        &e.event_type,
                        &e.service,
                        &e.detail,
                    ),
                )
                .await?;
            }
            for change in &changes.stock {
                self.apply_stock(s, change).await?;
            }
            match &changes.fact {
                Some(Fact::Confirmed { order_id, day }) => {
                    let order = &self.touched(s, &mut orders, *order_id).await?.merged;
                    let mut per_sku: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                    for line in &order.lines {
                        let entry = per_sku.entry(line.sku.clone()).or_default();
                        entry.0 += i64::from(line.quantity);
                        entry.1 += i64::from(line.quantity) * line.unit_price_minor;
                    }
                    for (sku, (units, revenue)) in per_sku {
                        self.write(&s.put_sale, (order_id, sku, day, units, revenue))
                            .await?;
                    }
                }
                Some(Fact::Cancelled {
                    order_id,
                    day,
                    reason,
                }) => {
                    self.write(&s.put_cancellation, (order_id, day, reason))
                        .await?;
                }
                None => {}
            }
        }
        // Each order's summary once per batch, and only if the batch changed it.
        for (order_id, touched) in &orders {
            if touched.stored.as_ref() != Some(&touched.merged)
                && touched.merged != OrderSummary::empty(*order_id)
            {
                let body = serde_json::to_string(&touched.merged).map_err(cql)?;
                self.write(&s.put_order, (order_id, body)).await?;
            }
        }
        for (customer, order_id) in &customers {
            self.write(&s.index_customer, (customer, order_id)).await?;
        }
        Ok(())
    }

    async fn record_positions(
        &self,
        next_offsets: &[(String, i32, i64)],
    ) -> Result<(), StoreError> {
        let s = self.statements().await?;
        for (topic, partition, next) in next_offsets {
            let current = self.position(topic, *partition).await?.unwrap_or(0);
            if *next > current {
                self.write(&s.put_position, (format!("{topic}/{partition}"), *next))
                    .await?;
            }
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
        let s = self.statements().await?;
        self.load_order(s, order_id).await
    }

    async fn customer_orders(
        &self,
        customer_id: &str,
        limit: usize,
        page: usize,
    ) -> Result<Vec<OrderSummary>, StoreError> {
        let s = self.statements().await?;
        // The customer's whole index partition, sorted here: neither clustering order nor
        // ORDER BY is reproduced by the local server, and a customer's orders are few.
        let rows = self.rows(&s.customer_orders, (customer_id,)).await?;
        let mut orders = Vec::new();
        for row in rows.rows::<(Uuid,)>().map_err(cql)? {
            let (order_id,) = row.map_err(cql)?;
            if let Some(order) = self.load_order(s, order_id).await? {
                orders.push(order);
            }
        }
        orders.sort_by(|a, b| {
            b.sort_time()
                .cmp(&a.sort_time())
                .then(a.order_id.cmp(&b.order_id))
        });
        Ok(orders.into_iter().skip(limit * page).take(limit).collect())
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
        entries.sort_by_key(|e| (e.occurred_at, e.event_id));
        Ok(entries)
    }

    async fn stock(&self, sku: &str) -> Result<Option<StockLevel>, StoreError> {
        let s = self.statements().await?;
        let rows = self.rows(&s.get_stock, (sku,)).await?;
        Ok(rows.maybe_first_row::<(i64, i64, i64)>().map_err(cql)?.map(
            |(available, reserved, sold)| StockLevel {
                available,
                reserved,
                sold,
            },
        ))
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
