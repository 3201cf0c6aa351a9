//! What `troupe bench saga` reports, as JSON and as text.

use hdrhistogram::Histogram;

use crate::bench::PipeResult;

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
    /// Of that, from the effect's decision (its `occurred_at`) to its append: the outbox relay.
    pub relay: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub rate: f64,
    pub seconds: f64,
    pub orders: u64,
    pub completed: u64,
    pub end_to_end: Percentiles,
    pub hops: Vec<HopReport>,
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
    pub pipe: PipeResult,
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
    pub latency: Option<LatencyReport>,
    pub dead_letters: i64,
}

pub(super) fn print_percentiles(label: &str, p: &Percentiles) {
    println!(
        "  {label:<44} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
    );
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
    println!("\nsaga steps ({} cpus, mix {}):", report.cpus, report.mix);
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
    match (report.sustainable_orders_per_sec, report.sustainable_msgs_per_sec, report.ratio_to_pipe) {
        (Some(orders), Some(msgs), Some(ratio)) => println!(
            "sustainable: {orders:.0} orders/s = {msgs:.0} msgs/s = {ratio:.3} × the pipe's {:.0} msgs/s",
            report.pipe.pipe_msgs_per_sec
        ),
        _ => println!("sustainable: none of the rates tried"),
    }
    if let Some(latency) = &report.latency {
        println!(
            "\nlatency at {:.0} orders/s for {:.0} s ({} of {} orders ended), ms:",
            latency.rate, latency.seconds, latency.completed, latency.orders
        );
        println!(
            "  {:<44} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        print_percentiles(
            "end to end (scheduled send → terminal event)",
            &latency.end_to_end,
        );
        for hop in &latency.hops {
            print_percentiles(&format!("{} → {}", hop.from, hop.to), &hop.hop);
            print_percentiles("    of which outbox relay", &hop.relay);
        }
        println!(
            "\nprocesses during the latency phase (machine {:.0}% busy):",
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
