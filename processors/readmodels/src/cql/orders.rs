//! The `orders` table: how one event's summary change is written as cells (each at the write
//! time that makes it merge, see the module docs of `cql`), and how rows are read back as
//! [`OrderSummary`]s.

use std::collections::BTreeMap;

use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::statement::batch::Batch;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::statements::Statements;
use super::{cql, CqlStore, EARLIEST_WINS};
use crate::model::{Changes, Line, OrderSummary, Status};
use crate::store::StoreError;

/// The values of one cell write of an order summary (the statements differ in their types).
pub(super) enum SummaryCell<'a> {
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

impl CqlStore {
    /// The statements that record what one event says about its order, as one batch on the
    /// order's partition.
    pub(super) fn summary_batch<'a>(
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
    pub(super) async fn lines_of(
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

    /// The summaries of `ids` that exist, in no particular order.
    pub(super) async fn orders(&self, ids: &[Uuid]) -> Result<Vec<OrderSummary>, StoreError> {
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
