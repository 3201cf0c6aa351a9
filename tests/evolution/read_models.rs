//! The read models of a run, as the query API serves them, and their comparison across runs:
//! the projector and API started on a copy, the history re-encoded as current, and the models
//! compared order by order.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use serde_json::{json, Value};
use troupe_e2e::{get_json, Saga, Snapshot};
use troupe_runtime::config::{KafkaConfig, RegistryConfig};
use troupe_runtime::publish::Publisher;
use troupe_runtime::topics::Topics;
use troupe_testkit::stack;

/// What the read models say, without times and positions: each order's summary (with
/// `history`, the steps it went through and the kinds of its timeline's events), the stock of
/// every sku and the daily figures summed over days.
///
/// Two saga runs of the same orders end the same way, but not always by the same path: a
/// customer's cancellation can overtake the payment or follow it (then the payment is
/// refunded). So runs are compared without `history`; one history re-encoded is compared
/// with it.
pub async fn read_models(url: &str, snapshot: &Snapshot, history: bool) -> Value {
    let mut orders = BTreeMap::new();
    for id in snapshot.orders.keys() {
        let (status, mut summary) = get_json(&format!("{url}/orders/{id}")).await;
        assert_eq!(status, 200, "{summary}");
        let summary = summary.as_object_mut().unwrap();
        summary.remove("updated_at");
        summary.remove("last_position");
        let steps: BTreeSet<String> = summary["steps"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        if !history {
            summary.remove("steps");
            orders.insert(id.to_string(), json!(summary));
            continue;
        }
        summary.insert("steps".into(), json!(steps));
        let (status, timeline) = get_json(&format!("{url}/orders/{id}/timeline")).await;
        assert_eq!(status, 200, "{timeline}");
        let mut kinds: Vec<String> = timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}/{}", e["service"], e["event_type"]))
            .collect();
        kinds.sort();
        orders.insert(
            id.to_string(),
            json!({ "summary": summary, "timeline": kinds }),
        );
    }
    let mut stock = BTreeMap::new();
    for sku in snapshot.stock.keys() {
        let (status, level) = get_json(&format!("{url}/stock/{sku}")).await;
        assert_eq!(status, 200, "{level}");
        stock.insert(sku.clone(), level);
    }
    let (_, stats) = get_json(&format!("{url}/stats/daily")).await;
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for day in stats["sales"].as_array().unwrap() {
        for (key, value) in day.as_object().unwrap() {
            if let Some(n) = value.as_i64().filter(|_| key != "day") {
                *totals.entry(key.clone()).or_default() += n;
            }
        }
    }
    for c in stats["cancellations"].as_array().unwrap() {
        *totals
            .entry(format!("cancelled {}", c["reason"]))
            .or_default() += c["orders"].as_i64().unwrap();
    }
    json!({ "orders": orders, "stock": stock, "totals": totals })
}

/// Starts the projector and the query API on a copy named after the saga.
pub async fn with_read_models(saga: &Saga) -> String {
    saga.spawn_projector(&saga.id, 0, None).await;
    saga.spawn_query(0, Some(&saga.id), 5000).await
}

/// The read models of `saga` once its projector has caught up with every topic.
pub async fn read_models_once_caught_up(
    saga: &Saga,
    url: &str,
    snapshot: &Snapshot,
    history: bool,
) -> Value {
    saga.wait_caught_up(
        &format!("troupe-projector-{}", saga.id),
        &troupe_readmodels::topics(),
    )
    .await;
    read_models(url, snapshot, history).await
}

/// Every event on `saga`'s topics, re-encoded with the current schemas onto the topics of a new
/// topics-only saga, each partition in its order (same keys, so same partitions), and projected
/// there. Returns that saga and its query API.
pub async fn rewritten_as_current(saga: &Saga) -> (Saga, String) {
    let copy = Saga::topics_only(&[]).await;
    let publisher = Publisher::new(
        &KafkaConfig {
            bootstrap: stack().kafka_bootstrap.clone(),
            ..KafkaConfig::from_env()
        },
        &RegistryConfig::at(&stack().schema_registry_url),
        Topics::with_prefix(copy.prefix.clone()),
    )
    .unwrap();
    let history: Vec<_> = saga
        .read_all(&troupe_readmodels::topics())
        .await
        .into_iter()
        .map(|d| d.expect("every message decodes").envelope)
        .collect();
    // Sent in order with many in flight: the idempotent producer keeps each partition's order,
    // and the codec encodes without waiting once it knows a type's schema id, so each send is
    // queued when first polled. The first event of each type goes alone, to learn that id.
    let mut known = BTreeSet::new();
    let mut pending = Vec::new();
    for envelope in &history {
        let first_of_its_type = known.insert(envelope.event_type());
        if first_of_its_type || pending.len() == 256 {
            for position in join_all(pending.drain(..).map(|e| publisher.publish(e))).await {
                position.expect("published");
            }
        }
        if first_of_its_type {
            publisher.publish(envelope).await.expect("published");
        } else {
            pending.push(envelope);
        }
    }
    for position in join_all(pending.drain(..).map(|e| publisher.publish(e))).await {
        position.expect("published");
    }
    let url = with_read_models(&copy).await;
    (copy, url)
}

/// Fails on the first order whose model differs, then on anything else.
pub fn assert_same(mixed: &Value, other: &Value, what: &str) {
    assert_eq!(
        mixed["orders"].as_object().unwrap().len(),
        other["orders"].as_object().unwrap().len()
    );
    for (id, model) in mixed["orders"].as_object().unwrap() {
        assert_eq!(model, &other["orders"][id], "order {id}: mixed vs {what}");
    }
    assert_eq!(mixed, other, "mixed vs {what}");
}
