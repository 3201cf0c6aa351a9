//! A record of the dead-letter topic as `troupe deadletters` sees it, and the filters that
//! select dead letters. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{anyhow, bail};
use troupe_events::deadletter::{headers, Reason};

/// Where a record sits in the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.partition, self.offset)
    }
}

impl std::str::FromStr for Position {
    type Err = anyhow::Error;

    /// `PARTITION/OFFSET`, or `OFFSET` alone for partition 0.
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let bad =
            || anyhow!("{text:?} is not a dead letter's position (OFFSET or PARTITION/OFFSET)");
        let (partition, offset) = match text.split_once('/') {
            Some((p, o)) => (p.parse().map_err(|_| bad())?, o),
            None => (0, text),
        };
        let offset: i64 = offset.parse().map_err(|_| bad())?;
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(Self { partition, offset })
    }
}

/// One record of the dead-letter topic: a dead letter, or a redrive's audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub position: Position,
    /// When it was written (ms since the epoch), as the broker has it.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The dead letter this audit record says was redriven; `None` for a dead letter.
    pub fn redriven(&self) -> Option<Position> {
        self.header(headers::REDRIVEN)?.parse().ok()
    }

    pub fn key_text(&self) -> Option<String> {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    pub fn reason(&self) -> &str {
        self.header(headers::REASON).unwrap_or("-")
    }

    pub fn processor(&self) -> &str {
        self.header(headers::PROCESSOR).unwrap_or("-")
    }

    /// The topic it was read from, where a redrive sends it back.
    pub fn origin_topic(&self) -> Option<&str> {
        self.header(headers::TOPIC)
    }

    pub fn origin_partition(&self) -> Option<i32> {
        self.header(headers::PARTITION)?.parse().ok()
    }

    /// The event type its producer named in its headers; a dead letter parked before the
    /// original headers were kept has none (see [`event_type_or`]).
    pub fn event_type(&self) -> Option<&str> {
        self.header(troupe_events::message::EVENT_TYPE_HEADER)
    }

    /// How many times it was redriven already.
    pub fn redrive_count(&self) -> u32 {
        self.header(headers::REDRIVE_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The message's own headers, without the dead-letter ones: what a redrive sends back.
    pub fn original_headers(&self) -> impl Iterator<Item = &(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.starts_with(headers::PREFIX) && n != headers::REDRIVE_COUNT)
    }

    /// The Confluent schema id of its payload, when framed.
    pub fn schema_id(&self) -> Option<u32> {
        match self.payload.as_deref()? {
            [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => None,
        }
    }
}

/// The event type of `record`: its header, or else what `by_schema` names for its schema id
/// (a registry lookup), or `-`.
pub fn event_type_or(record: &Record, by_schema: &BTreeMap<u32, String>) -> String {
    record
        .event_type()
        .map(str::to_owned)
        .or_else(|| {
            record
                .schema_id()
                .and_then(|id| by_schema.get(&id).cloned())
        })
        .unwrap_or_else(|| "-".into())
}

/// Which dead letters a command works on; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub reasons: Vec<String>,
    pub processors: Vec<String>,
    pub event_types: Vec<String>,
    /// The message key: an order id, or a sku for stock adjustments.
    pub key: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Filter {
    /// Checks what can be checked before reading anything: reason codes exist.
    pub fn validate(&self) -> anyhow::Result<()> {
        for reason in &self.reasons {
            if !Reason::ALL.iter().any(|r| r.code() == reason) {
                let known: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
                bail!(
                    "unknown reason {reason:?}; reasons are {}",
                    known.join(", ")
                );
            }
        }
        if let (Some(since), Some(until)) = (self.since_ms, self.until_ms) {
            if since > until {
                bail!("--since is after --until");
            }
        }
        Ok(())
    }

    /// Whether dead letter `record`, of event type `event_type`, is selected.
    pub fn matches(&self, record: &Record, event_type: &str) -> bool {
        let any =
            |wanted: &[String], value: &str| wanted.is_empty() || wanted.iter().any(|w| w == value);
        let time = record.timestamp_ms.unwrap_or(0);
        any(&self.reasons, record.reason())
            && any(&self.processors, record.processor())
            && any(&self.event_types, event_type)
            && self
                .key
                .as_ref()
                .is_none_or(|k| record.key_text().as_deref() == Some(k))
            && self.since_ms.is_none_or(|since| time >= since)
            && self.until_ms.is_none_or(|until| time < until)
    }
}

/// A point in time for `--since`/`--until`: RFC 3339 (`2026-12-01T10:00:00Z`), or an age
/// before `now_ms` (`90s`, `30m`, `2h`, `7d`).
pub fn parse_time(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    let bad = || anyhow!("{text:?} is neither an RFC 3339 time nor an age like 30m, 2h or 7d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit_ms)
        .and_then(|age| now_ms.checked_sub(age))
        .ok_or_else(|| anyhow!("{text:?} is further back than any time can be"))
}

/// An age bucket for `stats`.
pub fn age_bucket(age_ms: i64) -> &'static str {
    const HOUR: i64 = 3_600_000;
    if age_ms < HOUR {
        "< 1h"
    } else if age_ms < 24 * HOUR {
        "1h-1d"
    } else if age_ms < 7 * 24 * HOUR {
        "1d-7d"
    } else {
        ">= 7d"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn dead(offset: i64, key: &str, reason: &str, topic: &str) -> Record {
        Record {
            position: Position {
                partition: 0,
                offset,
            },
            timestamp_ms: Some(1_000 * offset),
            key: Some(key.as_bytes().to_vec()),
            payload: Some(vec![0, 0, 0, 0, 7, 1, 2]),
            headers: vec![
                (headers::REASON.into(), reason.into()),
                (headers::PROCESSOR.into(), "order".into()),
                (headers::TOPIC.into(), topic.into()),
                (headers::PARTITION.into(), "2".into()),
                (headers::OFFSET.into(), "40".into()),
                ("troupe.event_type".into(), "OrderPlaced".into()),
                ("troupe.event_id".into(), format!("e{offset}")),
            ],
        }
    }

    #[test]
    fn positions_read_with_or_without_a_partition() {
        assert_eq!(
            "12".parse::<Position>().unwrap(),
            Position {
                partition: 0,
                offset: 12
            }
        );
        assert_eq!("3/4".parse::<Position>().unwrap().to_string(), "3/4");
        for bad in ["", "x", "1/", "-1", "1/-2", "1/2/3"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dead_letter_tells_its_origin_and_keeps_only_its_own_headers_for_a_redrive() {
        let mut record = dead(5, "o-1", "rejected", "troupe.orders.events");
        record
            .headers
            .push((headers::REDRIVE_COUNT.into(), "2".into()));
        assert_eq!(record.origin_topic(), Some("troupe.orders.events"));
        assert_eq!(record.origin_partition(), Some(2));
        assert_eq!(record.redrive_count(), 2);
        assert_eq!(record.schema_id(), Some(7));
        let kept: Vec<&str> = record.original_headers().map(|(n, _)| n.as_str()).collect();
        assert_eq!(kept, ["troupe.event_type", "troupe.event_id"]);
        assert_eq!(record.redriven(), None);
    }

    #[test]
    fn filters_select_on_every_condition_given() {
        let record = dead(5, "o-1", "rejected", "t");
        let all = Filter::default();
        assert!(all.matches(&record, "OrderPlaced"));
        let reason = Filter {
            reasons: vec!["invalid_event".into(), "rejected".into()],
            ..Filter::default()
        };
        assert!(reason.matches(&record, "OrderPlaced"));
        let other_key = Filter {
            key: Some("o-2".into()),
            ..reason.clone()
        };
        assert!(!other_key.matches(&record, "OrderPlaced"));
        let event = Filter {
            event_types: vec!["PaymentAuthorized".into()],
            ..Filter::default()
        };
        assert!(!event.matches(&record, "OrderPlaced"));
        let window = Filter {
            since_ms: Some(5_000),
            until_ms: Some(5_001),
            ..Filter::default()
        };
        assert!(window.matches(&record, "OrderPlaced"));
        let later = Filter {
            since_ms: Some(5_001),
            ..Filter::default()
        };
        assert!(!later.matches(&record, "OrderPlaced"));
    }

    #[test]
    fn unknown_reasons_and_backward_windows_are_refused() {
        let typo = Filter {
            reasons: vec!["rejeted".into()],
            ..Filter::default()
        };
        assert!(typo
            .validate()
            .unwrap_err()
            .to_string()
            .contains("rejected"));
        let backward = Filter {
            since_ms: Some(2),
            until_ms: Some(1),
            ..Filter::default()
        };
        assert!(backward.validate().is_err());
    }

    #[test]
    fn times_are_rfc_3339_or_ages() {
        let now = 1_000_000_000;
        assert_eq!(parse_time("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_time("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(
            parse_time("2026-12-01T00:00:00Z", now).unwrap(),
            1_796_083_200_000
        );
        // The last two overflowed (a panic in debug builds) until the fuzzer found them.
        for bad in [
            "",
            "h",
            "2w",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "90000000000000090s",
            "9223372036854775807d",
        ] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert_eq!(age_bucket(59 * 60_000), "< 1h");
        assert_eq!(age_bucket(3 * 86_400_000), "1d-7d");
    }
}
