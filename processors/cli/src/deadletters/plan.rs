//! What a redrive moves and what it leaves parked, and why. Pure: no I/O.
//!
//! Per-key order: the dead-letter topic holds a key's dead letters in the order they were
//! parked (it is keyed by the original key). A dead letter goes back only if every earlier dead
//! letter of its key has gone back already or goes back in this run, before it; otherwise it
//! stays parked, saying which one holds it. A redrive sends a key's messages in that order, on
//! one idempotent producer, to the partition each came from. A message redriven and parked
//! again takes the place of its first parking (found by its event id), so it still goes before
//! the dead letters of its key parked after that.

use std::collections::{BTreeMap, BTreeSet};

use super::parked::{Position, Record};

/// What a redrive does with one selected dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Back to `topic`, on `partition` when known (the one it was read from).
    Move {
        topic: String,
        partition: Option<i32>,
    },
    /// Stays parked, for this reason.
    Held(String),
}

/// The rules a redrive follows.
pub struct Rules<'a> {
    /// Whether a topic may be written to: it is in topics.yaml, and not the dead-letter topic.
    pub allowed: &'a dyn Fn(&str) -> bool,
    /// A dead letter redriven this many times already stays parked (the loop guard).
    pub max_redrives: u32,
    /// Keep per-key order (the default); off, a dead letter moves even when an earlier one of
    /// its key stays parked.
    pub keep_key_order: bool,
    /// Dead letters parked before this time (ms) stay: the consumers that applied the message
    /// have forgotten its id (their inbox keeps ids `TROUPE_INBOX_KEEP_HOURS`) and would apply
    /// it again. `None` lifts the rule.
    pub parked_after_ms: Option<i64>,
}

/// The plan for `dead_letters` (the topic's dead letters, in topic order, audit records left
/// out): a verdict for each selected one that was not redriven already.
pub fn plan(
    dead_letters: &[Record],
    redriven: &BTreeSet<Position>,
    selected: impl Fn(&Record) -> bool,
    rules: &Rules<'_>,
) -> Vec<(Position, Verdict)> {
    // For each key, the first of its dead letters that stays parked.
    let mut blocked: BTreeMap<Vec<u8>, Position> = BTreeMap::new();
    let mut verdicts = Vec::new();
    for record in in_parking_order(dead_letters) {
        if redriven.contains(&record.position) {
            continue;
        }
        let verdict = if selected(record) {
            let verdict = verdict(record, &blocked, rules);
            verdicts.push((record.position, verdict.clone()));
            verdict
        } else {
            Verdict::Held("not selected".into())
        };
        if let (Verdict::Held(_), Some(key)) = (&verdict, &record.key) {
            blocked.entry(key.clone()).or_insert(record.position);
        }
    }
    verdicts
}

/// The dead letters in the order their messages were first parked: a copy parked again after a
/// redrive (same key and event id) is placed at its first parking.
fn in_parking_order(dead_letters: &[Record]) -> Vec<&Record> {
    let mut first: BTreeMap<(Option<&[u8]>, &str), Position> = BTreeMap::new();
    for record in dead_letters {
        if let Some(id) = record.header(troupe_runtime::processor::EVENT_ID_HEADER) {
            first
                .entry((record.key.as_deref(), id))
                .or_insert(record.position);
        }
    }
    let place = |record: &Record| {
        record
            .header(troupe_runtime::processor::EVENT_ID_HEADER)
            .and_then(|id| first.get(&(record.key.as_deref(), id)).copied())
            .unwrap_or(record.position)
    };
    let mut ordered: Vec<&Record> = dead_letters.iter().collect();
    ordered.sort_by_key(|r| (place(r), r.position));
    ordered
}

