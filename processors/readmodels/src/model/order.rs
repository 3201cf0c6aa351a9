//! An order as the read models show it: its [`Status`] and [`Step`]s, the summary and the
//! rules that merge a change into it, and its timeline entries.

use serde::Serialize;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
