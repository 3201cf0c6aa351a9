//! What each event changes in the read models: pure, no I/O, the same for every store.
//!
//! Idempotence and order-safety come from the shape of the changes, not from the order they
//! arrive in:
//! - the order's status only moves up a rank ([`Status::rank`]); a terminal status is never
//!   left. An older event arriving after a newer one cannot move it back;
//! - every other summary field is set once (the first value written wins, and every event
//!   that writes a field writes the same value);
//! - timeline entries are keyed by event id;
//! - stock changes are deltas applied once per event id;
//! - analytics facts are keyed by order (and sku).

use serde::Serialize;
use troupe_events::domain::{OrderLine, SkuQuantity};
use troupe_events::{Envelope, Event};
use uuid::Uuid;

/// Where an order stands, as the read model shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// The storefront sent PlaceOrder; the order service has not answered yet.
    Requested,
    Placed,
    Reserved,
    Paid,
    Shipped,
    Confirmed,
    Cancelled,
    Rejected,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Requested,
        Status::Placed,
        Status::Reserved,
        Status::Paid,
        Status::Shipped,
        Status::Confirmed,
        Status::Cancelled,
        Status::Rejected,
    ];

    /// Statuses only move to a higher rank. Terminal statuses share the top rank, and the
    /// saga has one arbiter, so an order never reaches two of them.
    pub fn rank(self) -> i32 {
        match self {
            Status::Requested => 0,
            Status::Placed => 1,
            Status::Reserved => 2,
            Status::Paid => 3,
            Status::Shipped => 4,
            Status::Confirmed | Status::Cancelled | Status::Rejected => 10,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Requested => "REQUESTED",
            Status::Placed => "PLACED",
            Status::Reserved => "RESERVED",
            Status::Paid => "PAID",
            Status::Shipped => "SHIPPED",
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 10
    }
}

/// One line of an order, as the read model keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// The steps of an order whose time the summary records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Requested,
    Placed,
    Reserved,
    Paid,
    Shipped,
    Confirmed,
    Cancelled,
    Rejected,
    Released,
    Committed,
    Refunded,
    ShipmentCancelled,
    Notified,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Step::Requested,
        Step::Placed,
        Step::Reserved,
        Step::Paid,
        Step::Shipped,
        Step::Confirmed,
        Step::Cancelled,
        Step::Rejected,
        Step::Released,
        Step::Committed,
        Step::Refunded,
        Step::ShipmentCancelled,
        Step::Notified,
    ];

    /// The column (PostgreSQL) or field (JSON) name: `placed_at`, …
    pub fn column(self) -> &'static str {
        match self {
            Step::Requested => "requested_at",
            Step::Placed => "placed_at",
            Step::Reserved => "reserved_at",
            Step::Paid => "paid_at",
            Step::Shipped => "shipped_at",
            Step::Confirmed => "confirmed_at",
            Step::Cancelled => "cancelled_at",
            Step::Rejected => "rejected_at",
            Step::Released => "released_at",
            Step::Committed => "committed_at",
            Step::Refunded => "refunded_at",
            Step::ShipmentCancelled => "shipment_cancelled_at",
            Step::Notified => "notified_at",
        }
    }
}

/// What one event tells the order summary. `None` fields are not touched.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SummaryChange {
    pub order_id: Uuid,
    pub status: Option<Status>,
    pub customer_id: Option<String>,
    pub lines: Option<Vec<Line>>,
    pub currency: Option<String>,
    pub total_minor: Option<i64>,
    pub promotion_code: Option<String>,
    /// Why the order was cancelled or rejected, and the detail.
    pub reason: Option<(String, String)>,
    pub step: Option<(Step, i64)>,
}

/// An order as the read model shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OrderSummary {
    pub order_id: Uuid,
    pub customer_id: Option<String>,
    /// `None` until an event that sets a status arrived (a notification can come first).
    pub status: Option<Status>,
    pub lines: Vec<Line>,
    pub currency: Option<String>,
    pub total_minor: Option<i64>,
    /// The campaign code the customer entered (requests and OrderPlaced from v2 on).
    #[serde(default)]
    pub promotion_code: Option<String>,
    /// The cancellation reason symbol, or `REJECTED`.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// When each step happened, ms since the epoch, keyed `placed_at`, `reserved_at`, …
    pub steps: std::collections::BTreeMap<String, i64>,
    /// The newest event time applied.
    pub updated_at: i64,
    /// Where the newest event applied was read (ties of time broken by the position's text).
    pub last_position: Option<String>,
}

impl OrderSummary {
    pub fn empty(order_id: Uuid) -> Self {
        Self {
            order_id,
            customer_id: None,
            status: None,
            lines: Vec::new(),
            currency: None,
            total_minor: None,
            promotion_code: None,
            reason: None,
            detail: None,
            steps: Default::default(),
            updated_at: i64::MIN,
            last_position: None,
        }
    }