fn verdict(record: &Record, blocked: &BTreeMap<Vec<u8>, Position>, rules: &Rules<'_>) -> Verdict {
    let Some(topic) = record.origin_topic() else {
        return Verdict::Held("no troupe.dlq.topic header: nowhere to send it".into());
    };
    if !(rules.allowed)(topic) {
        return Verdict::Held(format!(
            "{topic} is not a topic of topics.yaml a redrive may write to"
        ));
    }
    if let (Some(after), Some(parked)) = (rules.parked_after_ms, record.timestamp_ms) {
        if parked < after {
            return Verdict::Held(
                "parked longer ago than the consumers' inbox remembers ids: it could be applied twice (--past-inbox-memory sends it anyway)".into(),
            );
        }
    }
    let count = record.redrive_count();
    if count >= rules.max_redrives {
        return Verdict::Held(format!(
            "redriven {count} times already (--max-redrives {})",
            rules.max_redrives
        ));
    }
    if rules.keep_key_order {
        if let Some(earlier) = record.key.as_ref().and_then(|k| blocked.get(k)) {
            return Verdict::Held(format!(
                "waits behind {earlier}, an earlier dead letter of its key that stays parked"
            ));
        }
    }
    Verdict::Move {
        topic: topic.to_owned(),
        partition: record.origin_partition(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parked::tests::dead;
    use super::*;
    use troupe_runtime::deadletter::headers;

    fn rules(allowed: &dyn Fn(&str) -> bool) -> Rules<'_> {
        Rules {
            allowed,
            max_redrives: 3,
            keep_key_order: true,
            parked_after_ms: None,
        }
    }

    fn moves(plan: &[(Position, Verdict)]) -> Vec<i64> {
        plan.iter()
            .filter(|(_, v)| matches!(v, Verdict::Move { .. }))
            .map(|(p, _)| p.offset)
            .collect()
    }

    fn at(offset: i64) -> Position {
        Position {
            partition: 0,
            offset,
        }
    }

    #[test]
    fn selected_dead_letters_go_back_where_they_came_from_in_topic_order() {
        let letters = [dead(0, "a", "rejected", "t"), dead(1, "b", "rejected", "t")];
        let allowed = |t: &str| t == "t";
        let plan = plan(&letters, &BTreeSet::new(), |_| true, &rules(&allowed));
        assert_eq!(moves(&plan), [0, 1]);
        assert_eq!(
            plan[0].1,
            Verdict::Move {
                topic: "t".into(),
                partition: Some(2)
            }
        );
    }

    #[test]
    fn a_key_waits_behind_its_earlier_dead_letter_that_stays_parked() {
        let letters = [
            dead(0, "a", "invalid_event", "t"),
            dead(1, "b", "rejected", "t"),
            dead(2, "a", "rejected", "t"),
        ];
        let allowed = |_: &str| true;
        // Only `rejected` selected: a's first dead letter stays, so a's second waits.
        let plan = plan(
            &letters,
            &BTreeSet::new(),
            |r| r.reason() == "rejected",
            &rules(&allowed),
        );
        assert_eq!(moves(&plan), [1]);
        assert_eq!(
            plan[1].1,
            Verdict::Held(
                "waits behind 0/0, an earlier dead letter of its key that stays parked".into()
            )
        );
        // Once a's first one was redriven (an earlier run), the second may go.
        let earlier_run = BTreeSet::from([at(0)]);
        let plan = super::plan(
            &letters,
            &earlier_run,
            |r| r.reason() == "rejected",
            &rules(&allowed),
        );
        assert_eq!(moves(&plan), [1, 2]);
        // Without the order rule it goes at once.
        let loose = Rules {
            keep_key_order: false,
            ..rules(&allowed)
        };
        let plan = super::plan(
            &letters,
            &BTreeSet::new(),
            |r| r.reason() == "rejected",
            &loose,
        );
        assert_eq!(moves(&plan), [1, 2]);
    }

    #[test]
    fn the_loop_guard_and_the_allowlist_hold_a_dead_letter_and_its_key() {
        let mut looping = dead(0, "a", "rejected", "t");
        looping
            .headers
            .push((headers::REDRIVE_COUNT.into(), "3".into()));
        let letters = [
            looping,
            dead(1, "a", "rejected", "t"),
            dead(2, "b", "rejected", "elsewhere"),
        ];
        let allowed = |t: &str| t == "t";
        let plan = plan(&letters, &BTreeSet::new(), |_| true, &rules(&allowed));
        assert!(moves(&plan).is_empty(), "{plan:?}");
        assert_eq!(
            plan[0].1,
            Verdict::Held("redriven 3 times already (--max-redrives 3)".into())
        );
        assert!(matches!(&plan[2].1, Verdict::Held(why) if why.contains("elsewhere is not")));
    }

    #[test]
    fn what_was_redriven_already_is_not_planned_again() {
        let letters = [dead(0, "a", "rejected", "t"), dead(1, "a", "rejected", "t")];
        let allowed = |_: &str| true;
        let plan = plan(
            &letters,
            &BTreeSet::from([at(0)]),
            |_| true,
            &rules(&allowed),
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(moves(&plan), [1]);
    }

    #[test]
    fn a_message_parked_again_keeps_its_first_place_in_its_keys_order() {
        let first = dead(0, "a", "rejected", "t");
        let later = dead(1, "a", "rejected", "t");
        // 0/0 went back and was parked again as 0/2, with its event id.
        let mut again = first.clone();
        again.position = at(2);
        again
            .headers
            .push((headers::REDRIVE_COUNT.into(), "1".into()));
        let letters = [first, later, again];
        let allowed = |_: &str| true;
        let redriven = BTreeSet::from([at(0)]);
        // Only 0/1 selected: it waits behind the copy parked again.
        let plan = plan(
            &letters,
            &redriven,
            |r| r.position == at(1),
            &rules(&allowed),
        );
        assert_eq!(
            plan,
            [(
                at(1),
                Verdict::Held(
                    "waits behind 0/2, an earlier dead letter of its key that stays parked".into()
                )
            )]
        );
        // Both selected: the copy goes first.
        let plan = super::plan(&letters, &redriven, |_| true, &rules(&allowed));
        assert_eq!(moves(&plan), [2, 1]);
    }

    #[test]
    fn dead_letters_older_than_the_inbox_memory_stay() {
        let letters = [dead(1, "a", "rejected", "t"), dead(9, "b", "rejected", "t")];
        let allowed = |_: &str| true;
        let rules = Rules {
            parked_after_ms: Some(5_000),
            ..rules(&allowed)
        };
        let plan = plan(&letters, &BTreeSet::new(), |_| true, &rules);
        assert_eq!(moves(&plan), [9]);
        assert!(matches!(&plan[0].1, Verdict::Held(why) if why.contains("inbox")));
    }
}
