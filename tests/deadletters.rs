//! `troupe deadletters` against the real broker, on a dead-letter topic of its own (the saga's
//! topics under a prefix, no processor running): filters, dry-run, per-key order, the loop
//! guard, the allowlist, and a redrive killed half-way then run again. The dead letters are
//! written with the headers processors write (`dead_letter_headers`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use troupe_e2e::{header, Saga};
use troupe_events::topics;
use troupe_runtime::deadletter::{dead_letter_headers, headers, Origin, Reason};
use troupe_testkit::{binary, repo_root, stack};

/// A dead letter as a processor parks it.
struct Letter<'a> {
    key: &'a str,
    reason: Reason,
    /// The base topic it was read from (or any name, for the allowlist).
    from: &'a str,
    partition: i32,
    event_id: String,
    redrives: Option<u32>,
}

impl<'a> Letter<'a> {
    fn new(key: &'a str, reason: Reason, partition: i32) -> Self {
        Self {
            key,
            reason,
            from: topics::ORDER_EVENTS,
            partition,
            event_id: format!("{key}-{}", uuid::Uuid::now_v7()),
            redrives: None,
        }
    }
}

async fn park(saga: &Saga, letters: &[Letter<'_>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .create()
        .unwrap();
    let prefix = prefix(saga);
    for letter in letters {
        let from = if letter.from == topics::ORDER_EVENTS {
            format!("{prefix}{}", letter.from)
        } else {
            letter.from.to_owned()
        };
        let mut original = vec![
            ("troupe.event_type".to_owned(), "OrderPlaced".to_owned()),
            ("troupe.event_id".to_owned(), letter.event_id.clone()),
        ];
        if let Some(count) = letter.redrives {
            original.push((headers::REDRIVE_COUNT.to_owned(), count.to_string()));
        }
        let origin = Origin {
            topic: from,
            partition: letter.partition,
            offset: 7,
        };
        let mut out = OwnedHeaders::new();
        for (name, value) in
            dead_letter_headers(letter.reason, "refused", "inventory", &origin, &original)
        {
            out = out.insert(Header {
                key: &name,
                value: Some(&value),
            });
        }
        producer
            .send(
                FutureRecord::to(&format!("{prefix}{}", topics::DEADLETTER))
                    .key(letter.key)
                    .payload(&[1u8, 2, 3][..])
                    .headers(out),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
}

fn prefix(saga: &Saga) -> String {
    saga.env()
        .iter()
        .find(|(k, _)| k == "TROUPE_TOPIC_PREFIX")
        .map(|(_, v)| v.clone())
        .expect("a prefix")
}

fn json(saga: &Saga, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = saga.troupe(&args);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stdout));
    })
}

