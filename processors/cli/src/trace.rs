//! `troupe trace ORDER`: the causation tree of one order's events (query API,
//! `GET /orders/{id}/trace`): which event caused which, the service that emitted it, where it
//! was read, and how long each hop took (its time minus its cause's).

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct TraceArgs {
    order: Uuid,
    /// Wait until the read model applied this position (as `troupe produce` prints it).
    #[arg(long)]
    min_position: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

/// One event, as the API returns it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Entry {
    event_id: Uuid,
    causation_id: Option<Uuid>,
    occurred_at: i64,
    event_type: String,
    service: String,
    detail: String,
    position: Option<String>,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = args
        .min_position
        .map(|p| ("min_position", p))
        .into_iter()
        .collect();
    let body = crate::orders::get(&format!("/orders/{}/trace", args.order), &query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let entries: Vec<Entry> = serde_json::from_value(body["events"].clone())?;
    print!("{}", tree(&entries));
    Ok(())
}

/// The tree as text: an event under its cause (causes before effects, then by time), each line
/// with the time since its cause. Events whose cause is not among them (the start, a source's
/// event, or a cause the read model has not applied) are roots.
fn tree(entries: &[Entry]) -> String {
    let ids: BTreeSet<Uuid> = entries.iter().map(|e| e.event_id).collect();
    let mut children: BTreeMap<Option<Uuid>, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        let parent = entry.causation_id.filter(|c| ids.contains(c));
        children.entry(parent).or_default().push(entry);
    }
    for list in children.values_mut() {
        list.sort_by_key(|e| (e.occurred_at, e.event_id));
    }
    let mut out = String::new();
    let mut stack: Vec<(&Entry, usize, Option<i64>)> = children
        .get(&None)
        .into_iter()
        .flatten()
        .rev()
        .map(|e| (*e, 0, None))
        .collect();
    while let Some((entry, depth, cause_at)) = stack.pop() {
        let hop = cause_at.map_or_else(
            || "start".to_owned(),
            |at| format!("+{} ms", entry.occurred_at - at),
        );
        out.push_str(&format!(
            "{}{} by {} ({hop}) at {}: {}\n",
            "  ".repeat(depth),
            entry.event_type,
            entry.service,
            entry.position.as_deref().unwrap_or("?"),
            entry.detail,
        ));
        for child in children
            .get(&Some(entry.event_id))
            .into_iter()
            .flatten()
            .rev()
        {
            stack.push((child, depth + 1, Some(entry.occurred_at)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u128, cause: Option<u128>, at: i64, event_type: &str) -> Entry {
        Entry {
            event_id: Uuid::from_u128(id),
            causation_id: cause.map(Uuid::from_u128),
            occurred_at: at,
            event_type: event_type.into(),
            service: "svc".into(),
            detail: String::new(),
            position: Some(format!("t/0@{id}")),
        }
    }

    #[test]
    fn effects_sit_under_their_causes_with_the_time_each_hop_took() {
        let entries = [
            entry(1, None, 1000, "PlaceOrder"),
            entry(2, Some(1), 1012, "OrderPlaced"),
            entry(4, Some(2), 1030, "ShipmentScheduled"),
            entry(3, Some(2), 1020, "StockReserved"),
            entry(5, Some(99), 1040, "OrderCancellationRequested"),
        ];
        let text = tree(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].starts_with("PlaceOrder by svc (start) at t/0@1"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("  OrderPlaced by svc (+12 ms)"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("    StockReserved by svc (+8 ms)"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("    ShipmentScheduled by svc (+18 ms)"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("OrderCancellationRequested by svc (start)"),
            "{text}"
        );
    }
}
