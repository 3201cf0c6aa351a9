//! `troupe bench saga`, small: the harness runs the five processors, measures, reports numbers
//! that agree with each other, and leaves nothing behind.

use std::process::Command;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::Value;
use troupe_testkit::{binary, repo_root, stack};

fn troupe(args: &[&str]) -> std::process::Output {
    Command::new(binary("troupe"))
        .args(args)
        .current_dir(repo_root())
        .envs(stack().vars().iter().filter(|(k, _)| *k != "TROUPE_HOME"))
        .output()
        .expect("run troupe")
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test]
async fn a_small_saga_bench_reports_consistent_figures_and_cleans_up() {
    let output = tokio::task::spawn_blocking(|| {
        troupe(&[
            "bench",
            "saga",
            "--rates",
            "20,40",
            "--step-seconds",
            "4",
            "--latency-seconds",
            "4",
            "--latency-fractions",
            "0.5",
            "--pipe-messages",
            "20000",
            "--json",
        ])
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    // Every step drained, and every order of a drained step ended exactly once.
    let steps = report["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{report}");
    for step in steps {
        assert_eq!(step["drained"], true, "{step}");
        assert_eq!(step["orders"], f(&step["rate"]) as u64 * 4, "{step}");
        assert_eq!(step["completed"], step["orders"], "{step}");
        assert_eq!(step["latency"]["count"], step["orders"], "{step}");
    }

    // A happy order is eight messages: PlaceOrder, OrderPlaced, StockReserved,
    // PaymentAuthorized, ShipmentScheduled, OrderConfirmed, StockCommitted, CustomerNotified.
    // Counted as distinct events; the relays' at-least-once duplicates are reported apart.
    let per_order = f(&report["messages_per_order"]);
    assert!((per_order - 8.0).abs() < 0.001, "{report}");
    assert!(
        report["duplicate_messages"].as_i64().unwrap() >= 0,
        "{report}"
    );

    // The transactional pipe ran, and its ratio is what its parts say.
    let txpipe = f(&report["txpipe"]["msgs_per_sec"]);
    assert!(txpipe > 0.0, "{report}");
    if let Some(sustainable) = report["sustainable_msgs_per_sec"].as_f64() {
        let ratio = sustainable / txpipe;
        assert!(
            (f(&report["ratio_to_txpipe"]) - ratio).abs() < 0.001,
            "{report}"
        );
    }

    // One latency phase, at half the sustainable rate.
    let phases = report["latency"].as_array().unwrap();
    assert_eq!(phases.len(), 1, "{report}");
    let latency = &phases[0];
    assert_eq!(latency["fraction"], 0.5, "{latency}");
    assert_eq!(latency["completed"], latency["orders"], "{latency}");
    let e2e = &latency["end_to_end"];
    assert_eq!(e2e["count"], latency["orders"]);
    assert!(f(&e2e["p50_ms"]) > 0.0);
    assert!(f(&e2e["p50_ms"]) <= f(&e2e["p90_ms"]));
    assert!(f(&e2e["p90_ms"]) <= f(&e2e["p99_ms"]));
    assert!(f(&e2e["p99_ms"]) <= f(&e2e["max_ms"]));

    // Each hop of the happy path is seen once per order, with its stages from the trace header.
    let hops = latency["hops"].as_array().unwrap();
    for (from, to) in [
        ("PlaceOrder", "OrderPlaced"),
        ("OrderPlaced", "StockReserved"),
        ("StockReserved", "PaymentAuthorized"),
        ("PaymentAuthorized", "ShipmentScheduled"),
        ("ShipmentScheduled", "OrderConfirmed"),
        ("OrderConfirmed", "StockCommitted"),
        ("OrderConfirmed", "CustomerNotified"),
    ] {
        let hop = hops
            .iter()
            .find(|h| h["from"] == from && h["to"] == to)
            .unwrap_or_else(|| panic!("no hop {from} → {to} in {latency}"));
        assert_eq!(hop["hop"]["count"], latency["orders"], "{hop}");
        // The effects carried their trace, and no stage is longer than the longest hop. (A
        // relay may publish a row before its writer has noted the commit time; such hops have
        // no stages, so not every hop counts.)
        for stage in ["fetch", "linger", "transaction", "relay_wake", "produce"] {
            let count = f(&hop[stage]["count"]);
            assert!(
                count >= f(&latency["orders"]) / 2.0 && count <= f(&latency["orders"]),
                "{stage}: {hop}"
            );
            assert!(
                f(&hop[stage]["p50_ms"]) <= f(&hop["hop"]["max_ms"]) + 1.0,
                "{stage}: {hop}"
            );
        }
    }

    // The processes were measured.
    let processes = latency["processes"].as_array().unwrap();
    for service in ["order", "inventory", "payment", "shipping", "notification"] {
        let p = processes
            .iter()
            .find(|p| p["name"] == format!("troupe-{service}"))
            .unwrap_or_else(|| panic!("no troupe-{service} in {latency}"));
        assert!(f(&p["peak_rss_mib"]) > 1.0, "{p}");
        assert!(f(&p["cpu_seconds"]) > 0.0, "{p}");
    }

    // The ratio is what its parts say.
    if let Some(sustainable) = report["sustainable_msgs_per_sec"].as_f64() {
        let ratio = sustainable / f(&report["pipe"]["pipe_msgs_per_sec"]);
        assert!(
            (f(&report["ratio_to_pipe"]) - ratio).abs() < 0.001,
            "{report}"
        );
    }
    assert_eq!(report["dead_letters"], 0);

    // Nothing left behind: topics deleted, databases dropped.
    let run = report["run"].as_str().unwrap().to_owned();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack().kafka_bootstrap)
        .create()
        .unwrap();
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let prefix = format!("bench-{run}.");
    let left: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "topics left behind: {left:?}");
    let pool = sqlx::PgPool::connect(&format!("{}/postgres", stack().postgres_url))
        .await
        .unwrap();
    let databases: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
            .bind(format!("troupe_bench_{run}_%"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(databases, 0, "databases left behind");
}

#[test]
fn bad_bench_arguments_are_one_line_and_fail() {
    for args in [
        &["bench", "saga", "--rates", "0"][..],
        &["bench", "saga", "--factor", "1"][..],
        &["bench", "saga", "--step-seconds", "1"][..],
    ] {
        let output = troupe(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("troupe: "), "{stderr}");
    }
}
