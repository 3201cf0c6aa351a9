//! Stock levels: the one model that is a sum over many orders' events, so it is changed by a
//! lightweight transaction per sku (compare-and-set on a version) with the markers of the
//! events applied.

use std::collections::BTreeMap;

use scylla::response::query_result::QueryRowsResult;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlValue;

use super::statements::Statements;
use super::{cql, CqlStore};
use crate::model::{Changes, StockLevel, StockMove};
use crate::store::StoreError;

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
    /// Applies every stock move of a batch: per sku, the moves of the events not applied yet
    /// and their markers, in one compare-and-set; lost to a concurrent projector, it reads
    /// again and retries.
    pub(super) async fn apply_stock(
        &self,
        s: &Statements,
        batch: &[Changes],
    ) -> Result<(), StoreError> {
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
                // The level is read before the markers: a writer that commits between the two
                // reads changes the version, so the compare-and-set below fails and reads again.
                // Read the other way round, a marker missed by the first read could be counted
                // again in a level that already includes it.
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
