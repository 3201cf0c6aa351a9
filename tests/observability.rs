//! What an operator sees, checked against the real Prometheus of the local stack during a saga
//! run: the saga's processes, its query API and a lag exporter register with it, as they do in
//! the local stack, and the dashboards' queries, the alert expressions and the saga tracker are
//! asked what they show.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use troupe_e2e::{get_json, Saga};
use troupe_observability::{alert_rules, panel_queries};
use troupe_testkit::{binary, repo_root, stack, wait_until};
use uuid::Uuid;

/// Panels whose metric only has series once something goes wrong that this run does not
/// provoke: an event the choreography does not allow (the saga tests fail on any), and an event
/// written with an older schema version (the evolution tests cover upcasting).
const MINUTE: Duration = Duration::from_secs(60);

const EMPTY_WHEN_HEALTHY: [&str; 2] = [
    "Choreography violations",
    "Upcasts by event type and version",
];

/// An instant query: the result's series (labels, value).
async fn query(expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let url = format!(
        "{}/api/v1/query?query={}",
        stack().prometheus_url,
        encode(expr)
    );
    let (status, body) = get_json(&url).await;
    assert_eq!(status, 200, "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = series["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether alert `name`'s expression returns a series whose `label` is `value`.
async fn fires(name: &str, label: &str, value: &str) -> bool {
    let rules = alert_rules(repo_root().join("observability/alerts.yml")).expect("alerts.yml");
    let rule = rules
        .iter()
        .find(|r| r.name == name)
        .expect("the alert exists");
    query(&rule.expr)
        .await
        .iter()
        .any(|(labels, _)| labels.get(label).map(String::as_str) == Some(value))
}

/// `troupe lag export` over the saga's topics, registered with the stack's Prometheus; killed
/// on drop.
struct Exporter(Child);

impl Exporter {
    fn spawn(saga: &Saga, home: &str) -> Self {
        let child = Command::new(binary("troupe"))
            .args([
                "lag",
                "export",
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "1",
            ])
            .current_dir(repo_root())
            .envs(saga.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TROUPE_HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start troupe lag export");
        Self(child)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // SIGTERM: it removes its scrape target.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Deterministically refuses `order` in the order service's database, so its PlaceOrder is
/// dead-lettered (`handler_failed`) after the bounded retries while the read model shows it.
async fn poison(saga: &Saga, order: Uuid) {
    let url = troupe_runtime::config::with_database(&stack().postgres_url, &saga.database("order"));
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    for statement in [
        format!(
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN
               IF NEW.order_id = '{order}' THEN
                 RAISE EXCEPTION 'this order breaks a rule' USING ERRCODE = 'check_violation';
               END IF;
               RETURN NEW;
             END $$ LANGUAGE plpgsql"
        ),
        "CREATE TRIGGER poison BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION poison()"
            .to_owned(),
    ] {
        sqlx::query(&statement).execute(&db).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_alerts_and_the_saga_tracker_show_a_real_run() {
    let home = std::env::var("TROUPE_HOME").expect("TROUPE_HOME: source .troupe/stack.env");
    let saga = Saga::start(&[
        ("TROUPE_HOME", &home),
        ("TROUPE_SAGA_STALL_AFTER", "3s"),
        ("TROUPE_SAGA_TRACK_INTERVAL_MS", "500"),
        ("TROUPE_LAG_INTERVAL_MS", "1000"),
    ])
    .await;
    saga.spawn_projector(&saga.id, 0, None).await;
    let api = saga.spawn_query(0, Some(&saga.id), 10_000).await;
    let query_instance = api.trim_start_matches("http://").to_owned();
    let _exporter = Exporter::spawn(&saga, &home);

    // Prometheus scrapes the order service before anything is dead-lettered there: a counter
    // first seen at 1 shows no increase.
    let order_instance = format!("127.0.0.1:{}", saga.port("order", 0));
    let scraped = format!(r#"troupe_dead_letters_total{{instance="{order_instance}"}}"#);
    wait_until("Prometheus to scrape the order service", MINUTE, || async {
        (!query(&scraped).await.is_empty()).then_some(())
    })
    .await;

    // One order whose request is dead-lettered, then a run of good ones.
    let poisoned = Uuid::now_v7();
    poison(&saga, poisoned).await;
    let published = saga.troupe(&["publish", "PlaceOrder", "--order", &poisoned.to_string()]);
    let position = String::from_utf8_lossy(&published.stdout)
        .split_whitespace()
        .last()
        .expect("a position")
        .to_owned();
    saga.seed_stock(40, 23).await;
    saga.place(40, 23, 20);
    saga.settle(40, Duration::from_secs(120)).await;

    // One order's causation tree, from its request to its outcome, with where each was read.
    let (_, listed) = get_json(&format!("{api}/customers/cust-0/orders?limit=1")).await;
    let order = listed["orders"][0]["order_id"]
        .as_str()
        .expect("an order")
        .to_owned();
    let (status, trace) = get_json(&format!("{api}/orders/{order}/trace")).await;
    assert_eq!(status, 200, "{trace}");
    let events = trace["events"].as_array().expect("events");
    let ids: Vec<&Value> = events.iter().map(|e| &e["event_id"]).collect();
    assert_eq!(events[0]["event_type"], "PlaceOrder", "{trace}");
    assert!(events[0]["causation_id"].is_null(), "{trace}");
    for event in &events[1..] {
        assert!(
            ids.contains(&&event["causation_id"]),
            "a cause outside the order: {trace}"
        );
    }
    // Positions name the base topic, as `troupe` prints them: `troupe.orders.events/3@17`.
    assert!(
        events.iter().all(|e| e["position"]
            .as_str()
            .is_some_and(|p| p.starts_with("troupe.") && p.contains('@'))),
        "{trace}"
    );
    let printed = Command::new(binary("troupe"))
        .args(["trace", &order])
        .env("TROUPE_QUERY_URL", &api)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.starts_with("PlaceOrder by "), "{printed}");
    assert!(
        printed.contains("\n  OrderPlaced by order (+")
            || printed.contains("\n  OrderRejected by order (+"),
        "{printed}"
    );

    // Read-your-writes through the API: the request is applied by the read model.
    let (status, order) =
        get_json(&format!("{api}/orders/{poisoned}?min_position={position}")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "REQUESTED", "{order}");

    // The tracker: the order waits on the order service past its allowance.
    let stalled_url = format!("{api}/sagas?status=stalled");
    wait_until("the poisoned order listed as stalled", MINUTE, || async {
        let (_, body) = get_json(&stalled_url).await;
        let sagas = body["sagas"].as_array().cloned().unwrap_or_default();
        sagas
            .iter()
            .any(|s| {
                s["order_id"] == poisoned.to_string()
                    && s["status"] == "REQUESTED"
                    && s["waiting_on"] == serde_json::json!(["order"])
            })
            .then_some(())
    })
    .await;
    let (_, body) = get_json(&stalled_url).await;
    assert_eq!(body["census"]["states"]["stalled"], 1, "{body}");
    assert_eq!(
        body["sagas"].as_array().unwrap().len(),
        1,
        "only the poisoned order: {body}"
    );
    let listed = Command::new(binary("troupe"))
        .args(["sagas", "stalled"])
        .env("TROUPE_QUERY_URL", &api)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&poisoned.to_string()) && listed.contains("order"),
        "{listed}"
    );
    let selector = format!(r#"troupe_sagas{{state="stalled", instance="{query_instance}"}}"#);
    wait_until(
        "troupe_sagas{state=stalled} = 1 in Prometheus",
        MINUTE,
        || async {
            query(&selector)
                .await
                .iter()
                .any(|(_, v)| *v == 1.0)
                .then_some(())
        },
    )
    .await;
    assert!(fires("TroupeSagasStalled", "job", "troupe").await);
    wait_until("the dead-letter alert's expression", MINUTE, || async {
        fires("TroupeDeadLetters", "reason", "handler_failed")
            .await
            .then_some(())
    })
    .await;

    // Every panel shows something.
    let queries = panel_queries();
    let deadline = std::time::Instant::now() + 2 * MINUTE;
    let missing = loop {
        let mut missing = Vec::new();
        for q in &queries {
            if !EMPTY_WHEN_HEALTHY.contains(&q.panel.as_str()) && query(&q.expr).await.is_empty() {
                missing.push(format!("{} / {}: {}", q.dashboard, q.panel, q.expr));
            }
        }
        if missing.is_empty() || std::time::Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        missing.is_empty(),
        "panels without series:\n{}",
        missing.join("\n")
    );

    // The lag panels' offsets are the broker's: nothing moves once the run settled.
    let shipping = saga.group("shipping");
    let broker = saga.offsets(
        &shipping,
        &["troupe.orders.events", "troupe.payment.events"],
    );
    assert!(
        broker.iter().any(|(_, _, _, committed)| *committed > 0),
        "{broker:?}"
    );
    let deadline = std::time::Instant::now() + MINUTE;
    let differences = loop {
        let mut differences = Vec::new();
        for (topic, partition, end, committed) in &broker {
            let selector = |metric: &str| {
                format!(
                    r#"{metric}{{group="{shipping}", topic="{topic}", partition="{partition}"}}"#
                )
            };
            let committed_at = query(&selector("troupe_group_committed_offset")).await;
            let lag = query(&selector("troupe_group_lag_messages")).await;
            let values = |series: &[(BTreeMap<String, String>, f64)]| -> Vec<f64> {
                series.iter().map(|(_, v)| *v).collect()
            };
            if committed_at.len() > 1 {
                eprintln!("more than one exporter's series: {committed_at:?}");
            }
            // Every series (one per exporter watching these topics) shows the broker's figure.
            let all = |series: &[(BTreeMap<String, String>, f64)], value: i64| {
                !series.is_empty() && series.iter().all(|(_, v)| *v == value as f64)
            };
            if !all(&committed_at, *committed) || !all(&lag, end - committed) {
                differences.push(format!(
                    "{topic}/{partition}: broker {committed} of {end}, prometheus committed {:?} lag {:?}",
                    values(&committed_at),
                    values(&lag)
                ));
            }
        }
        if differences.is_empty() || std::time::Instant::now() >= deadline {
            break differences;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        differences.is_empty(),
        "the exporter is not the broker:\n{}",
        differences.join("\n")
    );

    // Shipping dies: its target goes down, its group empties, and its lag ages past the alert.
    let shipping_instance = format!("127.0.0.1:{}", saga.port("shipping", 0));
    saga.kill9("shipping", 0);
    saga.place(10, 24, 1);
    wait_until("shipping down in every alert", 3 * MINUTE, || async {
        (fires("TroupeTargetDown", "instance", &shipping_instance).await
            && fires("TroupeGroupHasNoMembers", "group", &shipping).await
            && fires("TroupeConsumerLagHigh", "group", &shipping).await)
            .then_some(())
    })
    .await;
    saga.spawn("shipping", 0);
    saga.wait_healthy("shipping", 0).await;
    wait_until("shipping's alerts cleared", 2 * MINUTE, || async {
        (!fires("TroupeTargetDown", "instance", &shipping_instance).await
            && !fires("TroupeGroupHasNoMembers", "group", &shipping).await
            && !fires("TroupeConsumerLagHigh", "group", &shipping).await)
            .then_some(())
    })
    .await;
    saga.settle(50, Duration::from_secs(120)).await;
}
