//! The payment service's decisions, pure.
//!
//! Customers whose id starts with `review-` are held for manual review before authorisation
//! (a timer); everyone else is judged at once against their credit limit. A cancellation
//! refunds an authorised payment, ends a review, or — when it arrives first — leaves a marker
//! so that a late StockReserved is never authorised.

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

/// What a StockReserved means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnReserved {
    /// Already seen (or cancelled first): nothing.
    Ignore,
    /// Hold for review until this time.
    Review { until: i64 },
    /// Judge against the credit limit now.
    Judge,
}

pub fn on_reserved(
    existing: Option<Status>,
    customer_id: &str,
    now_ms: i64,
    review_ms: i64,
) -> OnReserved {
    match existing {
        Some(_) => OnReserved::Ignore,
        None if customer_id.starts_with(REVIEW_PREFIX) => OnReserved::Review {
            until: now_ms + review_ms,
        },
        None => OnReserved::Judge,
    }
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

/// What an OrderCancelled means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCancelled {
    /// Give the authorised amount back (PaymentRefunded).
    Refund,
    /// End a review without moving money.
    EndReview,
    /// No payment yet: remember, so a late StockReserved is ignored.
    Remember,
    Nothing,
}

pub fn on_cancelled(existing: Option<Status>) -> OnCancelled {
    match existing {
        Some(Status::Authorized) => OnCancelled::Refund,
        Some(Status::InReview) => OnCancelled::EndReview,
        None => OnCancelled::Remember,
        Some(Status::Declined | Status::Refunded | Status::Cancelled) => OnCancelled::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(10_000, 0, 10_000, true)]
    #[case(10_000, 1, 10_000, false)]
    #[case(10_000, 9_000, 999, true)]
    #[case(0, 0, 1, false)]
    fn credit_checks(#[case] limit: i64, #[case] used: i64, #[case] amount: i64, #[case] ok: bool) {
        assert_eq!(judge(limit, used, amount) == Verdict::Authorize, ok);
    }

    #[test]
    fn review_customers_wait_and_repeats_are_ignored() {
        assert_eq!(
            on_reserved(None, "review-7", 1_000, 500),
            OnReserved::Review { until: 1_500 }
        );
        assert_eq!(on_reserved(None, "cust-7", 1_000, 500), OnReserved::Judge);
        for status in [Status::Authorized, Status::Cancelled, Status::InReview] {
            assert_eq!(
                on_reserved(Some(status), "cust-7", 0, 0),
                OnReserved::Ignore
            );
        }
    }

    #[rstest]
    #[case(Some(Status::Authorized), OnCancelled::Refund)]
    #[case(Some(Status::InReview), OnCancelled::EndReview)]
    #[case(None, OnCancelled::Remember)]
    #[case(Some(Status::Refunded), OnCancelled::Nothing)]
    #[case(Some(Status::Declined), OnCancelled::Nothing)]
    #[case(Some(Status::Cancelled), OnCancelled::Nothing)]
    fn cancellations_compensate_once(
        #[case] status: Option<Status>,
        #[case] expected: OnCancelled,
    ) {
        assert_eq!(on_cancelled(status), expected);
    }
}
