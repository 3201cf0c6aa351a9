//! Sampling lag, orders in flight, CPU and memory while load runs; draining between phases.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use troupe_runtime::lag::LagProbe;

use super::deployment::Deployment;
use super::observe::Book;
use super::report::ProcessReport;
use crate::bench::probe::{self, ProcSample};

/// Samples lag and processes every 500 ms while `work` runs.
pub(super) struct Sampler {
    pub(super) lag: Vec<(f64, i64)>,
    /// Orders of the phase scheduled and not yet ended.
    pub(super) in_flight: Vec<(f64, i64)>,
    pub(super) peak_rss: Vec<u64>,
    pub(super) first: Vec<ProcSample>,
    pub(super) last: Vec<ProcSample>,
    pub(super) machine_first: Option<(u64, u64)>,
    pub(super) machine_last: Option<(u64, u64)>,
    pub(super) started: Instant,
    pub(super) last_at: Instant,
}

/// The processes a report covers: the five processors, then the stack's servers and the
/// bench itself.
pub(super) struct Watched {
    pub(super) names: Vec<String>,
    pub(super) pids: Vec<Vec<u32>>,
    pub(super) ticks: f64,
}

impl Watched {
    pub(super) fn new(deployment: &Deployment) -> Self {
        let mut names = Vec::new();
        let mut pids: Vec<Vec<u32>> = Vec::new();
        // Every instance of a service under one name: CPU summed, memory the largest's.
        for (label, pid) in deployment.processes.pids() {
            let service = label.rsplit_once('-').map_or(label.as_str(), |(s, _)| s);
            let name = format!("troupe-{service}");
            match names.iter().position(|n| *n == name) {
                Some(i) => pids[i].push(pid),
                None => {
                    names.push(name);
                    pids.push(vec![pid]);
                }
            }
        }
        for (name, found) in [
            ("broker (Apache Kafka)", probe::pids_with_arg("kafka.Kafka")),
            ("postgresql (all backends)*", probe::pids_named("postgres")),
            ("troupe-registry", probe::pids_named("troupe-registry")),
            // Idle during the bench (no projector runs), but it shares the machine.
            (
                "cassandra (idle)",
                probe::pids_with_arg("org.apache.cassandra.service.CassandraDaemon"),
            ),
        ] {
            if !found.is_empty() {
                names.push(name.to_owned());
                pids.push(found);
            }
        }
        names.push("troupe bench (load + watcher)".into());
        pids.push(vec![std::process::id()]);
        Self {
            names,
            pids,
            ticks: probe::clock_ticks(),
        }
    }

    /// CPU summed over each entry's pids, RSS of the largest (PostgreSQL's backends share
    /// their buffers: a sum would count them many times). Backends come and go, so they are
    /// looked up again on every sample.
    pub(super) fn sample(&mut self) -> Vec<ProcSample> {
        for (name, pids) in self.names.iter().zip(self.pids.iter_mut()) {
            if name.starts_with("postgresql") {
                *pids = probe::pids_named("postgres");
            }
        }
        self.pids
            .iter()
            .map(|pids| {
                pids.iter()
                    .filter_map(|pid| probe::sample(*pid, self.ticks))
                    .fold(ProcSample::default(), |a, b| ProcSample {
                        cpu_seconds: a.cpu_seconds + b.cpu_seconds,
                        rss_bytes: a.rss_bytes.max(b.rss_bytes),
                    })
            })
            .collect()
    }
}

impl Sampler {
    pub(super) fn new(watched: &mut Watched) -> Self {
        let first = watched.sample();
        Self {
            lag: Vec::new(),
            in_flight: Vec::new(),
            peak_rss: first.iter().map(|s| s.rss_bytes).collect(),
            last: first.clone(),
            first,
            machine_first: probe::machine_ticks(),
            machine_last: None,
            started: Instant::now(),
            last_at: Instant::now(),
        }
    }

    pub(super) async fn tick(
        &mut self,
        watched: &mut Watched,
        probes: &Probes<'_>,
    ) -> anyhow::Result<()> {
        let probe = probes.lag.clone();
        let total: i64 = tokio::task::spawn_blocking(move || probe.lag())
            .await??
            .values()
            .sum();
        let now = Instant::now();
        let t = now.duration_since(self.started).as_secs_f64();
        self.lag.push((t, total));
        let in_flight = {
            let book = probes.book.lock().expect("book lock");
            let phase = &book.phases[probes.phase];
            phase.offered as i64 - phase.completed as i64
        };
        self.in_flight.push((t, in_flight));
        self.last_at = now;
        self.last = watched.sample();
        for (peak, now) in self.peak_rss.iter_mut().zip(&self.last) {
            *peak = (*peak).max(now.rss_bytes);
        }
        self.machine_last = probe::machine_ticks();
        Ok(())
    }

