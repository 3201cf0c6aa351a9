//! The saga's events as handlers see them: always the current version, money in minor units.
//!
//! Avro wire types live in [`crate::avro`]; this module knows nothing of encodings.

use uuid::Uuid;

/// Carried by every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Unique per event; consumers dedupe on it.
    pub event_id: Uuid,
    /// The saga (also the message key). The nil uuid for events not about one order
    /// (stock adjustments).
    pub order_id: Uuid,
    /// Shared by every event of one saga run.
    pub correlation_id: Uuid,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    /// Milliseconds since the Unix epoch.
    pub occurred_at: i64,
    /// The producing service.
    pub producer: String,
}

impl Metadata {
    /// Metadata for an event caused by `cause`, in the same saga.
    pub fn caused_by(cause: &Metadata, producer: &str, now_ms: i64) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            order_id: cause.order_id,
            correlation_id: cause.correlation_id,
            causation_id: Some(cause.event_id),
            occurred_at: now_ms,
            producer: producer.to_owned(),
        }
    }

    /// Metadata for an event a timer fires about an order: caused by the last event the timer's
    /// row recorded.
    pub fn fired(
        order_id: Uuid,
        correlation_id: Uuid,
        cause_event_id: Uuid,
        producer: &str,
        now_ms: i64,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            order_id,
            correlation_id,
            causation_id: Some(cause_event_id),
            occurred_at: now_ms,
            producer: producer.to_owned(),
        }
    }

    /// Metadata for the first event of a saga (or of a standalone event).
    pub fn origin(order_id: Uuid, producer: &str, now_ms: i64) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            order_id,
            correlation_id: order_id,
            causation_id: None,
            occurred_at: now_ms,
            producer: producer.to_owned(),
        }
    }
}

/// An amount in minor units (cents) of a currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Money {
    pub minor: i64,
    pub currency: String,
}

/// Converts a major-unit amount as v1 events carry it (a double) to minor units, rounding to
/// the nearest cent. Every currency troupe handles has two decimals.
pub fn to_minor(major: f64) -> i64 {
    (major * 100.0).round() as i64
}

/// Minor units back to the major-unit double of v1 events.
pub fn to_major(minor: i64) -> f64 {
    minor as f64 / 100.0
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
    /// Minor units of the order currency.
    pub unit_price: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub street: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuQuantity {
    pub sku: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CancellationReason {
    OutOfStock,
    PaymentDeclined,
    ShipmentFailed,
    ReservationExpired,
    CustomerRequest,
}

impl CancellationReason {
    pub const ALL: [CancellationReason; 5] = [
        CancellationReason::OutOfStock,
        CancellationReason::PaymentDeclined,
        CancellationReason::ShipmentFailed,
        CancellationReason::ReservationExpired,
        CancellationReason::CustomerRequest,
    ];

    /// The Avro enum symbol, also used as a metric label and in the databases.
    pub fn symbol(self) -> &'static str {
        match self {
            CancellationReason::OutOfStock => "OUT_OF_STOCK",
            CancellationReason::PaymentDeclined => "PAYMENT_DECLINED",
            CancellationReason::ShipmentFailed => "SHIPMENT_FAILED",
            CancellationReason::ReservationExpired => "RESERVATION_EXPIRED",
            CancellationReason::CustomerRequest => "CUSTOMER_REQUEST",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.symbol() == symbol)
    }
}

/// The kind of customer message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    Confirmation,
    Cancellation,
    Rejection,
}

