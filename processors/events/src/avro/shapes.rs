//! The wire shape of every published schema file (`schemas/**/*.avsc`), one [`shape!`] block
//! each, fields in schema order: the wire name, its [`Wire`](super::shape::Wire) type, and the
//! domain field it carries. Both directions over both backends derive from these blocks; the
//! dispatch by event type and version is in `mod.rs`.
//!
//! Every event record starts with `metadata` ([`EventMetadata`]), written by the dispatch.
//! Older versions are written for pinned producers; they are read only through the upcasters
//! ([`crate::upcast`]) and, in tests, directly.

use super::shape::{shape, Array, Id, Int, Long, Major, Millis, OptId, OptInt, OptStr, Record};
use super::shape::{Str, Sym};
use crate::domain::*;

// ---- Nested records ----------------------------------------------------------------------------

shape! {
    /// `troupe.common.EventMetadata`, the first field of every event.
    pub EventMetadata: Metadata = Metadata {
        "event_id": Id => event_id,
        "order_id": Id => order_id,
        "correlation_id": Id => correlation_id,
        "causation_id": OptId => causation_id,
        "occurred_at": Millis => occurred_at,
        "producer": Str => producer,
    }
}

shape! {
    /// An order line priced in major units: PlaceOrder, OrderPlaced v1 and v2.
    pub MajorLine: OrderLine = OrderLine {
        "sku": Str => sku,
        "quantity": Int => quantity,
        "unit_price": Major => unit_price,
    }
}

shape! {
    /// An order line priced in minor units: OrderPlaced v3.
    pub MinorLine: OrderLine = OrderLine {
        "sku": Str => sku,
        "quantity": Int => quantity,
        "unit_price_minor": Long => unit_price,
    }
}

shape! {
    /// `SkuQuantity`: StockReserved, StockReleased, StockCommitted.
    pub SkuLine: SkuQuantity = SkuQuantity {
        "sku": Str => sku,
        "quantity": Int => quantity,
    }
}

shape! {
    /// `Shortage`: StockRejected.
    pub ShortageLine: Shortage = Shortage {
        "sku": Str => sku,
        "requested": Int => requested,
        "available": Int => available,
    }
}

shape! {
    /// An address with the recipient's name: PlaceOrder, OrderPlaced v1 and v2.
    pub FullAddress: Address = Address {
        "name": Str => name,
        "street": Str => street,
        "city": Str => city,
        "postal_code": Str => postal_code,
        "country": Str => country,
    }
}

// ---- orders ------------------------------------------------------------------------------------

shape! {
    /// `orders/PlaceOrder.v1.avsc`: no promotion code.
    pub PlaceOrderV1: Event = Event::PlaceOrder {
        customer_id, lines, currency, shipping_address, promotion_code: _,
    } => {
        "customer_id": Str => customer_id,
        "lines": Array<MajorLine> => lines,
        "currency": Str => currency,
        "shipping_address": Record<FullAddress> => shipping_address,
    }
}

shape! {
    /// `orders/PlaceOrder.v2.avsc`.
    pub PlaceOrderV2: Event = Event::PlaceOrder {
        "customer_id": Str => customer_id,
        "lines": Array<MajorLine> => lines,
        "currency": Str => currency,
        "shipping_address": Record<FullAddress> => shipping_address,
        "promotion_code": OptStr => promotion_code,
    }
}

shape! {
    /// `orders/OrderCancellationRequested.v1.avsc`.
    pub OrderCancellationRequestedV1: Event = Event::OrderCancellationRequested {
        "reason": Str => reason,
    }
}

shape! {
    /// `orders/OrderPlaced.v1.avsc`: the total as a major-unit double, no promotion code.
    pub OrderPlacedV1: Event = Event::OrderPlaced {
        customer_id, lines, currency, shipping_address, total, promotion_code: _,
    } => {
        "customer_id": Str => customer_id,
        "lines": Array<MajorLine> => lines,
        "currency": Str => currency,
        "shipping_address": Record<FullAddress> => shipping_address,
        "total": Major => total,
    }
}

shape! {
    /// `orders/OrderPlaced.v2.avsc`: v1 and the promotion code.
    pub OrderPlacedV2: Event = Event::OrderPlaced {
        "customer_id": Str => customer_id,
        "lines": Array<MajorLine> => lines,
        "currency": Str => currency,
        "shipping_address": Record<FullAddress> => shipping_address,
        "total": Major => total,
        "promotion_code": OptStr => promotion_code,
    }
}

shape! {
    /// `orders/OrderPlaced.v3.avsc`: money in minor units, the total and currency as a nested
    /// `Money` record, the recipient out of the address.
    pub OrderPlacedV3: Event = Event::OrderPlaced {
        customer_id, lines, currency, shipping_address, total, promotion_code,
    } => {
        "customer_id": Str => customer_id,
        "lines": Array<MinorLine> => lines,
        "total": {
            "amount_minor": Long => total,
            "currency": Str => currency,
        },
        "recipient": Str => shipping_address.name,
        "shipping_address": {
            "street": Str => shipping_address.street,
            "city": Str => shipping_address.city,
            "postal_code": Str => shipping_address.postal_code,
            "country": Str => shipping_address.country,
        },
        "promotion_code": OptStr => promotion_code,
    }
}

shape! {
    /// `orders/OrderRejected.v1.avsc`.
    pub OrderRejectedV1: Event = Event::OrderRejected {
        "customer_id": Str => customer_id,
        "reason": Str => reason,
    }
}

