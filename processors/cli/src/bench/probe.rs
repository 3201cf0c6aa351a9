//! What the saga bench watches from outside the processors: consumer lag from the broker
//! (committed offsets against high watermarks), and CPU time and memory from `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);

/// One consumer group and the topics it reads.
struct Group {
    name: String,
    /// A client carrying the group's id, used only to fetch its committed offsets; it never
    /// joins the group.
    client: BaseConsumer,
    topics: Vec<String>,
}

/// Measures the lag of the saga's consumer groups, as the broker sees it.
pub struct LagProbe {
    groups: Vec<Group>,
    watermarks: BaseConsumer,
    /// Partitions per topic.
    partitions: BTreeMap<String, i32>,
}

impl LagProbe {
    /// `groups`: (group id, topics it consumes); `partitions`: how many each topic has.
    pub fn new(
        bootstrap: &str,
        groups: Vec<(String, Vec<String>)>,
        partitions: BTreeMap<String, i32>,
    ) -> anyhow::Result<Self> {
        let client = |group: &str| -> anyhow::Result<BaseConsumer> {
            Ok(ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .set("log_level", "3")
                .create()?)
        };
        Ok(Self {
            groups: groups
                .into_iter()
                .map(|(name, topics)| {
                    Ok(Group {
                        client: client(&name)?,
                        name,
                        topics,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            watermarks: client("troupe-bench-watermarks")?,
            partitions,
        })
    }

    fn partitions(&self, topic: &str) -> i32 {
        self.partitions.get(topic).copied().unwrap_or(1)
    }

    /// The high watermark of every partition of `topics`.
    pub fn high_watermarks(
        &self,
        topics: &[String],
    ) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
        let mut highs = BTreeMap::new();
        for topic in topics {
            for partition in 0..self.partitions(topic) {
                let (_, high) = self
                    .watermarks
                    .fetch_watermarks(topic, partition, TIMEOUT)
                    .with_context(|| format!("cannot read the watermarks of {topic}"))?;
                highs.insert((topic.clone(), partition), high);
            }
        }
        Ok(highs)
    }

    /// Messages written but not yet committed, per group. Blocking: call it from a blocking
    /// task.
    pub fn lag(&self) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut topics: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.topics.iter().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        let highs = self.high_watermarks(&topics)?;
        let mut lag = BTreeMap::new();
        for group in &self.groups {
            let mut wanted = TopicPartitionList::new();
            for topic in &group.topics {
                for partition in 0..self.partitions(topic) {
                    wanted.add_partition(topic, partition);
                }
            }
            let committed = group
                .client
                .committed_offsets(wanted, TIMEOUT)
                .with_context(|| format!("cannot read the offsets of group {}", group.name))?;
            let mut behind = 0;
            for element in committed.elements() {
                let high = highs[&(element.topic().to_owned(), element.partition())];
                // Nothing committed yet: the topics are fresh, so everything is behind.
                let done = match element.offset() {
                    Offset::Offset(offset) => offset,
                    _ => 0,
                };
                behind += (high - done).max(0);
            }
            lag.insert(group.name.clone(), behind);
        }
        Ok(lag)
    }
}

/// CPU time and memory of one process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Clock ticks per second for `/proc/<pid>/stat`'s times (`getconf CLK_TCK`; 100 on Linux
/// unless the kernel says otherwise).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Reads one process; `None` once it is gone.
pub fn sample(pid: u32, ticks: f64) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        cpu_seconds: (utime + stime) / ticks,
        rss_bytes: rss_kib * 1024,
    })
}

/// The pids of every process whose command name is `comm` (e.g. all PostgreSQL backends).
pub fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// Busy and total CPU time of the whole machine, from `/proc/stat`, in ticks.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait are the 4th and 5th.
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = sample(std::process::id(), clock_ticks()).expect("own /proc entry");
        assert!(me.rss_bytes > 1024 * 1024, "{me:?}");
        assert!(me.cpu_seconds >= 0.0);
        let (busy, total) = machine_ticks().expect("/proc/stat");
        assert!(busy <= total && total > 0);
    }
}
