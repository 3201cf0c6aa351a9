//! Stock as the read models show it: a level per sku, and the moves events make to it.

use serde::Serialize;
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

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
}
