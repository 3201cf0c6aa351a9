//! Staying in the consumer group: a watchdog that asks the broker whether this instance is
//! still a member of its group, and replaces the consumer when it is not.
//!
//! After the broker (the group coordinator) restarts, librdkafka's consumer can stay stuck on
//! its coordinator connection: it never sends JoinGroup again and logs only a request timed
//! out in the out-queue once a minute (the class of librdkafka issue #3082). Its partitions sit
//! unread for ever, and nothing in the consumer's own state tells. The broker's view does: the
//! group's member list. When the loop has received nothing for a while and the broker, asked
//! on a connection of its own, lists no member with this instance's client id for longer than
//! [`grace`], the consumer is dropped and a new one subscribes. That is safe at any moment:
//! offsets are stored only after the database commit, so the new member reads from the last
//! committed offset and the inbox skips what was applied.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaResult;

use crate::config::{KafkaConfig, ProcessorConfig};
use crate::group::{self, GroupConsumer};

/// What the broker says about this instance in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A member with this instance's client id is listed.
    Member,
    /// The broker answered and lists no member with this client id.
    Absent,
    /// The broker did not answer: librdkafka reconnects by itself; nothing to judge.
    Unknown,
}

/// How long the broker may list this instance as absent before the consumer is replaced: long
/// enough for a join in progress (a member is listed from its JoinGroup on) and a session to
/// expire, three session timeouts and at least 30 s.
pub(crate) fn grace(session_timeout: Duration) -> Duration {
    (session_timeout * 3).max(Duration::from_secs(30))
}

/// Decides from successive observations when the consumer must be replaced.
#[derive(Debug)]
pub(crate) struct Watchdog {
    grace: Duration,
    absent_since: Option<Instant>,
}

impl Watchdog {
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            grace,
            absent_since: None,
        }
    }

    /// Records what the broker said at `now`; true when the consumer must be replaced (then the
    /// watch starts over).
    pub(crate) fn observe(&mut self, seen: Seen, now: Instant) -> bool {
        match seen {
            Seen::Member | Seen::Unknown => {
                self.absent_since = None;
                false
            }
            Seen::Absent => {
                let since = *self.absent_since.get_or_insert(now);
                if now.duration_since(since) >= self.grace {
                    self.absent_since = None;
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// Asks the broker, on a connection of its own, who the members of a group are.
pub struct GroupObserver {
    client: AdminClient<DefaultClientContext>,
}

impl std::fmt::Debug for GroupObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupObserver").finish_non_exhaustive()
    }
}

impl GroupObserver {
    /// An observer of the brokers at `bootstrap`, with the environment's security settings
    /// (for tests and tools that only know an address); see [`GroupObserver::connect`].
    pub fn new(bootstrap: &str) -> KafkaResult<Self> {
        Self::connect(&KafkaConfig::from_env_at(bootstrap))
    }

    pub fn connect(kafka: &KafkaConfig) -> KafkaResult<Self> {
        let client = kafka.client().set("log_level", "3").create()?;
        Ok(Self { client })
    }

    /// Whether the broker lists a member with client id `client_id` in `group`. Blocking.
    pub fn seen(&self, group: &str, client_id: &str) -> Seen {
        match self
            .client
            .inner()
            .fetch_group_list(Some(group), Duration::from_secs(5))
        {
            Err(error) => {
                tracing::debug!(%error, group, "group membership not asked this time");
                Seen::Unknown
            }
            Ok(list) => {
                // Only a group the coordinator described counts: librdkafka returns Ok with no
                // group, or a group without a state, when a broker answered with an error.
                let described = list
                    .groups()
                    .iter()
                    .find(|g| g.name() == group && !g.state().is_empty() && g.state() != "Dead");
                match described {
                    None => Seen::Unknown,
                    Some(g) if g.members().iter().any(|m| m.client_id() == client_id) => {
                        Seen::Member
                    }
                    Some(_) => Seen::Absent,
                }
            }
        }
    }
}

/// The processor's consumer, replaceable while the loop and the lag task share it.
pub struct Membership {
    consumer: RwLock<Arc<GroupConsumer>>,
    config: ProcessorConfig,
    processor: &'static str,
    topics: Vec<String>,
    observer: GroupObserver,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("processor", &self.processor)
            .field("group", &self.config.group_id)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Subscribes processor `processor` to `topics` (full names).
    pub fn subscribe(
        config: &ProcessorConfig,
        processor: &'static str,
        topics: &[String],
    ) -> KafkaResult<Self> {
        let consumer = group::subscribe(config, processor, topics)?;
        let observer = GroupObserver::connect(&config.kafka)?;
        Ok(Self {
            consumer: RwLock::new(Arc::new(consumer)),
            config: config.clone(),
            processor,
            topics: topics.to_vec(),
            observer,
        })
    }

    /// The consumer in use now.
    pub fn current(&self) -> Arc<GroupConsumer> {
        self.consumer.read().expect("consumer lock").clone()
    }

    /// Whether the broker lists this instance in its group. Blocking.
    pub fn seen(&self) -> Seen {
        self.observer
            .seen(&self.config.group_id, &self.config.instance)
    }

    /// Replaces the consumer by a new one subscribed to the same topics. The old one is closed
    /// on a thread of its own: closing a consumer stuck on its coordinator can take long.
    pub fn rejoin(&self) -> KafkaResult<()> {
        let fresh = Arc::new(group::subscribe(
            &self.config,
            self.processor,
            &self.topics,
        )?);
        let old = std::mem::replace(&mut *self.consumer.write().expect("consumer lock"), fresh);
        // The thread keeps a reference until it holds the only one, so the close happens there
        // and never where a clone is dropped (the consume loop's would block the loop for as
        // long as the stuck close lasts; seen).
        std::thread::spawn(move || {
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(consumer) => {
                        drop(consumer);
                        tracing::info!("the replaced consumer is closed");
                        return;
                    }
                    Err(shared) => {
                        old = shared;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        Ok(())
    }

    /// Leaves the group (see [`group::leave`]).
    pub async fn leave(self) {
        let consumer = self.consumer.into_inner().expect("consumer lock");
        group::leave(consumer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn absent_for_the_grace_replaces_the_consumer_once() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(GRACE);
        assert!(!watchdog.observe(Seen::Absent, start));
        assert!(!watchdog.observe(Seen::Absent, start + Duration::from_secs(29)));
        assert!(watchdog.observe(Seen::Absent, start + GRACE));
        // The watch starts over with the new consumer.
        assert!(!watchdog.observe(Seen::Absent, start + GRACE + Duration::from_secs(1)));
    }

    #[test]
    fn listed_again_or_an_unreachable_broker_resets_the_watch() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(GRACE);
        assert!(!watchdog.observe(Seen::Absent, start));
        assert!(!watchdog.observe(Seen::Member, start + Duration::from_secs(20)));
        assert!(!watchdog.observe(Seen::Absent, start + Duration::from_secs(40)));
        assert!(!watchdog.observe(Seen::Unknown, start + Duration::from_secs(60)));
        assert!(!watchdog.observe(Seen::Absent, start + Duration::from_secs(80)));
        assert!(watchdog.observe(Seen::Absent, start + Duration::from_secs(110)));
    }

    #[test]
    fn the_grace_covers_three_sessions_and_at_least_30_s() {
        assert_eq!(grace(Duration::from_secs(6)), Duration::from_secs(30));
        assert_eq!(grace(Duration::from_secs(45)), Duration::from_secs(135));
    }
}