impl NotificationKind {
    pub fn symbol(self) -> &'static str {
        match self {
            NotificationKind::Confirmation => "CONFIRMATION",
            NotificationKind::Cancellation => "CANCELLATION",
            NotificationKind::Rejection => "REJECTION",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Self> {
        [
            NotificationKind::Confirmation,
            NotificationKind::Cancellation,
            NotificationKind::Rejection,
        ]
        .into_iter()
        .find(|k| k.symbol() == symbol)
    }
}

/// Every event of the saga, current version.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PlaceOrder {
        customer_id: String,
        lines: Vec<OrderLine>,
        currency: String,
        shipping_address: Address,
        /// A campaign code the customer entered (PlaceOrder v2 on).
        promotion_code: Option<String>,
    },
    OrderCancellationRequested {
        reason: String,
    },
    OrderPlaced {
        customer_id: String,
        lines: Vec<OrderLine>,
        currency: String,
        shipping_address: Address,
        /// Minor units.
        total: i64,
        /// Carried over from the request (OrderPlaced v2 on).
        promotion_code: Option<String>,
    },
    OrderRejected {
        customer_id: String,
        reason: String,
    },
    OrderConfirmed {
        customer_id: String,
        shipment_id: String,
    },
    OrderCancelled {
        customer_id: String,
        reason: CancellationReason,
        detail: String,
    },
    StockReserved {
        reservation_id: String,
        lines: Vec<SkuQuantity>,
        customer_id: String,
        total: Money,
        /// Milliseconds since the epoch.
        expires_at: i64,
    },
    StockRejected {
        shortages: Vec<Shortage>,
    },
    StockReservationExpired {
        reservation_id: String,
    },
    StockReleased {
        reservation_id: String,
        lines: Vec<SkuQuantity>,
    },
    StockCommitted {
        reservation_id: String,
        lines: Vec<SkuQuantity>,
    },
    StockAdjusted {
        sku: String,
        delta: i32,
        set_to: Option<i32>,
    },
    PaymentAuthorized {
        payment_id: String,
        customer_id: String,
        amount: Money,
    },
    PaymentDeclined {
        customer_id: String,
        reason: String,
    },
    PaymentRefunded {
        payment_id: String,
        customer_id: String,
        amount: Money,
    },
    ShipmentScheduled {
        shipment_id: String,
        carrier: String,
        country: String,
    },
    ShipmentFailed {
        reason: String,
    },
    ShipmentCancelled {
        shipment_id: String,
    },
    CustomerNotified {
        notification_id: String,
        customer_id: String,
        kind: NotificationKind,
        message: String,
    },
}

/// The type of an event, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    PlaceOrder,
    OrderCancellationRequested,
    OrderPlaced,
    OrderRejected,
    OrderConfirmed,
    OrderCancelled,
    StockReserved,
    StockRejected,
    StockReservationExpired,
    StockReleased,
    StockCommitted,
    StockAdjusted,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentRefunded,
    ShipmentScheduled,
    ShipmentFailed,
    ShipmentCancelled,
    CustomerNotified,
}

impl EventType {
    pub const ALL: [EventType; 19] = [
        EventType::PlaceOrder,
        EventType::OrderCancellationRequested,
        EventType::OrderPlaced,
        EventType::OrderRejected,
        EventType::OrderConfirmed,
        EventType::OrderCancelled,
        EventType::StockReserved,
        EventType::StockRejected,
        EventType::StockReservationExpired,
        EventType::StockReleased,
        EventType::StockCommitted,
        EventType::StockAdjusted,
        EventType::PaymentAuthorized,
        EventType::PaymentDeclined,
        EventType::PaymentRefunded,
        EventType::ShipmentScheduled,
        EventType::ShipmentFailed,
        EventType::ShipmentCancelled,
        EventType::CustomerNotified,
    ];

