//! What `troupe bench saga` reports, as JSON and as text.

use hdrhistogram::Histogram;

use crate::bench::{PipeResult, TxPipeResult};

use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub(super) fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: (histogram.mean() / 10.0).round() / 100.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    pub name: String,
    pub cpu_seconds: f64,
    /// CPU seconds per wall second (1.0 = one core busy).
    pub cores: f64,
    /// The largest resident set seen while sampling (every 500 ms).
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub rate: f64,
    pub seconds: f64,
    pub orders: u64,
    pub completed: u64,
    pub offered_msgs_per_sec: f64,
    /// Slope of the total consumer lag over the step's second half, messages per second.
    pub lag_growth_per_sec: f64,
    pub mean_lag: f64,
    pub max_lag: i64,
    /// Slope of the orders in flight (scheduled, not ended) over the second half, orders/s.
    pub in_flight_growth_per_sec: f64,
    pub mean_in_flight: f64,
    pub sustainable: bool,
    pub drained: bool,
    pub drain_seconds: f64,
    pub latency: Percentiles,
    pub machine_busy: f64,
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HopReport {
    pub from: String,
    pub to: String,
    /// From the cause's append to the log to the effect's.
    pub hop: Percentiles,
    /// The same hop in stages, from the `troupe.trace` header (`troupe_runtime::trace`); of
    /// the hops whose every time is known.
    pub fetch: Percentiles,
    pub linger: Percentiles,
    pub transaction: Percentiles,
    pub relay_wake: Percentiles,
    pub produce: Percentiles,
}

/// What one order costs, over a latency phase: CPU per process, and PostgreSQL's work.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// CPU microseconds per order ended, per process (the broker and PostgreSQL included).
    pub cpu_us_per_order: Vec<(String, f64)>,
    /// The five processors together.
    pub processors_cpu_us_per_order: f64,
    /// Transactions committed in the five services' databases, per order.
    pub pg_transactions_per_order: f64,
    /// WAL flushes (`pg_stat_wal.wal_sync`, the whole server), per order.
    pub wal_flushes_per_order: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// The share of the sustainable rate offered (`None`: a rate given by hand).
    pub fraction: Option<f64>,
    pub rate: f64,
    pub seconds: f64,
    pub orders: u64,
    pub completed: u64,
    pub end_to_end: Percentiles,
    pub hops: Vec<HopReport>,
    pub cost: CostReport,
    pub machine_busy: f64,
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SagaReport {
    pub bench: &'static str,
    /// Names the run's topics (`bench-<run>.`), groups and databases (`troupe_bench_<run>_*`).
    pub run: String,
    pub cpus: usize,
    pub mix: String,
    /// Instances of each processor.
    pub instances: usize,
    pub pipe: PipeResult,
    pub txpipe: TxPipeResult,
    pub steps: Vec<StepReport>,
    /// Distinct events per order, counted by the observer, not assumed.
    pub messages_per_order: f64,
    /// Messages written beyond the distinct events: redeliveries of the at-least-once relay
    /// (consumers drop them by event id).
    pub duplicate_messages: i64,
    pub sustainable_orders_per_sec: Option<f64>,
    pub sustainable_msgs_per_sec: Option<f64>,
    /// (orders/s × messages per order) ÷ pipe messages/s.
    pub ratio_to_pipe: Option<f64>,
    /// (orders/s × messages per order) ÷ the transactional baseline's messages/s.
    pub ratio_to_txpipe: Option<f64>,
    /// At each share of the sustainable rate asked for, lowest first.
    pub latency: Vec<LatencyReport>,
    pub dead_letters: i64,
}

pub(super) fn print_processes(processes: &[ProcessReport]) {
    println!(
        "  {:<32} {:>10} {:>7} {:>10}",
        "process", "cpu s", "cores", "peak MiB"
    );
    for p in processes {
        println!(
            "  {:<32} {:>10.2} {:>7.2} {:>10.1}",
            p.name, p.cpu_seconds, p.cores, p.peak_rss_mib
        );
    }
}

