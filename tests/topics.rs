//! `troupe topics apply|check` against the real broker, on topics unique to each test.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use troupe_e2e::TempDir;
use troupe_testkit::{binary, stack, unique, wait_until};

fn troupe(args: &[&str], topics_file: &Path) -> Output {
    Command::new(binary("troupe"))
        .args(args)
        .arg("--topics-file")
        .arg(topics_file)
        .env("TROUPE_KAFKA_BOOTSTRAP", &stack().kafka_bootstrap)
        .output()
        .expect("run troupe")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write_topology(dir: &TempDir, topics: &[(&str, i32)]) -> std::path::PathBuf {
    let mut yaml = String::from("topics:\n");
    for (name, partitions) in topics {
        yaml.push_str(&format!(
            "  - name: {name}\n    key: order_id\n    partitions: {partitions}\n"
        ));
    }
    let path = dir.path().join("topics.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Creates `topic` behind troupe's back, as an operator would by hand, and waits until the
/// broker's metadata lists it with a leader for every partition (a created topic reaches the
/// metadata a moment after the controller accepts it; a check run at once has been seen to
/// call it missing).
async fn create_by_hand(topic: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin = admin();
    let new = config.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |new, (k, v)| new.set(k, v),
    );
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    wait_until(
        "the topic's leaders in the broker's metadata",
        Duration::from_secs(20),
        || {
            let led = partitions_led(topic) == Some(partitions as usize);
            async move { led.then_some(()) }
        },
    )
    .await;
}

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .create()
        .unwrap()
}

/// How many partitions of `topic` the broker's metadata lists, when each has a leader.
fn partitions_led(topic: &str) -> Option<usize> {
    let admin = admin();
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let listed = metadata.topics().iter().find(|t| t.name() == topic)?;
    let led = listed.error().is_none() && listed.partitions().iter().all(|p| p.leader() >= 0);
    led.then_some(listed.partitions().len())
}

#[test]
fn apply_creates_missing_topics_and_is_idempotent() {
    let dir = TempDir::new("topics");
    let a = unique("apply.a");
    let b = unique("apply.b");
    let file = write_topology(&dir, &[(&a, 3), (&b, 1)]);

    let check = troupe(&["topics", "check"], &file);
    assert_eq!(
        check.status.code(),
        Some(1),
        "missing topics fail the check"
    );
    assert!(stdout(&check).contains(&format!("missing   {a}")));

    let first = troupe(&["topics", "apply"], &file);
    assert!(first.status.success(), "{first:?}");
    assert!(
        stdout(&first).contains(&format!("created   {a}")),
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).contains(&format!("created   {b}")),
        "{}",
        stdout(&first)
    );

    let second = troupe(&["topics", "apply"], &file);
    assert!(second.status.success(), "{second:?}");
    assert!(!stdout(&second).contains("created"), "{}", stdout(&second));
    assert!(
        stdout(&second).contains(&format!("in sync   {a}")),
        "{}",
        stdout(&second)
    );

    let check = troupe(&["topics", "check"], &file);
    assert!(check.status.success(), "{}", stdout(&check));
}

#[tokio::test]
async fn drift_is_reported_and_nothing_is_changed() {
    let dir = TempDir::new("drift");
    let topic = unique("drift");
    // Someone created the topic by hand with 2 partitions; topics.yaml says 4.
    create_by_hand(&topic, 2, &[]).await;
    let file = write_topology(&dir, &[(&topic, 4)]);

    let file_for_check = file.clone();
    let check = tokio::task::spawn_blocking(move || troupe(&["topics", "check"], &file_for_check))
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("partitions: topics.yaml says 4, broker has 2"),
        "{}",
        stdout(&check)
    );

    let apply = tokio::task::spawn_blocking(move || troupe(&["topics", "apply"], &file))
        .await
        .unwrap();
    assert!(
        apply.status.success(),
        "apply reports drift but does not fail"
    );
    assert!(
        stdout(&apply).contains(&format!("drift     {topic}")),
        "{}",
        stdout(&apply)
    );
    assert_eq!(
        partitions_led(&topic),
        Some(2),
        "apply must not alter the topic"
    );
}

#[test]
fn an_unreachable_broker_is_one_line_and_non_zero() {
    let dir = TempDir::new("unreachable");
    let file = write_topology(&dir, &[("t", 1)]);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let output = Command::new(binary("troupe"))
        .args(["topics", "check", "--topics-file"])
        .arg(&file)
        .env("TROUPE_KAFKA_BOOTSTRAP", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("troupe: cannot reach Kafka at 127.0.0.1:"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn bad_arguments_are_one_line_and_exit_2() {
    for args in [
        &["topics", "frobnicate"][..],
        &["--no-such-flag"],
        &["topics", "apply", "extra"],
    ] {
        let output = Command::new(binary("troupe")).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("troupe: "), "{stderr}");
    }
    let missing = Command::new(binary("troupe"))
        .args([
            "topics",
            "check",
            "--topics-file",
            "/nonexistent/topics.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/topics.yaml"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_drift_is_reported() {
    let dir = TempDir::new("config-drift");
    let topic = unique("cfgdrift");
    create_by_hand(&topic, 1, &[("retention.ms", "1000")]).await;
    let path = dir.path().join("topics.yaml");
    std::fs::write(
        &path,
        format!(
            "topics:\n  - name: {topic}\n    key: order_id\n    partitions: 1\n    config:\n      retention.ms: \"2000\"\n"
        ),
    )
    .unwrap();
    let check = tokio::task::spawn_blocking(move || troupe(&["topics", "check"], &path))
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("retention.ms: topics.yaml says 2000, broker has 1000"),
        "{}",
        stdout(&check)
    );
}

#[test]
fn bench_pipe_reports_its_rates_and_removes_its_topics() {
    let output = Command::new(binary("troupe"))
        .args(["bench", "pipe", "--messages", "2000", "--json"])
        .env("TROUPE_KAFKA_BOOTSTRAP", &stack().kafka_bootstrap)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["messages"], 2000);
    assert!(
        report["pipe_msgs_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["produce_msgs_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let admin = admin();
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let used: Vec<&str> = report["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(used.len(), 2, "{report}");
    assert!(used.iter().all(|t| t.starts_with("troupe.bench.pipe.")));
    let left: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| used.contains(n))
        .collect();
    assert!(left.is_empty(), "bench topics left behind: {left:?}");
}
