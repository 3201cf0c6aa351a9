//! `troupe lag export`: the broker's view of every group as Prometheus metrics, on a port of
//! its own, so lag still shows when the processors it measures are down (kminion's approach).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntCounter, Opts, Registry, TextEncoder};
use troupe_observability::catalogue;
use troupe_runtime::metrics::float_gauge as gauge;

use super::observe::{Observation, Observer};
use super::rates::paces;

/// The exposition of one observation (and the pace since `before`).
pub fn render(before: Option<&Observation>, now: &Observation) -> String {
    let registry = Registry::new();
    let r = &registry;
    let (lag, seconds, committed, end) = (
        gauge(r, "troupe_group_lag_messages"),
        gauge(r, "troupe_group_lag_seconds"),
        gauge(r, "troupe_group_committed_offset"),
        gauge(r, "troupe_topic_log_end_offset"),
    );
    let (velocity, close, members) = (
        gauge(r, "troupe_group_lag_velocity"),
        gauge(r, "troupe_group_time_to_close_seconds"),
        gauge(r, "troupe_group_members"),
    );
    for ((group, topic, partition), f) in &now.partitions {
        let partition = partition.to_string();
        let labels = [group.as_str(), topic.as_str(), partition.as_str()];
        lag.with_label_values(&labels).set(f.lag as f64);
        committed.with_label_values(&labels).set(f.committed as f64);
        if let Some(s) = f.seconds {
            seconds.with_label_values(&labels).set(s);
        }
        end.with_label_values(&[topic.as_str(), partition.as_str()])
            .set(f.log_end as f64);
    }
    if let Some(before) = before {
        for ((group, topic), pace) in paces(before, now) {
            let labels = [group.as_str(), topic.as_str()];
            velocity.with_label_values(&labels).set(pace.velocity);
            close.with_label_values(&labels).set(pace.time_to_close);
        }
    }
    for (group, count) in &now.members {
        members.with_label_values(&[group]).set(*count as f64);
    }
    encode(&registry)
}

fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding");
    String::from_utf8(out).expect("utf-8 exposition")
}

/// Observes every `interval` and serves the figures on `listen` until `stop` resolves.
pub async fn run(
    observer: Observer,
    listen: SocketAddr,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let own = Registry::new();
    let errors = IntCounter::with_opts(Opts::new(
        "troupe_lag_exporter_errors_total",
        catalogue::get("troupe_lag_exporter_errors_total").help,
    ))?;
    own.register(Box::new(errors.clone()))?;
    let figures = Arc::new(RwLock::new(String::new()));
    let app = {
        let (figures, own) = (figures.clone(), own.clone());
        Router::new()
            .route(
                "/metrics",
                get(move || {
                    let text = figures.read().expect("figures lock").clone() + &encode(&own);
                    async move { ([("content-type", "text/plain; version=0.0.4")], text) }
                }),
            )
            .route("/health", get(|| async { "ok" }))
    };
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let target = troupe_runtime::metrics::register_scrape_target(
        troupe_runtime::config::scrape_targets_dir().as_deref(),
        "lag-exporter",
        "lag-exporter",
        &address.port().to_string(),
        address,
    );
    eprintln!("troupe lag export: serving http://{address}/metrics every {interval:?}");
    let observer = Arc::new(Mutex::new(observer));
    let mut before: Option<Observation> = None;
    let observing = async {
        loop {
            let observer = observer.clone();
            let looked = tokio::task::spawn_blocking(move || {
                observer
                    .lock()
                    .expect("observer lock")
                    .observe(super::now_ms)
            })
            .await;
            match looked {
                Ok(Ok(now)) => {
                    *figures.write().expect("figures lock") = render(before.as_ref(), &now);
                    before = Some(now);
                }
                Ok(Err(error)) => {
                    // No figures rather than stale ones: a frozen lag would look like a stuck
                    // group.
                    figures.write().expect("figures lock").clear();
                    before = None;
                    errors.inc();
                    eprintln!("troupe lag export: lag not observed this time: {error:#}");
                }
                Err(error) => {
                    errors.inc();
                    eprintln!("troupe lag export: the observation panicked: {error}");
                }
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        () = observing => {}
        () = stop => {}
    }
    troupe_runtime::metrics::unregister_scrape_target(target);
    server.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::observe::Figures;
    use super::*;

    #[test]
    fn every_figure_is_exported_under_its_catalogue_name() {
        let observation = |at_ms, done| Observation {
            at_ms,
            partitions: BTreeMap::from([(
                ("order".to_owned(), "troupe.orders.commands".to_owned(), 3),
                Figures {
                    log_end: 100,
                    committed: done,
                    lag: 100 - done,
                    seconds: Some(2.5),
                },
            )]),
            members: BTreeMap::from([("order".to_owned(), 0)]),
        };
        let text = render(Some(&observation(0, 40)), &observation(10_000, 60));
        for line in [
            r#"troupe_group_lag_messages{group="order",partition="3",topic="troupe.orders.commands"} 40"#,
            r#"troupe_group_lag_seconds{group="order",partition="3",topic="troupe.orders.commands"} 2.5"#,
            r#"troupe_group_committed_offset{group="order",partition="3",topic="troupe.orders.commands"} 60"#,
            r#"troupe_topic_log_end_offset{partition="3",topic="troupe.orders.commands"} 100"#,
            r#"troupe_group_lag_velocity{group="order",topic="troupe.orders.commands"} -2"#,
            r#"troupe_group_time_to_close_seconds{group="order",topic="troupe.orders.commands"} 20"#,
            r#"troupe_group_members{group="order"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let first = render(None, &observation(0, 40));
        assert!(!first.contains("troupe_group_lag_velocity{"), "{first}");
    }
}