pub(super) fn print_report(report: &SagaReport) {
    println!("{}", report.pipe);
    println!("{}", report.txpipe);
    println!(
        "\nsaga steps ({} cpus, mix {}, {} instance(s) of each processor):",
        report.cpus, report.mix, report.instances
    );
    println!(
        "  {:>8} {:>7} {:>9} {:>11} {:>9} {:>10} {:>8} {:>8} {:>6}  verdict",
        "orders/s",
        "orders",
        "msgs/s",
        "lag growth",
        "mean lag",
        "in flight",
        "p50 ms",
        "p99 ms",
        "busy"
    );
    for s in &report.steps {
        println!(
            "  {:>8.0} {:>7} {:>9.0} {:>11.0} {:>9.0} {:>10.0} {:>8.1} {:>8.1} {:>5.0}%  {}",
            s.rate,
            s.orders,
            s.offered_msgs_per_sec,
            s.lag_growth_per_sec,
            s.mean_lag,
            s.mean_in_flight,
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.machine_busy * 100.0,
            match (s.sustainable, s.drained) {
                (true, _) => "sustainable",
                (false, true) => "backlog grows",
                (false, false) => "backlog grows, did not drain",
            }
        );
    }
    println!(
        "\nmessages per order: {:.2} (duplicates written by the relays: {})",
        report.messages_per_order, report.duplicate_messages
    );
    match (
        report.sustainable_orders_per_sec,
        report.sustainable_msgs_per_sec,
        report.ratio_to_pipe,
        report.ratio_to_txpipe,
    ) {
        (Some(orders), Some(msgs), Some(pipe), Some(txpipe)) => println!(
            "sustainable: {orders:.0} orders/s = {msgs:.0} msgs/s = {pipe:.3} × the bare pipe ({:.0} msgs/s) = {txpipe:.2} × the transactional baseline ({:.0} msgs/s)",
            report.pipe.pipe_msgs_per_sec, report.txpipe.msgs_per_sec
        ),
        _ => println!("sustainable: none of the rates tried"),
    }
    if !report.latency.is_empty() {
        println!("\nlatency end to end (scheduled send → terminal event), ms:");
        println!(
            "  {:<24} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "rate", "count", "p50", "p90", "p99", "p99.9", "max", "busy"
        );
        for latency in &report.latency {
            let label = match latency.fraction {
                Some(f) => format!("{:.0} orders/s ({:.0}%)", latency.rate, f * 100.0),
                None => format!("{:.0} orders/s", latency.rate),
            };
            let p = &latency.end_to_end;
            println!(
                "  {label:<24} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>5.0}%",
                p.count,
                p.p50_ms,
                p.p90_ms,
                p.p99_ms,
                p.p999_ms,
                p.max_ms,
                latency.machine_busy * 100.0
            );
        }
    }
    if let Some(latency) = middle(&report.latency) {
        print_hops(latency);
        print_cost(&latency.cost, latency.rate);
        println!(
            "\nprocesses at {:.0} orders/s for {:.0} s (machine {:.0}% busy):",
            latency.rate,
            latency.seconds,
            latency.machine_busy * 100.0
        );
        print_processes(&latency.processes);
    }
    if let Some(last) = report.steps.last() {
        println!(
            "\nprocesses during the last step, {:.0} orders/s (machine {:.0}% busy):",
            last.rate,
            last.machine_busy * 100.0
        );
        print_processes(&last.processes);
    }
    println!("\ndead letters: {}", report.dead_letters);
    println!("* CPU summed over every backend; memory is the largest backend's.");
}

/// The latency phase nearest half the sustainable rate: where hops and costs are shown.
fn middle(latency: &[LatencyReport]) -> Option<&LatencyReport> {
    latency.iter().min_by(|a, b| {
        let off = |l: &LatencyReport| (l.fraction.unwrap_or(0.5) - 0.5).abs();
        off(a).total_cmp(&off(b))
    })
}

fn print_hops(latency: &LatencyReport) {
    println!(
        "\nper hop at {:.0} orders/s, p50 (p99) in ms; stages from the processors' trace header:",
        latency.rate
    );
    println!(
        "  {:<38} {:>13} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "hop", "total", "fetch", "linger", "transaction", "relay wake", "produce"
    );
    // A stage nobody timed (see the note below the table) is a dash, not a zero.
    let cell = |p: &Percentiles| match p.count {
        0 => "-".to_owned(),
        _ => format!("{:.1} ({:.1})", p.p50_ms, p.p99_ms),
    };
    for hop in &latency.hops {
        println!(
            "  {:<38} {:>13} {:>12} {:>12} {:>12} {:>12} {:>12}",
            format!("{} → {}", hop.from, hop.to),
            cell(&hop.hop),
            cell(&hop.fetch),
            cell(&hop.linger),
            cell(&hop.transaction),
            cell(&hop.relay_wake),
            cell(&hop.produce),
        );
    }
    println!(
        "  (stages are timed where the effect's writer also relayed it: its commit time is in \
         that process's memory; with several instances, the relay leader publishes the others' \
         rows, and those hops have no stages)"
    );
}

fn print_cost(cost: &CostReport, rate: f64) {
    println!("\ncost per order at {rate:.0} orders/s:");
    for (name, us) in &cost.cpu_us_per_order {
        println!("  {name:<32} {us:>9.0} µs CPU");
    }
    println!(
        "  {:<32} {:>9.0} µs CPU",
        "the five processors", cost.processors_cpu_us_per_order
    );
    println!(
        "  {:<32} {:>9.1} transactions, {:.1} WAL flushes",
        "postgresql", cost.pg_transactions_per_order, cost.wal_flushes_per_order
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::saga::observe::histogram;

    #[test]
    pub(super) fn percentiles_come_out_in_milliseconds() {
        let mut h = histogram();
        for us in [1_000u64, 2_000, 3_000, 4_000, 100_000] {
            h.record(us).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 5);
        assert!((p.p50_ms - 3.0).abs() < 0.01, "{p:?}");
        assert!((p.max_ms - 100.0).abs() < 0.1, "{p:?}");
        assert!(p.p50_ms <= p.p90_ms && p.p90_ms <= p.p99_ms && p.p99_ms <= p.max_ms);
    }
}
