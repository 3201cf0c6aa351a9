//! What one event changes in the read models: [`changes`], the [`Changes`] it returns, and the
//! analytics [`Fact`]s with their UTC [`day`].

use troupe_events::domain::{OrderLine, SkuQuantity};
use troupe_events::{Envelope, Event};
use uuid::Uuid;

use super::order::{Line, Status, Step, SummaryChange, TimelineEntry};
use super::stock::{StockChange, StockMove};

/// A fact of the analytics model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// The order was confirmed on `day` (UTC, `YYYY-MM-DD`): its lines count as revenue.
    Confirmed { order_id: Uuid, day: String },
    /// The order was cancelled on `day` for `reason`.
    Cancelled {
        order_id: Uuid,
        day: String,
        reason: String,
    },
}

/// Everything one event changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changes {
    /// Where the event was read, `topic/partition@offset`: the summary's last applied position.
    pub position: String,
    /// The event that caused this one (the causation tree of `troupe trace`).
    pub causation_id: Option<Uuid>,
    pub summary: Option<SummaryChange>,
    pub timeline: Option<TimelineEntry>,
    pub stock: Vec<StockChange>,
    pub fact: Option<Fact>,
}

/// The UTC day of a time in milliseconds since the epoch, `YYYY-MM-DD`.
pub fn day(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one function.
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", if m <= 2 { y + 1 } else { y })
}

fn lines(lines: &[OrderLine]) -> Vec<Line> {
    lines
        .iter()
        .map(|l| Line {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price_minor: l.unit_price,
        })
        .collect()
}

fn units(lines: &[SkuQuantity]) -> String {
    let total: i64 = lines.iter().map(|l| i64::from(l.quantity)).sum();
    format!("{total} units of {} skus", lines.len())
}

fn money(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", minor / 100, (minor % 100).abs())
}

