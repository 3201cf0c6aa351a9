//! What `troupe deadletters` parses from its command line: a dead letter's position
//! (`PARTITION/OFFSET`), `--since`/`--until` times, and the filter built from them, applied to
//! a dead letter made of the same input. The module is the CLI's own file, compiled here so the
//! target needs none of the CLI's Kafka and database dependencies.
//!
//! Properties: nothing panics (an absurd age is an error, not an overflow); a position that
//! parses prints back as text that parses to the same position.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../processors/cli/src/deadletters/parked.rs"]
#[allow(dead_code)]
mod parked;

use parked::{parse_time, Filter, Position, Record};

const NOW_MS: i64 = 1_796_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = text.split('\n');
    let mut next = || fields.next().unwrap_or_default();

    let position = next().parse::<Position>();
    if let Ok(position) = &position {
        let printed = position.to_string();
        assert_eq!(printed.parse::<Position>().ok().as_ref(), Some(position));
    }
    let since_ms = parse_time(next(), NOW_MS).ok();
    let until_ms = parse_time(next(), NOW_MS).ok();
    let filter = Filter {
        reasons: vec![next().to_owned()],
        processors: vec![next().to_owned()],
        event_types: vec![next().to_owned()],
        key: Some(next().to_owned()).filter(|k| !k.is_empty()),
        since_ms,
        until_ms,
    };
    let _ = filter.validate();
    let record = Record {
        position: position.unwrap_or(Position {
            partition: 0,
            offset: 0,
        }),
        timestamp_ms: since_ms,
        key: Some(next().as_bytes().to_vec()),
        payload: Some(next().as_bytes().to_vec()),
        headers: fields
            .by_ref()
            .filter_map(|line| line.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    };
    let _ = filter.matches(&record, record.event_type().unwrap_or("-"));
    let _ = (
        record.redriven(),
        record.origin_partition(),
        record.schema_id(),
    );
    let _ = record.original_headers().count();
});