fn positions(value: &Value, field: &str) -> Vec<String> {
    value[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["from"]
                .as_str()
                .or(m["position"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Every message now on the saga's orders.events, by partition: (event id, redrive count).
fn redriven(saga: &Saga) -> BTreeMap<i32, Vec<(String, String)>> {
    let topic = format!("{}{}", prefix(saga), topics::ORDER_EVENTS);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .set("group.id", "deadletters-test-reader")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..6 {
        assignment
            .add_partition_offset(&topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    let mut ended = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ended < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "orders.events not read"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Ok(m)) => out.entry(m.partition()).or_default().push((
                header(&m, "troupe.event_id"),
                header(&m, headers::REDRIVE_COUNT),
            )),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_keeps_each_keys_order_and_holds_what_it_may_not_send() {
    let saga = Saga::topics_only(&[]).await;
    let mut looping = Letter::new("c", Reason::Rejected, 3);
    looping.redrives = Some(3);
    let mut foreign = Letter::new("d", Reason::Rejected, 0);
    foreign.from = "somewhere.else";
    let letters = [
        Letter::new("a", Reason::InvalidEvent, 1),
        Letter::new("b", Reason::Rejected, 2),
        Letter::new("a", Reason::Rejected, 1),
        looping,
        foreign,
    ];
    park(&saga, &letters).await;

    let stats = json(&saga, &["deadletters", "stats"]);
    assert_eq!(stats["parked"], 5, "{stats}");
    assert_eq!(stats["by"]["reason"]["rejected"], 4, "{stats}");
    assert_eq!(stats["by"]["event_type"]["OrderPlaced"], 5, "{stats}");
    let listed = json(&saga, &["deadletters", "list", "--key", "a"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let shown = json(&saga, &["deadletters", "show", "0"]);
    assert_eq!(shown["payload"]["error"], "not Confluent-framed", "{shown}");
    assert_eq!(shown["payload"]["hex"], "010203", "{shown}");

    // Dry run of the rejected ones: only b may go; a's second waits behind a's first (not
    // selected), c has been redriven 3 times, d's topic is not ours.
    let dry = json(
        &saga,
        &[
            "deadletters",
            "redrive",
            "--reason",
            "rejected",
            "--dry-run",
        ],
    );
    assert_eq!(positions(&dry, "would_move"), ["0/1"], "{dry}");
    let held = dry["held"].as_array().unwrap();
    let why = |position: &str| {
        held.iter()
            .find(|h| h["position"] == position)
            .map(|h| h["why"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{position} not held: {dry}"))
    };
    assert!(why("0/2").contains("waits behind 0/0"), "{dry}");
    assert!(why("0/3").contains("redriven 3 times"), "{dry}");
    assert!(why("0/4").contains("somewhere.else is not"), "{dry}");
    assert!(redriven(&saga).is_empty(), "a dry run sent something");

    let first = json(&saga, &["deadletters", "redrive", "--reason", "rejected"]);
    assert_eq!(positions(&first, "moved"), ["0/1"], "{first}");
    // Then all of a's, in their order, to the partition they came from.
    let second = json(&saga, &["deadletters", "redrive", "--key", "a"]);
    assert_eq!(positions(&second, "moved"), ["0/0", "0/2"], "{second}");
    let back = redriven(&saga);
    let ids = |partition: i32| -> Vec<(String, String)> {
        back.get(&partition).cloned().unwrap_or_default()
    };
    assert_eq!(
        ids(1),
        [
            (letters[0].event_id.clone(), "1".to_owned()),
            (letters[2].event_id.clone(), "1".to_owned())
        ]
    );
    assert_eq!(ids(2), [(letters[1].event_id.clone(), "1".to_owned())]);
    assert_eq!(back.values().map(Vec::len).sum::<usize>(), 3, "{back:?}");

    // What is left, and the record of what went where.
    let left = json(&saga, &["deadletters", "list"]);
    let left: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["position"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["0/3", "0/4"]);
    let all = json(&saga, &["deadletters", "list", "--all"]);
    let audited = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["redriven_to"]
                .as_str()
                .is_some_and(|to| to.contains("troupe.orders.events/"))
        })
        .count();
    assert_eq!(audited, 3, "{all}");
    let again = json(&saga, &["deadletters", "redrive"]);
    assert!(positions(&again, "moved").is_empty(), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_killed_half_way_resumes_and_sends_each_dead_letter_once() {
    let saga = Saga::topics_only(&[]).await;
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let letters: Vec<Letter<'_>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Letter::new(k, Reason::HandlerFailed, (i % 6) as i32))
        .collect();
    park(&saga, &letters).await;

    // 5 a second: killed after the first move is committed, with more to go.
    let mut slow = Command::new(binary("troupe"))
        .args(["deadletters", "redrive", "--rate", "5"])
        .current_dir(repo_root())
        .envs(saga.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("TROUPE_HOME")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(slow.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the redrive ended before moving anything")
            .unwrap();
        if line.starts_with("moved") {
            break;
        }
    }
    slow.kill().unwrap();
    slow.wait().unwrap();
    let first_run = redriven(&saga).values().map(Vec::len).sum::<usize>();
    assert!(
        (1..30).contains(&first_run),
        "{first_run} moved before the kill"
    );

    let rest = json(&saga, &["deadletters", "redrive"]);
    assert_eq!(
        positions(&rest, "moved").len() + first_run,
        30,
        "the second run moves exactly what the first did not: {rest}"
    );
    let mut sent: Vec<String> = redriven(&saga)
        .into_values()
        .flatten()
        .map(|(id, _)| id)
        .collect();
    sent.sort();
    let mut expected: Vec<String> = letters.iter().map(|l| l.event_id.clone()).collect();
    expected.sort();
    assert_eq!(sent, expected, "each dead letter back exactly once");
    let stats = json(&saga, &["deadletters", "stats"]);
    assert_eq!(stats["parked"], 0, "{stats}");
    assert_eq!(stats["redriven"], 30, "{stats}");
}

#[test]
fn bad_deadletters_arguments_are_one_line_and_non_zero() {
    for args in [
        &["deadletters", "list", "--reason", "rejeted"][..],
        &["deadletters", "redrive", "--rate", "0"],
        &["deadletters", "list", "--since", "yesterday"],
        &["deadletters", "show", "x"],
    ] {
        let output = Command::new(binary("troupe"))
            .args(args)
            .current_dir(repo_root())
            .env("TROUPE_KAFKA_BOOTSTRAP", &stack().kafka_bootstrap)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}
