//! Saga traffic: orders built to take each path through the saga, deterministic for a seed.

use std::collections::BTreeMap;
use std::str::FromStr;

use troupe_events::domain::{Address, OrderLine};
use troupe_events::{Envelope, Event, Metadata};
use uuid::Uuid;

/// One path through the saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Stock, credit and a served destination: confirmed.
    Happy,
    /// A line the warehouse never stocks: cancelled OUT_OF_STOCK.
    OutOfStock,
    /// A total above the default credit limit: cancelled PAYMENT_DECLINED.
    PaymentDeclined,
    /// A destination no carrier serves: cancelled SHIPMENT_FAILED.
    Unserved,
    /// The customer cancels right after placing: cancelled CUSTOMER_REQUEST.
    Cancel,
    /// A customer held for payment review longer than the reservation lives: cancelled
    /// RESERVATION_EXPIRED.
    Expiry,
    /// A request with no lines: rejected.
    Invalid,
    /// The customer asks to cancel the moment the payment is authorised (`troupe produce`
    /// watches the payment events), racing the shipment: cancelled CUSTOMER_REQUEST, usually
    /// after the shipment was scheduled (ShipmentCancelled); confirmed when the shipment wins.
    CancelRace,
    /// A customer held for review whose total is above the credit limit: declined when the
    /// review ends (PAYMENT_DECLINED, from the review timer) — or cancelled
    /// RESERVATION_EXPIRED when the reservation does not outlive the review (the defaults).
    ReviewDeclined,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Happy,
        Scenario::OutOfStock,
        Scenario::PaymentDeclined,
        Scenario::Unserved,
        Scenario::Cancel,
        Scenario::Expiry,
        Scenario::Invalid,
        Scenario::CancelRace,
        Scenario::ReviewDeclined,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Happy => "happy",
            Scenario::OutOfStock => "out-of-stock",
            Scenario::PaymentDeclined => "payment-declined",
            Scenario::Unserved => "unserved",
            Scenario::Cancel => "cancel",
            Scenario::Expiry => "expiry",
            Scenario::Invalid => "invalid",
            Scenario::CancelRace => "cancel-race",
            Scenario::ReviewDeclined => "review-declined",
        }
    }

    /// The outcomes this scenario can lead to (`CONFIRMED`, `REJECTED` or the cancellation
    /// reason), the usual one first: a race, or the timers' settings, decide between them.
    pub fn expected(self) -> &'static [&'static str] {
        match self {
            Scenario::Happy => &["CONFIRMED"],
            Scenario::OutOfStock => &["OUT_OF_STOCK"],
            Scenario::PaymentDeclined => &["PAYMENT_DECLINED"],
            Scenario::Unserved => &["SHIPMENT_FAILED"],
            Scenario::Cancel => &["CUSTOMER_REQUEST"],
            // A review shorter than the reservation's life ends in a confirmation.
            Scenario::Expiry => &["RESERVATION_EXPIRED", "CONFIRMED"],
            Scenario::Invalid => &["REJECTED"],
            Scenario::CancelRace => &["CUSTOMER_REQUEST", "CONFIRMED"],
            Scenario::ReviewDeclined => &["RESERVATION_EXPIRED", "PAYMENT_DECLINED"],
        }
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|x| x.name()).collect();
                format!(
                    "unknown scenario {s:?}; one of {}, or mixed",
                    names.join(", ")
                )
            })
    }
}

/// Shares of each scenario in a mixed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub Vec<(Scenario, u32)>);

impl Default for Mix {
    fn default() -> Self {
        Mix(vec![
            (Scenario::Happy, 60),
            (Scenario::OutOfStock, 8),
            (Scenario::PaymentDeclined, 8),
            (Scenario::Unserved, 8),
            (Scenario::Cancel, 8),
            (Scenario::Expiry, 4),
            (Scenario::Invalid, 4),
        ])
    }
}

impl FromStr for Mix {
    type Err = String;

    /// `happy=60,out-of-stock=10,...`
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut shares = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not NAME=SHARE"))?;
            let scenario: Scenario = name.trim().parse()?;
            let share: u32 = share
                .trim()
                .parse()
                .map_err(|_| format!("share {share:?} of {name} is not a whole number"))?;
            shares.push((scenario, share));
        }
        if shares.iter().map(|(_, s)| s).sum::<u32>() == 0 {
            return Err("the mix has no shares".into());
        }
        Ok(Mix(shares))
    }
}