    /// The position of this type in [`EventType::ALL`], for tables indexed by event type.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The short name, e.g. `OrderPlaced` (a metric label).
    pub fn name(self) -> &'static str {
        match self {
            EventType::PlaceOrder => "PlaceOrder",
            EventType::OrderCancellationRequested => "OrderCancellationRequested",
            EventType::OrderPlaced => "OrderPlaced",
            EventType::OrderRejected => "OrderRejected",
            EventType::OrderConfirmed => "OrderConfirmed",
            EventType::OrderCancelled => "OrderCancelled",
            EventType::StockReserved => "StockReserved",
            EventType::StockRejected => "StockRejected",
            EventType::StockReservationExpired => "StockReservationExpired",
            EventType::StockReleased => "StockReleased",
            EventType::StockCommitted => "StockCommitted",
            EventType::StockAdjusted => "StockAdjusted",
            EventType::PaymentAuthorized => "PaymentAuthorized",
            EventType::PaymentDeclined => "PaymentDeclined",
            EventType::PaymentRefunded => "PaymentRefunded",
            EventType::ShipmentScheduled => "ShipmentScheduled",
            EventType::ShipmentFailed => "ShipmentFailed",
            EventType::ShipmentCancelled => "ShipmentCancelled",
            EventType::CustomerNotified => "CustomerNotified",
        }
    }

    /// The full name of its current version's record, e.g. `troupe.orders.v3.OrderPlaced`.
    pub fn record_name(self) -> &'static str {
        crate::catalog::current(self).record_name()
    }

    /// The event type of a record full name, of any version.
    pub fn from_record_name(name: &str) -> Option<Self> {
        crate::catalog::event_type_of(name)
    }

    /// The topic this event travels on.
    pub fn topic(self) -> &'static str {
        use crate::topics;
        use EventType::*;
        match self {
            PlaceOrder | OrderCancellationRequested => topics::ORDER_COMMANDS,
            OrderPlaced | OrderRejected | OrderConfirmed | OrderCancelled => topics::ORDER_EVENTS,
            StockReserved
            | StockRejected
            | StockReservationExpired
            | StockReleased
            | StockCommitted => topics::INVENTORY_EVENTS,
            StockAdjusted => topics::INVENTORY_ADJUSTMENTS,
            PaymentAuthorized | PaymentDeclined | PaymentRefunded => topics::PAYMENT_EVENTS,
            ShipmentScheduled | ShipmentFailed | ShipmentCancelled => topics::SHIPPING_EVENTS,
            CustomerNotified => topics::NOTIFICATION_EVENTS,
        }
    }
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self {
            Event::PlaceOrder { .. } => EventType::PlaceOrder,
            Event::OrderCancellationRequested { .. } => EventType::OrderCancellationRequested,
            Event::OrderPlaced { .. } => EventType::OrderPlaced,
            Event::OrderRejected { .. } => EventType::OrderRejected,
            Event::OrderConfirmed { .. } => EventType::OrderConfirmed,
            Event::OrderCancelled { .. } => EventType::OrderCancelled,
            Event::StockReserved { .. } => EventType::StockReserved,
            Event::StockRejected { .. } => EventType::StockRejected,
            Event::StockReservationExpired { .. } => EventType::StockReservationExpired,
            Event::StockReleased { .. } => EventType::StockReleased,
            Event::StockCommitted { .. } => EventType::StockCommitted,
            Event::StockAdjusted { .. } => EventType::StockAdjusted,
            Event::PaymentAuthorized { .. } => EventType::PaymentAuthorized,
            Event::PaymentDeclined { .. } => EventType::PaymentDeclined,
            Event::PaymentRefunded { .. } => EventType::PaymentRefunded,
            Event::ShipmentScheduled { .. } => EventType::ShipmentScheduled,
            Event::ShipmentFailed { .. } => EventType::ShipmentFailed,
            Event::ShipmentCancelled { .. } => EventType::ShipmentCancelled,
            Event::CustomerNotified { .. } => EventType::CustomerNotified,
        }
    }
}

/// An event with its metadata: what travels, and what handlers receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub meta: Metadata,
    pub event: Event,
}

impl Envelope {
    /// `event`, emitted by `producer` because of the event with metadata `cause`.
    pub fn caused_by(cause: &Metadata, producer: &str, now_ms: i64, event: Event) -> Self {
        Self {
            meta: Metadata::caused_by(cause, producer, now_ms),
            event,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }

    /// The message key: the order id, or the sku for stock adjustments.
    pub fn key(&self) -> String {
        match &self.event {
            Event::StockAdjusted { sku, .. } => sku.clone(),
            _ => self.meta.order_id.to_string(),
        }
    }
}
