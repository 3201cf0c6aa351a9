//! Reading the read models back: through the query API (summaries, timelines), the events on
//! the topics they must show, and the check of both against the services' own state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use troupe_e2e::{Saga, Snapshot};
use uuid::Uuid;

/// GETs a JSON document from the query API: the status and the body.
pub async fn get(url: &str) -> (u16, Value) {
    troupe_e2e::get_json(url).await
}

/// Every event about an order on the saga's topics, by order: event ids.
pub async fn events_by_order(saga: &Saga) -> HashMap<Uuid, BTreeSet<Uuid>> {
    let mut events: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    for decoded in saga
        .read_all(&troupe_readmodels::topics())
        .await
        .into_iter()
        .flatten()
    {
        let meta = decoded.envelope.meta;
        if !meta.order_id.is_nil() {
            events
                .entry(meta.order_id)
                .or_default()
                .insert(meta.event_id);
        }
    }
    events
}

/// Every order's summary and timeline as the API serves them.
pub async fn read_models(
    url: &str,
    orders: impl Iterator<Item = &Uuid>,
) -> BTreeMap<Uuid, (Value, Value)> {
    let mut models = BTreeMap::new();
    for id in orders {
        let (status, summary) = get(&format!("{url}/orders/{id}")).await;
        assert_eq!(status, 200, "{summary}");
        let (status, timeline) = get(&format!("{url}/orders/{id}/timeline")).await;
        assert_eq!(status, 200, "{timeline}");
        models.insert(*id, (summary, timeline));
    }
    models
}

/// Starts the projector and the API on a copy named after the saga.
pub async fn with_read_models(saga: &Saga, wait_ms: u64) -> String {
    saga.spawn_projector(&saga.id, 0, None).await;
    saga.spawn_query(0, Some(&saga.id), wait_ms).await
}

/// Waits until consumer group `group` has read every topic the projector reads.
pub async fn wait_caught_up(saga: &Saga, group: &str) {
    saga.wait_caught_up(group, &troupe_readmodels::topics())
        .await;
}

/// Fails unless every order's summary agrees with the order service's state and its timeline
/// shows exactly the order's events, in time order.
pub fn check_against_services(
    snapshot: &Snapshot,
    models: &BTreeMap<Uuid, (Value, Value)>,
    events: &HashMap<Uuid, BTreeSet<Uuid>>,
) {
    for (id, row) in &snapshot.orders {
        let (summary, timeline) = &models[id];
        assert_eq!(summary["status"], row.status.as_str(), "{id}: {summary}");
        assert_eq!(summary["customer_id"], row.customer_id, "{id}: {summary}");
        // The traffic generator gives order n a promotion code when n is a multiple of 5; the
        // customer id ends in n.
        let n: u64 = row.customer_id.rsplit('-').next().unwrap().parse().unwrap();
        let code = (n % 5 == 0).then_some("SPRING-10");
        assert_eq!(summary["promotion_code"].as_str(), code, "{id}: {summary}");
        if row.status.as_str() == "CANCELLED" {
            assert_eq!(
                summary["reason"].as_str(),
                row.reason.as_deref(),
                "{id}: {summary}"
            );
        }
        if row.status.as_str() != "REJECTED" {
            assert_eq!(summary["total_minor"], row.total, "{id}: {summary}");
        }
        let shown: BTreeSet<Uuid> = timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            &shown, &events[id],
            "{id}: the timeline is not the order's events"
        );
        let times: Vec<i64> = timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["occurred_at"].as_i64().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{id}: timeline out of order"
        );
    }
}
