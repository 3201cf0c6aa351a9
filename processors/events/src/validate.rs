//! Structural rules every event obeys, whoever produced it. An event that breaks one is not a
//! business outcome but bad input: the runtime dead-letters it with reason `invalid_event`.
//!
//! Business rules (is this order acceptable?) belong to the handlers and end in events such as
//! `OrderRejected`, not here.

use crate::domain::{Envelope, Event, SkuQuantity};

/// Checks `envelope`; the error says which rule it breaks.
pub fn validate(envelope: &Envelope) -> Result<(), String> {
    let meta = &envelope.meta;
    if meta.event_id.is_nil() {
        return Err("metadata.event_id is the nil uuid".into());
    }
    if meta.producer.trim().is_empty() {
        return Err("metadata.producer is empty".into());
    }
    let about_an_order = !matches!(envelope.event, Event::StockAdjusted { .. });
    if about_an_order && meta.order_id.is_nil() {
        return Err("metadata.order_id is the nil uuid".into());
    }
    match &envelope.event {
        Event::PlaceOrder { customer_id, .. }
        | Event::OrderPlaced { customer_id, .. }
        | Event::OrderRejected { customer_id, .. }
        | Event::OrderConfirmed { customer_id, .. }
        | Event::OrderCancelled { customer_id, .. }
        | Event::PaymentDeclined { customer_id, .. }
        | Event::CustomerNotified { customer_id, .. }
            if customer_id.trim().is_empty() =>
        {
            Err("customer_id is empty".into())
        }
        Event::OrderPlaced {
            lines,
            total,
            promotion_code: code,
            ..
        } => {
            if let Some(code) = code {
                promotion_code(code)?;
            }
            if lines.is_empty() {
                return Err("an order has no lines".into());
            }
            if lines.iter().any(|l| l.quantity <= 0 || l.unit_price < 0) {
                return Err("an order line has a non-positive quantity or a negative price".into());
            }
            if *total < 0 {
                return Err("total is negative".into());
            }
            Ok(())
        }
        Event::StockReserved { lines, total, .. } => {
            positive_lines(lines)?;
            money(total.minor, &total.currency)
        }
        Event::StockReleased { lines, .. } | Event::StockCommitted { lines, .. } => {
            positive_lines(lines)
        }
        Event::StockAdjusted { sku, set_to, .. } => {
            if sku.trim().is_empty() {
                return Err("sku is empty".into());
            }
            if set_to.is_some_and(|v| v < 0) {
                return Err("set_to is negative".into());
            }
            Ok(())
        }
        Event::PaymentAuthorized { amount, .. } | Event::PaymentRefunded { amount, .. } => {
            money(amount.minor, &amount.currency)
        }
        _ => Ok(()),
    }
}

/// A campaign code: 1 to 32 characters, upper-case letters, digits and dashes. The order
/// service rejects a request whose code breaks this; an OrderPlaced that carries one is invalid.
pub fn promotion_code(code: &str) -> Result<(), String> {
    let fits = !code.is_empty()
        && code.len() <= 32
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "promotion code {code:?} is not 1 to 32 of A-Z, 0-9 and -"
        ))
    }
}

fn positive_lines(lines: &[SkuQuantity]) -> Result<(), String> {
    if lines.is_empty() || lines.iter().any(|l| l.quantity <= 0 || l.sku.is_empty()) {
        return Err("stock lines must be non-empty with positive quantities".into());
    }
    Ok(())
}

fn money(minor: i64, currency: &str) -> Result<(), String> {
    if minor < 0 {
        return Err("amount is negative".into());
    }
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!("currency {currency:?} is not an ISO 4217 code"));
    }
    Ok(())
}