shape! {
    /// `orders/OrderConfirmed.v1.avsc`.
    pub OrderConfirmedV1: Event = Event::OrderConfirmed {
        "customer_id": Str => customer_id,
        "shipment_id": Str => shipment_id,
    }
}

shape! {
    /// `orders/OrderCancelled.v1.avsc`.
    pub OrderCancelledV1: Event = Event::OrderCancelled {
        "customer_id": Str => customer_id,
        "reason": Sym<CancellationReason> => reason,
        "detail": Str => detail,
    }
}

// ---- inventory ---------------------------------------------------------------------------------

shape! {
    /// `inventory/StockReserved.v1.avsc`: the total as a major-unit double.
    pub StockReservedV1: Event = Event::StockReserved {
        reservation_id, lines, customer_id, total, expires_at,
    } => {
        "reservation_id": Str => reservation_id,
        "lines": Array<SkuLine> => lines,
        "customer_id": Str => customer_id,
        "total": Major => total.minor,
        "currency": Str => total.currency,
        "expires_at": Millis => expires_at,
    }
}

shape! {
    /// `inventory/StockReserved.v2.avsc`: the total in minor units.
    pub StockReservedV2: Event = Event::StockReserved {
        reservation_id, lines, customer_id, total, expires_at,
    } => {
        "reservation_id": Str => reservation_id,
        "lines": Array<SkuLine> => lines,
        "customer_id": Str => customer_id,
        "total_minor": Long => total.minor,
        "currency": Str => total.currency,
        "expires_at": Millis => expires_at,
    }
}

shape! {
    /// `inventory/StockRejected.v1.avsc`.
    pub StockRejectedV1: Event = Event::StockRejected {
        "shortages": Array<ShortageLine> => shortages,
    }
}

shape! {
    /// `inventory/StockReservationExpired.v1.avsc`.
    pub StockReservationExpiredV1: Event = Event::StockReservationExpired {
        "reservation_id": Str => reservation_id,
    }
}

shape! {
    /// `inventory/StockReleased.v1.avsc`.
    pub StockReleasedV1: Event = Event::StockReleased {
        "reservation_id": Str => reservation_id,
        "lines": Array<SkuLine> => lines,
    }
}

shape! {
    /// `inventory/StockCommitted.v1.avsc`.
    pub StockCommittedV1: Event = Event::StockCommitted {
        "reservation_id": Str => reservation_id,
        "lines": Array<SkuLine> => lines,
    }
}

shape! {
    /// `inventory/StockAdjusted.v1.avsc`.
    pub StockAdjustedV1: Event = Event::StockAdjusted {
        "sku": Str => sku,
        "delta": Int => delta,
        "set_to": OptInt => set_to,
    }
}

// ---- payment -----------------------------------------------------------------------------------

shape! {
    /// `payment/PaymentAuthorized.v1.avsc`: the amount as a major-unit double.
    pub PaymentAuthorizedV1: Event = Event::PaymentAuthorized {
        payment_id, customer_id, amount,
    } => {
        "payment_id": Str => payment_id,
        "customer_id": Str => customer_id,
        "amount": Major => amount.minor,
        "currency": Str => amount.currency,
    }
}

shape! {
    /// `payment/PaymentAuthorized.v2.avsc`: the amount in minor units.
    pub PaymentAuthorizedV2: Event = Event::PaymentAuthorized {
        payment_id, customer_id, amount,
    } => {
        "payment_id": Str => payment_id,
        "customer_id": Str => customer_id,
        "amount_minor": Long => amount.minor,
        "currency": Str => amount.currency,
    }
}

shape! {
    /// `payment/PaymentDeclined.v1.avsc`.
    pub PaymentDeclinedV1: Event = Event::PaymentDeclined {
        "customer_id": Str => customer_id,
        "reason": Str => reason,
    }
}

shape! {
    /// `payment/PaymentRefunded.v1.avsc`: the amount as a major-unit double.
    pub PaymentRefundedV1: Event = Event::PaymentRefunded {
        payment_id, customer_id, amount,
    } => {
        "payment_id": Str => payment_id,
        "customer_id": Str => customer_id,
        "amount": Major => amount.minor,
        "currency": Str => amount.currency,
    }
}

shape! {
    /// `payment/PaymentRefunded.v2.avsc`: the amount in minor units.
    pub PaymentRefundedV2: Event = Event::PaymentRefunded {
        payment_id, customer_id, amount,
    } => {
        "payment_id": Str => payment_id,
        "customer_id": Str => customer_id,
        "amount_minor": Long => amount.minor,
        "currency": Str => amount.currency,
    }
}

// ---- shipping ----------------------------------------------------------------------------------

shape! {
    /// `shipping/ShipmentScheduled.v1.avsc`.
    pub ShipmentScheduledV1: Event = Event::ShipmentScheduled {
        "shipment_id": Str => shipment_id,
        "carrier": Str => carrier,
        "country": Str => country,
    }
}

shape! {
    /// `shipping/ShipmentFailed.v1.avsc`.
    pub ShipmentFailedV1: Event = Event::ShipmentFailed {
        "reason": Str => reason,
    }
}

shape! {
    /// `shipping/ShipmentCancelled.v1.avsc`.
    pub ShipmentCancelledV1: Event = Event::ShipmentCancelled {
        "shipment_id": Str => shipment_id,
    }
}

// ---- notification ------------------------------------------------------------------------------

shape! {
    /// `notification/CustomerNotified.v1.avsc`.
    pub CustomerNotifiedV1: Event = Event::CustomerNotified {
        "notification_id": Str => notification_id,
        "customer_id": Str => customer_id,
        "kind": Sym<NotificationKind> => kind,
        "message": Str => message,
    }
}
