//! What two observations tell together: per group and topic, how fast the lag moves, the
//! produce and consume rates, and how long until the lag closes at that pace.

use std::collections::BTreeMap;

use super::observe::Observation;

/// One group's figures on one topic (its partitions summed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub lag: i64,
    /// Messages per second the lag grows (negative: shrinks).
    pub velocity: f64,
    /// Messages per second written to the topic.
    pub produced: f64,
    /// Messages per second the group committed.
    pub consumed: f64,
    /// Seconds until the lag is 0 at this pace: 0 when there is none, infinite when it does
    /// not shrink.
    pub time_to_close: f64,
}

/// (group, topic)
pub type GroupTopic = (String, String);

/// Per (group, topic) seen in both observations. Empty when `now` is not later than
/// `before`.
pub fn paces(before: &Observation, now: &Observation) -> BTreeMap<GroupTopic, Pace> {
    let seconds = (now.at_ms - before.at_ms) as f64 / 1000.0;
    if seconds <= 0.0 {
        return BTreeMap::new();
    }
    // (lag, log end, committed) summed over partitions, per (group, topic).
    let sums = |o: &Observation| {
        let mut sums: BTreeMap<GroupTopic, (i64, i64, i64)> = BTreeMap::new();
        for ((group, topic, _), f) in &o.partitions {
            let entry = sums.entry((group.clone(), topic.clone())).or_default();
            entry.0 += f.lag;
            entry.1 += f.log_end;
            entry.2 += f.committed;
        }
        sums
    };
    let (then, current) = (sums(before), sums(now));
    current
        .into_iter()
        .filter_map(|(key, (lag, end, done))| {
            let (lag0, end0, done0) = then.get(&key)?;
            let velocity = (lag - lag0) as f64 / seconds;
            let time_to_close = if lag == 0 {
                0.0
            } else if velocity < 0.0 {
                lag as f64 / -velocity
            } else {
                f64::INFINITY
            };
            Some((
                key,
                Pace {
                    lag,
                    velocity,
                    produced: (end - end0).max(0) as f64 / seconds,
                    consumed: (done - done0).max(0) as f64 / seconds,
                    time_to_close,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::observe::Figures;
    use super::*;

    fn observation(at_ms: i64, parts: &[(&str, i32, i64, i64)]) -> Observation {
        Observation {
            at_ms,
            partitions: parts
                .iter()
                .map(|(topic, partition, end, done)| {
                    let figures = Figures {
                        log_end: *end,
                        committed: *done,
                        lag: end - done,
                        seconds: None,
                    };
                    (("g".to_owned(), (*topic).to_owned(), *partition), figures)
                })
                .collect(),
            members: BTreeMap::new(),
        }
    }

    fn pace(before: &Observation, now: &Observation) -> Pace {
        paces(before, now)[&("g".to_owned(), "t".to_owned())]
    }

    #[test]
    fn a_shrinking_lag_closes_at_its_pace() {
        // Two partitions: 100 behind in all, 10 s later 40 behind while 60 more were written.
        let before = observation(0, &[("t", 0, 100, 50), ("t", 1, 100, 50)]);
        let now = observation(10_000, &[("t", 0, 130, 110), ("t", 1, 130, 110)]);
        let p = pace(&before, &now);
        assert_eq!(p.lag, 40);
        assert!((p.velocity + 6.0).abs() < 1e-9, "{p:?}");
        assert!((p.produced - 6.0).abs() < 1e-9 && (p.consumed - 12.0).abs() < 1e-9);
        assert!((p.time_to_close - 40.0 / 6.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn a_growing_or_flat_lag_never_closes_and_no_lag_is_closed() {
        let before = observation(0, &[("t", 0, 100, 50)]);
        let growing = observation(5_000, &[("t", 0, 200, 60)]);
        assert!(pace(&before, &growing).time_to_close.is_infinite());
        assert!(pace(&before, &growing).velocity > 0.0);
        let flat = observation(5_000, &[("t", 0, 100, 50)]);
        assert!(pace(&before, &flat).time_to_close.is_infinite());
        let caught_up = observation(5_000, &[("t", 0, 100, 100)]);
        assert_eq!(pace(&before, &caught_up).time_to_close, 0.0);
    }

    #[test]
    fn no_pace_without_elapsed_time_or_an_earlier_figure() {
        let before = observation(1_000, &[("t", 0, 100, 50)]);
        assert!(paces(&before, &before).is_empty());
        let other = observation(2_000, &[("u", 0, 100, 50)]);
        assert!(paces(&before, &other).is_empty());
    }
}