/// A small, fast, seedable generator (SplitMix64): traffic is reproducible from `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn uuid(&mut self) -> Uuid {
        let bytes =
            ((u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

impl Mix {
    pub fn pick(&self, rng: &mut Rng) -> Scenario {
        let total: u64 = self.0.iter().map(|(_, s)| u64::from(*s)).sum();
        let mut ticket = rng.below(total);
        for (scenario, share) in &self.0 {
            if ticket < u64::from(*share) {
                return *scenario;
            }
            ticket -= u64::from(*share);
        }
        self.0[0].0
    }
}

/// The skus the warehouse stocks.
pub fn catalog() -> Vec<String> {
    (0..20).map(|i| format!("sku-{i:02}")).collect()
}

/// A sku never stocked.
pub const UNSTOCKED: &str = "sku-unstocked";

/// One generated order: the requests to publish (PlaceOrder, then maybe a cancellation).
#[derive(Debug, Clone)]
pub struct Order {
    pub order_id: Uuid,
    pub scenario: Scenario,
    pub requests: Vec<Envelope>,
}

impl Order {
    /// Units per stocked sku this order reserves if it goes well.
    pub fn demand(&self) -> BTreeMap<String, i64> {
        let mut demand = BTreeMap::new();
        if let Some(Envelope {
            event: Event::PlaceOrder { lines, .. },
            ..
        }) = self.requests.first()
        {
            for line in lines.iter().filter(|l| l.sku != UNSTOCKED) {
                *demand.entry(line.sku.clone()).or_default() += i64::from(line.quantity);
            }
        }
        demand
    }
}

fn address(country: &str, n: u64) -> Address {
    Address {
        name: format!("Customer {n}"),
        street: format!("{} Choreography Lane", 1 + n % 200),
        city: "Amsterdam".into(),
        postal_code: format!("{:04} AB", 1000 + n % 9000),
        country: country.into(),
    }
}

/// Builds order number `n` of `scenario`.
pub fn build(scenario: Scenario, n: u64, rng: &mut Rng, now_ms: i64) -> Order {
    let order_id = rng.uuid();
    let skus = catalog();
    let mut lines: Vec<OrderLine> = (0..1 + rng.below(3))
        .map(|_| OrderLine {
            sku: skus[rng.below(skus.len() as u64) as usize].clone(),
            quantity: 1 + rng.below(3) as i32,
            unit_price: 500 + rng.below(5_000) as i64,
        })
        .collect();
    let mut customer = format!("cust-{n}");
    let mut country = "NL";
    match scenario {
        Scenario::Happy | Scenario::Cancel | Scenario::CancelRace => {}
        Scenario::OutOfStock => lines.push(OrderLine {
            sku: UNSTOCKED.into(),
            quantity: 1,
            unit_price: 999,
        }),
        // The default credit limit is 1,000.00; this is 2,500.00 and up.
        Scenario::PaymentDeclined => lines[0].unit_price = 250_000,
        Scenario::Unserved => country = "AQ",
        Scenario::Expiry => customer = format!("review-{n}"),
        Scenario::ReviewDeclined => {
            customer = format!("review-{n}");
            lines[0].unit_price = 250_000;
        }
        Scenario::Invalid => lines.clear(),
    }
    let place = Envelope {
        meta: Metadata::origin(order_id, "cli", now_ms),
        event: Event::PlaceOrder {
            customer_id: customer,
            lines,
            currency: "EUR".into(),
            shipping_address: address(country, n),
            // Every fifth order carries a campaign code (PlaceOrder v2); a producer pinned to
            // v1 leaves it out.
            promotion_code: (n % 5 == 0).then(|| "SPRING-10".to_owned()),
        },
    };
    let mut requests = vec![place];
    if scenario == Scenario::Cancel {
        requests.push(Envelope {
            meta: Metadata::origin(order_id, "cli", now_ms),
            event: Event::OrderCancellationRequested {
                reason: "changed my mind".into(),
            },
        });
    }
    Order {
        order_id,
        scenario,
        requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_reject_nonsense() {
        let mix: Mix = "happy=3, expiry=1".parse().unwrap();
        assert_eq!(mix.0, vec![(Scenario::Happy, 3), (Scenario::Expiry, 1)]);
        assert!("happy".parse::<Mix>().is_err());
        assert!("sad=1"
            .parse::<Mix>()
            .unwrap_err()
            .contains("unknown scenario"));
        assert!("happy=0".parse::<Mix>().is_err());
        assert!("happy=x".parse::<Mix>().is_err());
    }

    #[test]
    fn picks_follow_the_shares() {
        let mix: Mix = "happy=3,invalid=1".parse().unwrap();
        let mut rng = Rng::new(7);
        let happy = (0..10_000)
            .filter(|_| mix.pick(&mut rng) == Scenario::Happy)
            .count();
        assert!((7_000..8_000).contains(&happy), "{happy}");
    }

    #[test]
    fn the_same_seed_builds_the_same_orders() {
        let a = build(Scenario::Happy, 1, &mut Rng::new(42), 0);
        let b = build(Scenario::Happy, 1, &mut Rng::new(42), 0);
        assert_eq!(a.order_id, b.order_id);
        assert_eq!(a.requests[0].event, b.requests[0].event);
    }

    #[test]
    fn each_scenario_carries_its_trigger() {
        let mut rng = Rng::new(1);
        for scenario in Scenario::ALL {
            let order = build(scenario, 9, &mut rng, 0);
            let Event::PlaceOrder {
                customer_id,
                lines,
                shipping_address,
                ..
            } = &order.requests[0].event
            else {
                panic!("first request is PlaceOrder");
            };
            match scenario {
                Scenario::OutOfStock => assert!(lines.iter().any(|l| l.sku == UNSTOCKED)),
                Scenario::PaymentDeclined => {
                    assert!(lines[0].unit_price * i64::from(lines[0].quantity) > 100_000)
                }
                Scenario::Unserved => assert_eq!(shipping_address.country, "AQ"),
                Scenario::Expiry => assert!(customer_id.starts_with("review-")),
                Scenario::Invalid => assert!(lines.is_empty()),
                Scenario::Cancel => assert_eq!(order.requests.len(), 2),
                Scenario::Happy | Scenario::CancelRace => assert_eq!(order.requests.len(), 1),
                Scenario::ReviewDeclined => {
                    assert!(customer_id.starts_with("review-"));
                    assert!(lines[0].unit_price * i64::from(lines[0].quantity) > 100_000)
                }
            }
        }
    }
}
