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
//!
//! The parts: [`Status`], [`Step`] and the order's summary and timeline (`order.rs`); stock
//! levels and their moves (`stock.rs`); what one event changes, [`changes`] (`event.rs`).

mod event;
mod order;
mod stock;

pub use event::{changes, day, Changes, Fact};
pub use order::{Line, OrderSummary, Status, Step, SummaryChange, TimelineEntry};
pub use stock::{StockChange, StockLevel, StockMove};