/// What `envelope` changes. Events not about an order (stock adjustments) change only stock.
pub fn changes(envelope: &Envelope) -> Changes {
    let meta = &envelope.meta;
    let at = meta.occurred_at;
    let mut summary = SummaryChange {
        order_id: meta.order_id,
        ..SummaryChange::default()
    };
    let mut stock = Vec::new();
    let mut fact = None;
    let stock_of = |lines: &[SkuQuantity], kind: fn(i32) -> StockMove| -> Vec<StockChange> {
        lines
            .iter()
            .map(|l| StockChange {
                sku: l.sku.clone(),
                event_id: meta.event_id,
                kind: kind(l.quantity),
            })
            .collect()
    };
    let detail = match &envelope.event {
        Event::PlaceOrder {
            customer_id,
            lines: order_lines,
            currency,
            promotion_code,
            ..
        } => {
            summary.status = Some(Status::Requested);
            summary.customer_id = Some(customer_id.clone());
            summary.lines = Some(lines(order_lines));
            summary.currency = Some(currency.clone());
            summary.promotion_code.clone_from(promotion_code);
            summary.step = Some((Step::Requested, at));
            format!("{} lines", order_lines.len())
        }
        Event::OrderCancellationRequested { reason } => format!("asked: {reason}"),
        Event::OrderPlaced {
            customer_id,
            lines: order_lines,
            currency,
            total,
            promotion_code,
            ..
        } => {
            summary.status = Some(Status::Placed);
            summary.customer_id = Some(customer_id.clone());
            summary.lines = Some(lines(order_lines));
            summary.currency = Some(currency.clone());
            summary.total_minor = Some(*total);
            summary.promotion_code.clone_from(promotion_code);
            summary.step = Some((Step::Placed, at));
            format!("total {}", money(*total, currency))
        }
        Event::OrderRejected {
            customer_id,
            reason,
        } => {
            summary.status = Some(Status::Rejected);
            summary.customer_id = Some(customer_id.clone());
            summary.reason = Some(("REJECTED".into(), reason.clone()));
            summary.step = Some((Step::Rejected, at));
            reason.clone()
        }
        Event::OrderConfirmed {
            customer_id,
            shipment_id,
        } => {
            summary.status = Some(Status::Confirmed);
            summary.customer_id = Some(customer_id.clone());
            summary.step = Some((Step::Confirmed, at));
            fact = Some(Fact::Confirmed {
                order_id: meta.order_id,
                day: day(at),
            });
            format!("shipment {shipment_id}")
        }
        Event::OrderCancelled {
            customer_id,
            reason,
            detail,
        } => {
            summary.status = Some(Status::Cancelled);
            summary.customer_id = Some(customer_id.clone());
            summary.reason = Some((reason.symbol().into(), detail.clone()));
            summary.step = Some((Step::Cancelled, at));
            fact = Some(Fact::Cancelled {
                order_id: meta.order_id,
                day: day(at),
                reason: reason.symbol().into(),
            });
            format!("{}: {detail}", reason.symbol())
        }
        Event::StockReserved {
            lines: reserved,
            total,
            ..
        } => {
            summary.status = Some(Status::Reserved);
            summary.step = Some((Step::Reserved, at));
            stock = stock_of(reserved, StockMove::Reserve);
            format!(
                "{} for {}",
                units(reserved),
                money(total.minor, &total.currency)
            )
        }
        Event::StockRejected { shortages } => {
            let skus: Vec<&str> = shortages.iter().map(|s| s.sku.as_str()).collect();
            format!("short of {}", skus.join(", "))
        }
        Event::StockReservationExpired { reservation_id } => {
            format!("reservation {reservation_id} expired")
        }
        Event::StockReleased {
            lines: released, ..
        } => {
            summary.step = Some((Step::Released, at));
            stock = stock_of(released, StockMove::Release);
            units(released)
        }
        Event::StockCommitted {
            lines: committed, ..
        } => {
            summary.step = Some((Step::Committed, at));
            stock = stock_of(committed, StockMove::Commit);
            units(committed)
        }
        Event::StockAdjusted { sku, delta, set_to } => {
            stock.push(StockChange {
                sku: sku.clone(),
                event_id: meta.event_id,
                kind: StockMove::Adjust {
                    delta: *delta,
                    set_to: *set_to,
                },
            });
            String::new()
        }
        Event::PaymentAuthorized { amount, .. } => {
            summary.status = Some(Status::Paid);
            summary.step = Some((Step::Paid, at));
            money(amount.minor, &amount.currency)
        }
        Event::PaymentDeclined { reason, .. } => reason.clone(),
        Event::PaymentRefunded { amount, .. } => {
            summary.step = Some((Step::Refunded, at));
            money(amount.minor, &amount.currency)
        }
        Event::ShipmentScheduled {
            shipment_id,
            carrier,
            country,
        } => {
            summary.status = Some(Status::Shipped);
            summary.step = Some((Step::Shipped, at));
            format!("{shipment_id} with {carrier} to {country}")
        }
        Event::ShipmentFailed { reason } => reason.clone(),
        Event::ShipmentCancelled { shipment_id } => {
            summary.step = Some((Step::ShipmentCancelled, at));
            shipment_id.clone()
        }
        Event::CustomerNotified { kind, .. } => {
            summary.step = Some((Step::Notified, at));
            kind.symbol().to_owned()
        }
    };
    if meta.order_id.is_nil() {
        return Changes {
            stock,
            ..Changes::default()
        };
    }
    Changes {
        position: String::new(),
        causation_id: meta.causation_id,
        summary: Some(summary),
        timeline: Some(TimelineEntry {
            order_id: meta.order_id,
            occurred_at: at,
            event_id: meta.event_id,
            event_type: envelope.event_type().name().to_owned(),
            service: meta.producer.clone(),
            detail,
        }),
        stock,
        fact,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use troupe_events::{samples, EventType};

    use super::*;
    use crate::model::OrderSummary;

    #[rstest]
    #[case(0, "1970-01-01")]
    #[case(951_782_400_000, "2000-02-29")]
    #[case(1_700_000_000_000, "2023-11-14")]
    #[case(1_795_305_599_999, "2026-11-21")]
    #[case(-1, "1969-12-31")]
    fn days_are_utc_calendar_days(#[case] ms: i64, #[case] expected: &str) {
        assert_eq!(day(ms), expected);
    }

    #[test]
    fn every_event_about_an_order_has_a_timeline_entry_and_a_summary() {
        for event_type in EventType::ALL {
            let envelope = samples::sample(event_type, Uuid::now_v7());
            let changes = changes(&envelope);
            if event_type == EventType::StockAdjusted {
                assert!(changes.summary.is_none() && changes.timeline.is_none());
                assert_eq!(changes.stock.len(), 1);
                continue;
            }
            let entry = changes.timeline.expect("timeline entry");
            assert_eq!(entry.event_id, envelope.meta.event_id);
            assert_eq!(entry.event_type, event_type.name());
            assert_eq!(changes.summary.unwrap().order_id, envelope.meta.order_id);
        }
    }

    #[test]
    fn a_promotion_code_is_kept_when_an_older_order_placed_has_none() {
        // The request (PlaceOrder v2) carries a code; an order service still writing
        // OrderPlaced v1 drops it, and the summary keeps what the request said.
        let order_id = Uuid::now_v7();
        let request = samples::sample(EventType::PlaceOrder, order_id);
        let mut placed = samples::sample(EventType::OrderPlaced, order_id);
        if let Event::OrderPlaced { promotion_code, .. } = &mut placed.event {
            *promotion_code = None;
        }
        let mut summary = OrderSummary::empty(order_id);
        for (i, envelope) in [request, placed].iter().enumerate() {
            let change = changes(envelope).summary.expect("a summary change");
            summary = summary.merged(&change, i as i64, &format!("t/0@{i}"));
        }
        assert_eq!(summary.promotion_code.as_deref(), Some("SPRING-10"));
        assert_eq!(summary.status, Some(Status::Placed));
    }

    #[test]
    fn confirmations_and_cancellations_are_facts_of_their_day() {
        let mut confirmed = samples::sample(EventType::OrderConfirmed, Uuid::now_v7());
        confirmed.meta.occurred_at = 1_700_000_000_000;
        assert_eq!(
            changes(&confirmed).fact,
            Some(Fact::Confirmed {
                order_id: confirmed.meta.order_id,
                day: "2023-11-14".into()
            })
        );
        let cancelled = samples::sample(EventType::OrderCancelled, Uuid::now_v7());
        assert!(matches!(
            changes(&cancelled).fact,
            Some(Fact::Cancelled { .. })
        ));
    }
}
