//! Where a saga's consumer groups stand, as the broker sees it.

use std::time::{Duration, Instant};

use troupe_runtime::lag::LagProbe;

use super::Saga;

impl Saga {
    /// Every partition of the saga's topics `bases`, with consumer group `group`'s position:
    /// (topic, partition, log end, committed).
    pub fn offsets(&self, group: &str, bases: &[&str]) -> Vec<(String, i32, i64, i64)> {
        let topics: Vec<String> = bases
            .iter()
            .map(|t| format!("{}{t}", self.prefix))
            .collect();
        let partitions = topics.iter().map(|t| (t.clone(), 6)).collect();
        let groups = vec![(group.to_owned(), topics)];
        let probe = LagProbe::new(&self.stack.kafka_bootstrap, groups, partitions).expect("probe");
        let offsets = probe.offsets().expect("offsets").into_iter();
        offsets
            .map(|((_, t, p), (end, done))| (t, p, end, done))
            .collect()
    }

    /// The partitions of [`Saga::offsets`] where `group` has not committed every message.
    pub fn behind(&self, group: &str, bases: &[&str]) -> Vec<(String, i32, i64, i64)> {
        let mut offsets = self.offsets(group, bases);
        offsets.retain(|(_, _, end, committed)| committed < end);
        offsets
    }

    /// Waits until consumer group `group` has committed every message of `bases`; on timeout,
    /// names the partitions still behind.
    pub async fn wait_caught_up(&self, group: &str, bases: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let behind = self.behind(group, bases);
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{group} has not caught up after 90s; (topic, partition, end, committed): {behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