    pub(super) fn processes(&self, watched: &Watched) -> Vec<ProcessReport> {
        let wall = self
            .last_at
            .duration_since(self.started)
            .as_secs_f64()
            .max(1e-9);
        watched
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let cpu = (self.last[i].cpu_seconds - self.first[i].cpu_seconds).max(0.0);
                ProcessReport {
                    name: name.clone(),
                    cpu_seconds: round2(cpu),
                    cores: round2(cpu / wall),
                    peak_rss_mib: round2(self.peak_rss[i] as f64 / (1024.0 * 1024.0)),
                }
            })
            .collect()
    }

    /// The share of the machine's CPU time that was busy.
    pub(super) fn machine_busy(&self) -> f64 {
        match (self.machine_first, self.machine_last) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                round2((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => 0.0,
        }
    }
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What a sampler reads besides `/proc`: the broker's lag, and the book of the phase.
pub(super) struct Probes<'a> {
    pub(super) lag: &'a Arc<LagProbe>,
    pub(super) book: &'a Arc<Mutex<Book>>,
    pub(super) phase: usize,
}

/// Runs `work` while sampling every 500 ms. The two run concurrently (`join!`, not
/// `select!`): a sample that takes long must never hold back the sender's schedule.
pub(super) async fn sampled<F, T>(
    work: F,
    watched: &mut Watched,
    probes: Probes<'_>,
) -> anyhow::Result<(T, Sampler)>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut sampler = Sampler::new(watched);
    let finished = tokio::sync::Notify::new();
    let working = async {
        let result = work.await;
        finished.notify_one();
        result
    };
    let sampling = async {
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = finished.notified() => break,
                _ = interval.tick() => sampler.tick(watched, &probes).await?,
            }
        }
        // One last sample at the end of the work.
        sampler.tick(watched, &probes).await
    };
    let (result, sampling) = tokio::join!(working, sampling);
    sampling?;
    Ok((result?, sampler))
}

/// What "nothing left to do" is checked against.
pub(super) struct Quiet<'a> {
    pub(super) lag: &'a Arc<LagProbe>,
    /// One connection pool per processor database.
    pub(super) outboxes: &'a [sqlx::PgPool],
    pub(super) topics: &'a [String],
}

impl Quiet<'_> {
    /// (rows waiting in outboxes, consumer lag, messages written).
    pub(super) async fn snapshot(&self) -> anyhow::Result<(i64, i64, i64)> {
        let mut waiting = 0;
        for pool in self.outboxes {
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM troupe_outbox")
                .fetch_one(pool)
                .await?;
            waiting += rows;
        }
        let probe = self.lag.clone();
        let topics = self.topics.to_vec();
        let (lag, written) = tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>((probe.lag()?.values().sum(), sum_highs(&probe, &topics)?))
        })
        .await??;
        Ok((waiting, lag, written))
    }
}

/// Waits until every order of `phase` ended and the saga is quiet: two snapshots in a row with
/// empty outboxes, no consumer lag and no new message. A message being handled shows as lag;
/// an effect committed but not yet published shows in its outbox; one published since the
/// last snapshot changes the message count. Returns how long it took, or `None` at `timeout`.
pub(super) async fn drain(
    book: &Arc<Mutex<Book>>,
    phase: usize,
    orders: u64,
    quiet: &Quiet<'_>,
    timeout: Duration,
) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    let mut previous = None;
    loop {
        let completed = book.lock().expect("book lock").phases[phase].completed;
        if completed >= orders {
            let now = quiet.snapshot().await?;
            if now.0 == 0 && now.1 == 0 {
                if previous == Some(now) {
                    return Ok(Some(started.elapsed().as_secs_f64()));
                }
                previous = Some(now);
            } else {
                previous = None;
            }
        }
        if started.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn sum_highs(lag: &LagProbe, topics: &[String]) -> anyhow::Result<i64> {
    Ok(lag.high_watermarks(topics)?.values().sum())
}
