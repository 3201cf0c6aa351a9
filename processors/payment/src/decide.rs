//! The payment service's decisions, pure.
//!
//! Customers whose id starts with `review-` are held for manual review before authorisation
//! (a timer); everyone else is judged at once against their credit limit. A cancellation
//! refunds an authorised payment, ends a review, or — when it arrives first — leaves a marker
//! so that a late StockReserved is never authorised.

use troupe_events::decision::Decision;
use troupe_events::domain::{Event, Money};

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InReview,
    Authorized,
    Declined,
    Refunded,
    /// The order was cancelled before any money moved.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InReview => "IN_REVIEW",
            Status::Authorized => "AUTHORIZED",
            Status::Declined => "DECLINED",
            Status::Refunded => "REFUNDED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Status::InReview,
            Status::Authorized,
            Status::Declined,
            Status::Refunded,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// The prefix of customer ids held for manual review.
pub const REVIEW_PREFIX: &str = "review-";

/// An order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: Status,
    /// When a review ends (ms since the epoch), while in review.
    pub review_until: Option<i64>,
    /// What was authorised and refunded, in minor units.
    pub authorized: i64,
    pub refunded: i64,
}

/// A customer's credit: the limit, and what authorised, unrefunded payments use of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub customer_id: String,
    pub credit_limit: i64,
    pub used: i64,
}

/// What payment knows when an event arrives: the order's payment (if any) and its customer's
/// account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub payment: Option<Payment>,
    pub account: Account,
}

/// What a decision needs besides what is known.
#[derive(Debug, Clone)]
pub struct Context {
    pub now_ms: i64,
    /// How long a manual review takes.
    pub review_ms: i64,
    /// The id a new payment gets.
    pub payment_id: String,
}

/// The verdict of a credit check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authorize,
    Decline(String),
}

pub fn judge(credit_limit: i64, used: i64, amount: i64) -> Verdict {
    let remaining = credit_limit - used;
    if amount <= remaining {
        Verdict::Authorize
    } else {
        Verdict::Decline(format!(
            "credit limit exceeded: {amount} requested, {remaining} remaining (minor units)"
        ))
    }
}

/// Judges `payment` against the customer's credit now: authorised (holding credit) or
/// declined.
fn settle(known: &Known, mut payment: Payment) -> Decision<Known> {
    let mut account = known.account.clone();
    payment.review_until = None;
    match judge(account.credit_limit, account.used, payment.amount) {
        Verdict::Authorize => {
            account.used += payment.amount;
            payment.status = Status::Authorized;
            payment.authorized = payment.amount;
            let event = Event::PaymentAuthorized {
                payment_id: payment.payment_id.clone(),
                customer_id: payment.customer_id.clone(),
                amount: Money {
                    minor: payment.amount,
                    currency: payment.currency.clone(),
                },
            };
            Decision::emit(
                Known {
                    payment: Some(payment),
                    account,
                },
                event,
            )
        }
        Verdict::Decline(reason) => {
            payment.status = Status::Declined;
            let event = Event::PaymentDeclined {
                customer_id: payment.customer_id.clone(),
                reason,
            };
            Decision::emit(
                Known {
                    payment: Some(payment),
                    account,
                },
                event,
            )
        }
    }
}

/// Decides what an event means for an order's payment and its customer's credit.
///
/// - StockReserved: a customer held for review waits (the review timer); everyone else is
///   judged at once. A payment that exists already (or a cancellation seen first) ignores it.
/// - OrderCancelled: an authorised payment is refunded, a review ends without moving money,
///   and a cancellation that arrives before any payment is remembered, so that a late
///   StockReserved is never authorised.
pub fn decide(known: &Known, event: &Event, ctx: &Context) -> Decision<Known> {
    match event {
        Event::StockReserved {
            customer_id, total, ..
        } => {
            if known.payment.is_some() {
                return Decision::nothing();
            }
            let payment = Payment {
                payment_id: ctx.payment_id.clone(),
                customer_id: customer_id.clone(),
                amount: total.minor,
                currency: total.currency.clone(),
                status: Status::InReview,
                review_until: None,
                authorized: 0,
                refunded: 0,
            };
            if customer_id.starts_with(REVIEW_PREFIX) {
                return Decision::state(Known {
                    payment: Some(Payment {
                        review_until: Some(ctx.now_ms + ctx.review_ms),
                        ..payment
                    }),
                    account: known.account.clone(),
                });
            }
            settle(known, payment)
        }
        Event::OrderCancelled { customer_id, .. } => match &known.payment {
            Some(payment) if payment.status == Status::Authorized => {
                let mut after = known.clone();
                after.account.used -= payment.amount;
                let refunded = Payment {
                    status: Status::Refunded,
                    refunded: payment.amount,
                    ..payment.clone()
                };
                after.payment = Some(refunded);
                Decision::emit(
                    after,
                    Event::PaymentRefunded {
                        payment_id: payment.payment_id.clone(),
                        customer_id: payment.customer_id.clone(),
                        amount: Money {
                            minor: payment.amount,
                            currency: payment.currency.clone(),
                        },
                    },
                )
            }
            Some(payment) if payment.status == Status::InReview => Decision::state(Known {
                payment: Some(Payment {
                    status: Status::Cancelled,
                    review_until: None,
                    ..payment.clone()
                }),
                account: known.account.clone(),
            }),
            Some(_) => Decision::nothing(),
            // No payment yet: a marker, so a late StockReserved is ignored.
            None => Decision::state(Known {
                payment: Some(Payment {
                    payment_id: String::new(),
                    customer_id: customer_id.clone(),
                    amount: 0,
                    currency: String::new(),
                    status: Status::Cancelled,
                    review_until: None,
                    authorized: 0,
                    refunded: 0,
                }),
                account: known.account.clone(),
            }),
        },
        _ => Decision::nothing(),
    }
}

