//! `troupe orders show|list`: reading the read models through the query API.

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// One order: its summary and timeline.
    Show {
        order: Uuid,
        /// Wait until the read model applied this position (as `troupe produce` prints it).
        #[arg(long)]
        min_position: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// A customer's orders, newest first.
    List {
        #[arg(long)]
        customer: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        page: u32,
        #[arg(long)]
        json: bool,
    },
}

/// `TROUPE_QUERY_URL`, default the local query API.
fn base() -> String {
    troupe_runtime::config::env_or("TROUPE_QUERY_URL", "http://127.0.0.1:28090")
}

pub(crate) async fn get(path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
    // Values are ids, numbers and positions (`topic/partition@offset`): all legal in a query.
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let url = if query.is_empty() {
        format!("{}{path}", base())
    } else {
        format!("{}{path}?{}", base(), query.join("&"))
    };
    let response = reqwest::Client::new()
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the query API at {}", base()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        bail!(
            "{} ({status})",
            body["error"].as_str().unwrap_or("the query API refused")
        );
    }
    Ok(body)
}

fn ms(value: &Value) -> String {
    value.as_i64().map_or("-".into(), |v| v.to_string())
}

pub async fn run(command: OrdersCommand) -> anyhow::Result<()> {
    match command {
        OrdersCommand::Show {
            order,
            min_position,
            json,
        } => {
            let query: Vec<(&str, String)> = min_position
                .map(|p| ("min_position", p))
                .into_iter()
                .collect();
            let summary = get(&format!("/orders/{order}"), &query).await?;
            let timeline = get(&format!("/orders/{order}/timeline"), &query).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "summary": summary, "timeline": timeline
                    }))?
                );
                return Ok(());
            }
            println!(
                "order    {order}\ncustomer {}\nstatus   {}{}\ntotal    {} {}",
                summary["customer_id"].as_str().unwrap_or("-"),
                summary["status"].as_str().unwrap_or("-"),
                summary["reason"]
                    .as_str()
                    .map(|r| format!(" ({r}: {})", summary["detail"].as_str().unwrap_or("")))
                    .unwrap_or_default(),
                summary["total_minor"]
                    .as_i64()
                    .map_or("-".into(), |t| format!("{}.{:02}", t / 100, t % 100)),
                summary["currency"].as_str().unwrap_or(""),
            );
            if let Some(code) = summary["promotion_code"].as_str() {
                println!("promo    {code}");
            }
            for line in summary["lines"].as_array().into_iter().flatten() {
                println!(
                    "         {} × {} at {}",
                    ms(&line["quantity"]),
                    line["sku"].as_str().unwrap_or("?"),
                    ms(&line["unit_price_minor"])
                );
            }
            println!(
                "\n{:<15} {:<26} {:<14} detail",
                "occurred_at", "event", "service"
            );
            for event in timeline["events"].as_array().into_iter().flatten() {
                println!(
                    "{:<15} {:<26} {:<14} {}",
                    ms(&event["occurred_at"]),
                    event["event_type"].as_str().unwrap_or("?"),
                    event["service"].as_str().unwrap_or("?"),
                    event["detail"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        OrdersCommand::List {
            customer,
            limit,
            page,
            json,
        } => {
            let body = get(
                &format!("/customers/{customer}/orders"),
                &[("limit", limit.to_string()), ("page", page.to_string())],
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            println!(
                "{:<38} {:<10} {:>12}  placed_at",
                "order", "status", "total"
            );
            for order in body["orders"].as_array().into_iter().flatten() {
                println!(
                    "{:<38} {:<10} {:>12}  {}",
                    order["order_id"].as_str().unwrap_or("?"),
                    order["status"].as_str().unwrap_or("-"),
                    ms(&order["total_minor"]),
                    ms(&order["steps"]["placed_at"])
                );
            }
            Ok(())
        }
    }
}
