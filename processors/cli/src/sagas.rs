//! `troupe sagas stalled|in-flight`: the query API's saga tracker (`GET /sagas`).

use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum SagasCommand {
    /// Orders without an outcome, idle past the allowance of the step they wait on, the
    /// longest idle first.
    Stalled(ListArgs),
    /// Every order without an outcome yet, the longest idle first.
    InFlight(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only orders idle at least this long: 1500ms, 30s, 5m, 2h.
    #[arg(long)]
    older_than: Option<String>,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: SagasCommand) -> anyhow::Result<()> {
    let (status, args) = match command {
        SagasCommand::Stalled(args) => ("stalled", args),
        SagasCommand::InFlight(args) => ("in_flight", args),
    };
    let mut query = vec![
        ("status", status.to_owned()),
        ("limit", args.limit.to_string()),
    ];
    if let Some(older_than) = args.older_than {
        query.push(("older_than", older_than));
    }
    let body = crate::orders::get("/sagas", &query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", table(&body));
    }
    Ok(())
}

fn table(body: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let states = body["census"]["states"].as_object();
    let census: Vec<String> = states
        .into_iter()
        .flatten()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    let _ = writeln!(out, "orders: {}", census.join(", "));
    let sagas = body["sagas"].as_array().cloned().unwrap_or_default();
    if sagas.is_empty() {
        out.push_str("none listed\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<36}  {:<9}  {:>9}  {:<18}  CUSTOMER",
        "ORDER", "STATUS", "IDLE", "WAITING ON"
    );
    for saga in sagas {
        let waiting: Vec<&str> = saga["waiting_on"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let idle = saga["idle_ms"].as_i64().unwrap_or(0) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{:<36}  {:<9}  {:>8.1}s  {:<18}  {}",
            saga["order_id"].as_str().unwrap_or("?"),
            saga["status"].as_str().unwrap_or("?"),
            idle,
            waiting.join(","),
            saga["customer_id"].as_str().unwrap_or("-"),
        );
    }
    out
}
