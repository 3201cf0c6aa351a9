//! Copies of the read models: a rebuild into a new copy during live traffic, the switch of the
//! live copy, dropping the retired one, and the `troupe readmodels` commands' refusals.

use std::time::Duration;

use troupe_e2e::Saga;
use troupe_testkit::{stack, wait_until};

use crate::reads::{get, read_models, wait_caught_up};

/// Kills a process the test did not start itself (the projector `troupe readmodels rebuild`
/// starts), whatever happens.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .status();
    }
}

/// Runs the `troupe` CLI with the saga's environment.
fn troupe(saga: &Saga, args: &[&str]) -> std::process::Output {
    std::process::Command::new(troupe_testkit::binary("troupe"))
        .args(args)
        .envs(saga.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run troupe")
}

#[tokio::test]
async fn a_rebuild_during_live_traffic_ends_identical_to_the_live_copy() {
    let saga = Saga::start(&[]).await;
    let (a, b) = (format!("{}_a", saga.id), format!("{}_b", saga.id));
    saga.spawn_projector(&a, 0, None).await;
    // Follows whichever copy is live.
    let live = saga.spawn_query(0, None, 5000).await;
    assert_eq!(get(&format!("{live}/health")).await.1["copy"], a.as_str());

    saga.seed_stock(500, 13).await;
    let placing = {
        let env: Vec<(String, String)> = saga.env().to_vec();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(troupe_testkit::binary("troupe"))
                .args([
                    "produce",
                    "--orders",
                    "500",
                    "--seed",
                    "13",
                    "--rate",
                    "50",
                    "--no-stock",
                ])
                .envs(env)
                .output()
                .expect("run troupe produce")
        })
    };
    wait_until("orders to flow", Duration::from_secs(60), || async {
        (saga.snapshot().await.orders.len() >= 100).then_some(())
    })
    .await;

    // Rebuild while orders keep coming: copy b from offset 0, live once caught up.
    let rebuild = {
        let env: Vec<(String, String)> = saga.env().to_vec();
        let b = b.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(troupe_testkit::binary("troupe"))
                .args(["readmodels", "rebuild", &b, "--timeout", "240"])
                .envs(env)
                .output()
                .expect("run troupe readmodels rebuild")
        })
        .await
        .unwrap()
    };
    let text = String::from_utf8_lossy(&rebuild.stdout).into_owned();
    let pid: u32 = text
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no projector pid in: {text}{}",
                String::from_utf8_lossy(&rebuild.stderr)
            )
        });
    let _projector_b = KillOnDrop(pid);
    assert!(
        rebuild.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert!(text.contains("applied, lag"), "no progress shown: {text}");
    assert!(text.contains(&format!("copy {b} is live")), "{text}");
    assert!(text.contains(&format!("copy {a} is retired")), "{text}");

    let placed = placing.await.unwrap();
    assert!(
        placed.status.success(),
        "{}",
        String::from_utf8_lossy(&placed.stderr)
    );
    let snapshot = saga.settle(500, Duration::from_secs(150)).await;
    wait_caught_up(&saga, &format!("troupe-projector-{a}")).await;
    wait_caught_up(&saga, &format!("troupe-projector-{b}")).await;
    wait_until(
        "the API to serve the new copy",
        Duration::from_secs(10),
        || async { (get(&format!("{live}/health")).await.1["copy"] == b.as_str()).then_some(()) },
    )
    .await;

    // The rebuilt copy equals the copy that was fed live all along.
    let url_a = saga.spawn_query(1, Some(&a), 5000).await;
    let from_a = read_models(&url_a, snapshot.orders.keys()).await;
    let from_b = read_models(&live, snapshot.orders.keys()).await;
    assert_eq!(from_a.len(), 500);
    for (id, model) in &from_a {
        assert_eq!(
            model, &from_b[id],
            "order {id}: the rebuilt copy differs from the live one"
        );
    }
    assert_eq!(
        get(&format!("{url_a}/stats/daily")).await.1,
        get(&format!("{live}/stats/daily")).await.1
    );
    for sku in snapshot.stock.keys() {
        assert_eq!(
            get(&format!("{url_a}/stock/{sku}")).await.1,
            get(&format!("{live}/stock/{sku}")).await.1,
            "{sku}"
        );
    }

    // The live copy cannot be dropped; the retired one can, once its projector is stopped.
    let refused = troupe(&saga, &["readmodels", "drop", &b]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is live"));
    saga.kill9("projector", 0);
    let dropped = troupe(&saga, &["readmodels", "drop", &a]);
    assert!(
        dropped.status.success(),
        "{}",
        String::from_utf8_lossy(&dropped.stderr)
    );
    let listed = troupe(&saga, &["readmodels", "list"]);
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listing.contains(&b) && listing.contains("live") && !listing.contains(&a),
        "{listing}"
    );
    let postgres = sqlx::PgPool::connect(&format!("{}/postgres", stack().postgres_url))
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(format!("troupe_readmodels_{a}"))
            .fetch_one(&postgres)
            .await
            .unwrap();
    assert!(!exists, "the dropped copy's database is still there");
    let cql = scylla::client::session_builder::SessionBuilder::new()
        .known_node(&stack().scylla_nodes)
        .build()
        .await
        .unwrap();
    let keyspaces = cql
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (format!("troupe_readmodels_{a}"),),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows_num();
    assert_eq!(keyspaces, 0, "the dropped copy's keyspace is still there");
}

#[test]
fn readmodels_commands_refuse_what_they_cannot_do_in_one_line() {
    let prefix = format!("{}.", troupe_testkit::unique("t"));
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let output = std::process::Command::new(troupe_testkit::binary("troupe"))
            .args(args)
            .envs(stack().vars().iter().filter(|(k, _)| *k != "TROUPE_HOME"))
            .env_remove("TROUPE_HOME")
            .env("TROUPE_TOPIC_PREFIX", &prefix)
            .envs(extra.iter().copied())
            .output()
            .expect("run troupe");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (
            output.status.code(),
            stderr,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    for (args, extra, expected) in [
        (
            &["readmodels", "drop", "nothere"][..],
            &[][..],
            "there is no read-model copy nothere",
        ),
        (
            &["readmodels", "rebuild", "Bad-Name"][..],
            &[][..],
            "is not a copy name",
        ),
        (
            &["readmodels", "rebuild", "b"][..],
            &[("TROUPE_KAFKA_BOOTSTRAP", "127.0.0.1:9")][..],
            "",
        ),
    ] {
        let (code, stderr, _) = run(args, extra);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("troupe: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    // The failed rebuild registered nothing.
    let (code, stderr, listing) = run(&["readmodels", "list"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        listing.trim().lines().count(),
        1,
        "only the header: {listing}"
    );
}
