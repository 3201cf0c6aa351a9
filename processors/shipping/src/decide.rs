//! The shipping service's decisions, pure. Shipping learns an order's destination, payment and
//! cancellation from three topics, in any order; after each it asks [`next`] what to do.

use std::collections::BTreeSet;

/// Where a shipment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Scheduled,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Status::Scheduled, Status::Failed, Status::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What shipping knows of one order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knowledge {
    pub country: Option<String>,
    pub paid: bool,
    pub cancelled: bool,
    pub status: Option<Status>,
}

/// The next step for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Schedule { carrier: String },
    Fail { reason: String },
    CancelShipment,
    Wait,
}

/// The carrier network: which countries it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carriers {
    pub served: BTreeSet<String>,
}

impl Carriers {
    /// Parses a comma-separated list of ISO country codes.
    pub fn parse(list: &str) -> Self {
        Self {
            served: list
                .split(',')
                .map(|c| c.trim().to_ascii_uppercase())
                .filter(|c| !c.is_empty())
                .collect(),
        }
    }

    /// The carrier for a country, if one serves it.
    pub fn carrier(&self, country: &str) -> Option<String> {
        self.served.contains(country).then(|| {
            match country {
                "US" | "CA" | "MX" => "troupe-freight-americas",
                "GB" | "IE" => "troupe-post-uk",
                _ => "troupe-post-eu",
            }
            .to_owned()
        })
    }
}

/// The default network.
pub const DEFAULT_COUNTRIES: &str = "AT,BE,CA,CH,DE,DK,ES,FI,FR,GB,IE,IT,LU,MX,NL,NO,PL,PT,SE,US";

pub fn next(knowledge: &Knowledge, carriers: &Carriers) -> Step {
    match (knowledge.status, knowledge.cancelled) {
        (Some(Status::Scheduled), true) => Step::CancelShipment,
        (Some(_), _) | (None, true) => Step::Wait,
        (None, false) => match (&knowledge.country, knowledge.paid) {
            (Some(country), true) => match carriers.carrier(country) {
                Some(carrier) => Step::Schedule { carrier },
                None => Step::Fail {
                    reason: format!("no carrier serves {country}"),
                },
            },
            _ => Step::Wait,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn carriers() -> Carriers {
        Carriers::parse(DEFAULT_COUNTRIES)
    }

    fn knowing(
        country: Option<&str>,
        paid: bool,
        cancelled: bool,
        status: Option<Status>,
    ) -> Knowledge {
        Knowledge {
            country: country.map(str::to_owned),
            paid,
            cancelled,
            status,
        }
    }

    #[rstest]
    #[case::paid_and_served(knowing(Some("DE"), true, false, None), Step::Schedule { carrier: "troupe-post-eu".into() })]
    #[case::paid_unserved(knowing(Some("AQ"), true, false, None), Step::Fail { reason: "no carrier serves AQ".into() })]
    #[case::paid_before_address(knowing(None, true, false, None), Step::Wait)]
    #[case::address_before_payment(knowing(Some("DE"), false, false, None), Step::Wait)]
    #[case::cancelled_before_payment(knowing(Some("DE"), true, true, None), Step::Wait)]
    #[case::cancelled_after_scheduling(
        knowing(Some("DE"), true, true, Some(Status::Scheduled)),
        Step::CancelShipment
    )]
    #[case::cancelled_twice(knowing(Some("DE"), true, true, Some(Status::Cancelled)), Step::Wait)]
    #[case::scheduled_stays(knowing(Some("DE"), true, false, Some(Status::Scheduled)), Step::Wait)]
    #[case::failed_stays(knowing(Some("AQ"), true, true, Some(Status::Failed)), Step::Wait)]
    fn steps(#[case] knowledge: Knowledge, #[case] expected: Step) {
        assert_eq!(next(&knowledge, &carriers()), expected);
    }
}