    /// The summary after `change`, read at `position`, occurring at `at`: the rules every store
    /// follows (a store may express them in its own query language instead).
    pub fn merged(mut self, change: &SummaryChange, at: i64, position: &str) -> Self {
        let rank = |s: Option<Status>| s.map_or(-1, Status::rank);
        if rank(change.status) > rank(self.status) {
            self.status = change.status;
        }
        if self.customer_id.is_none() {
            self.customer_id.clone_from(&change.customer_id);
        }
        if self.lines.is_empty() {
            if let Some(lines) = &change.lines {
                self.lines.clone_from(lines);
            }
        }
        if self.currency.is_none() {
            self.currency.clone_from(&change.currency);
        }
        if self.total_minor.is_none() {
            self.total_minor = change.total_minor;
        }
        if self.promotion_code.is_none() {
            self.promotion_code.clone_from(&change.promotion_code);
        }
        if self.reason.is_none() {
            if let Some((reason, detail)) = &change.reason {
                self.reason = Some(reason.clone());
                self.detail = Some(detail.clone());
            }
        }
        if let Some((step, time)) = change.step {
            self.steps.entry(step.column().to_owned()).or_insert(time);
        }
        // The newest event's position; events of the same millisecond are ordered by position
        // (as text), so every copy agrees whatever order the topics were read in.
        let newest = (self.updated_at, self.last_position.as_deref().unwrap_or(""));
        if (at, position) >= newest {
            self.updated_at = at;
            self.last_position = Some(position.to_owned());
        }
        self
    }
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    pub order_id: Uuid,
    pub occurred_at: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub service: String,
    pub detail: String,
}

/// A change of one sku's stock, applied once per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockChange {
    pub sku: String,
    pub event_id: Uuid,
    pub kind: StockMove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockMove {
    /// An adjustment as the inventory applies it: `delta`, or to `set_to`, never below zero.
    Adjust {
        delta: i32,
        set_to: Option<i32>,
    },
    Reserve(i32),
    Release(i32),
    Commit(i32),
}

/// Stock of one sku as the read model shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StockLevel {
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
}

impl StockLevel {
    /// The level after `kind`, with the inventory's own rule for adjustments.
    pub fn after(self, kind: StockMove) -> StockLevel {
        let mut next = self;
        match kind {
            StockMove::Adjust { delta, set_to } => {
                next.available = match set_to {
                    Some(target) => i64::from(target.max(0)),
                    None => (self.available + i64::from(delta)).max(0),
                };
            }
            StockMove::Reserve(q) => {
                next.available -= i64::from(q);
                next.reserved += i64::from(q);
            }
            StockMove::Release(q) => {
                next.available += i64::from(q);
                next.reserved -= i64::from(q);
            }
            StockMove::Commit(q) => {
                next.reserved -= i64::from(q);
                next.sold += i64::from(q);
            }
        }
        next
    }
}

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
    fn ranks_only_rise_along_the_happy_path_and_terminals_are_top() {
        let path = [
            Status::Requested,
            Status::Placed,
            Status::Reserved,
            Status::Paid,
            Status::Shipped,
            Status::Confirmed,
        ];
        assert!(path.windows(2).all(|w| w[0].rank() < w[1].rank()));
        for status in Status::ALL {
            assert_eq!(
                status.is_terminal(),
                status.rank() == Status::Confirmed.rank()
            );
            assert_eq!(Status::from_name(status.name()), Some(status));
        }
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

    #[rstest]
    #[case(StockMove::Reserve(3), StockLevel { available: 7, reserved: 3, sold: 0 })]
    #[case(StockMove::Release(0), StockLevel { available: 10, reserved: 0, sold: 0 })]
    #[case(StockMove::Adjust { delta: -20, set_to: None }, StockLevel { available: 0, reserved: 0, sold: 0 })]
    #[case(StockMove::Adjust { delta: 5, set_to: Some(2) }, StockLevel { available: 2, reserved: 0, sold: 0 })]
    fn stock_moves(#[case] kind: StockMove, #[case] expected: StockLevel) {
        let start = StockLevel {
            available: 10,
            ..StockLevel::default()
        };
        assert_eq!(start.after(kind), expected);
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
    fn reserve_then_commit_moves_units_to_sold_and_conserves_them() {
        let level = StockLevel {
            available: 10,
            ..StockLevel::default()
        }
        .after(StockMove::Reserve(4))
        .after(StockMove::Commit(4));
        assert_eq!(
            level,
            StockLevel {
                available: 6,
                reserved: 0,
                sold: 4
            }
        );
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