/// The review timer: a payment whose review has ended is judged.
pub fn review(known: &Known, now_ms: i64) -> Decision<Known> {
    match &known.payment {
        Some(payment)
            if payment.status == Status::InReview
                && payment.review_until.is_some_and(|until| until <= now_ms) =>
        {
            settle(known, payment.clone())
        }
        _ => Decision::nothing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use troupe_events::domain::CancellationReason;
    use troupe_events::EventType;
    use troupe_testkit::given::given;

    const LIMIT: i64 = 10_000;

    fn known(payment: Option<Payment>, used: i64) -> Known {
        Known {
            payment,
            account: Account {
                customer_id: "cust-7".into(),
                credit_limit: LIMIT,
                used,
            },
        }
    }

    fn reserved(customer: &str, amount: i64) -> Event {
        Event::StockReserved {
            reservation_id: "r".into(),
            lines: Vec::new(),
            customer_id: customer.into(),
            total: Money {
                minor: amount,
                currency: "EUR".into(),
            },
            expires_at: 0,
        }
    }

    fn cancelled() -> Event {
        Event::OrderCancelled {
            customer_id: "cust-7".into(),
            reason: CancellationReason::CustomerRequest,
            detail: String::new(),
        }
    }

    fn ctx() -> Context {
        Context {
            now_ms: 1_000,
            review_ms: 500,
            payment_id: "p-1".into(),
        }
    }

    fn decide_now(known: &Known, event: &Event) -> Decision<Known> {
        decide(known, event, &ctx())
    }

    #[rstest]
    #[case(10_000, 0, 10_000, true)]
    #[case(10_000, 1, 10_000, false)]
    #[case(10_000, 9_000, 999, true)]
    #[case(0, 0, 1, false)]
    fn credit_checks(#[case] limit: i64, #[case] used: i64, #[case] amount: i64, #[case] ok: bool) {
        assert_eq!(judge(limit, used, amount) == Verdict::Authorize, ok);
    }

    #[test]
    fn a_reservation_within_credit_is_authorised_and_holds_it() {
        given("payment", known(None, 1_000))
            .when(&reserved("cust-7", 2_000), decide_now)
            .emits(&[EventType::PaymentAuthorized])
            .after(|after| {
                assert_eq!(after.account.used, 3_000);
                let payment = after.payment.as_ref().unwrap();
                assert_eq!(
                    (payment.status, payment.authorized),
                    (Status::Authorized, 2_000)
                );
            });
        given("payment", known(None, 9_000))
            .when(&reserved("cust-7", 2_000), decide_now)
            .emits(&[EventType::PaymentDeclined])
            .after(|after| {
                assert_eq!(after.account.used, 9_000, "nothing held");
                assert_eq!(after.payment.as_ref().unwrap().status, Status::Declined);
            });
    }

    #[test]
    fn review_customers_wait_for_the_timer_and_repeats_are_ignored() {
        let waiting = given("payment", known(None, 0))
            .when(&reserved("review-7", 2_000), decide_now)
            .emits_nothing()
            .after(|after| {
                let payment = after.payment.as_ref().unwrap();
                assert_eq!(payment.status, Status::InReview);
                assert_eq!(payment.review_until, Some(1_500));
            })
            .into_after();
        given("payment", waiting.clone())
            .when_timer(|k| review(k, 1_499))
            .emits_nothing()
            .unchanged();
        given("payment", waiting.clone())
            .when_timer(|k| review(k, 1_500))
            .emits(&[EventType::PaymentAuthorized]);
        given("payment", waiting)
            .when(&reserved("review-7", 2_000), decide_now)
            .emits_nothing()
            .unchanged();
    }

    #[rstest]
    #[case(Status::Authorized, &[EventType::PaymentRefunded], Some(Status::Refunded), 0)]
    #[case(Status::InReview, &[], Some(Status::Cancelled), 2_000)]
    #[case(Status::Refunded, &[], None, 2_000)]
    #[case(Status::Declined, &[], None, 2_000)]
    #[case(Status::Cancelled, &[], None, 2_000)]
    fn cancellations_compensate_once(
        #[case] status: Status,
        #[case] emits: &[EventType],
        #[case] after: Option<Status>,
        #[case] used_after: i64,
    ) {
        let payment = Payment {
            payment_id: "p".into(),
            customer_id: "cust-7".into(),
            amount: 2_000,
            currency: "EUR".into(),
            status,
            review_until: None,
            authorized: if status == Status::Authorized {
                2_000
            } else {
                0
            },
            refunded: 0,
        };
        let then = given("payment", known(Some(payment), 2_000))
            .when(&cancelled(), decide_now)
            .emits(emits);
        match after {
            Some(expected) => {
                then.after(|k| {
                    assert_eq!(k.payment.as_ref().unwrap().status, expected);
                    assert_eq!(k.account.used, used_after);
                });
            }
            None => {
                then.unchanged();
            }
        }
    }

    #[test]
    fn a_cancellation_before_the_reservation_blocks_a_late_authorisation() {
        let marked = given("payment", known(None, 0))
            .when(&cancelled(), decide_now)
            .emits_nothing()
            .after(|k| assert_eq!(k.payment.as_ref().unwrap().status, Status::Cancelled))
            .into_after();
        given("payment", marked)
            .when(&reserved("cust-7", 2_000), decide_now)
            .emits_nothing()
            .unchanged();
    }
}
