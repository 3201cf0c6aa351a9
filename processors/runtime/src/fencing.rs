//! Zombie fencing: an instance that has lost its partitions applies nothing more to them — not
//! even the batch it held when it froze (a SIGSTOP, a long pause, a VM migration) and resumed
//! after its group had given the partitions to another member.
//!
//! Each service database has `troupe_partition_owner`: per consumer group and (topic,
//! partition), an epoch and the instance that claimed it last (two groups may share a database,
//! as a read model's copies being rebuilt do; they never fence each other). A member assigned a partition claims it in the transaction of
//! its first batch from it: the epoch goes up by one and is its own. Every later batch's
//! transaction locks the rows of its partitions (`FOR SHARE`) and goes on only where the epochs
//! are still its own. Where one is not, another member has claimed the partition since: the
//! transaction is rolled back, and that partition's messages are dropped here, not stored, so
//! its new owner reads them from the committed offset. A claim waits for the share locks of the
//! transactions in progress, so a batch that passed its check commits before the claim that
//! fences it, never after.
//!
//! A frozen member's open transaction would hold a claim back until it thaws: the processors'
//! connections end a transaction idle for longer than the Kafka session timeout
//! (`idle_in_transaction_session_timeout`, [`crate::db::connect_processor`]), so PostgreSQL
//! rolls it back about when the group gives the partitions away.
//!
//! The claim is taken by the consume loop as soon as it sees the assignment (or by the first
//! batch, whichever comes first), not in the rebalance callback, which runs inside the
//! consumer's poll where no database call can wait. A member frozen between being assigned a
//! partition and claiming it would claim it on waking: it then applies what it holds (the
//! inbox keeps that exactly-once) and the member that lost its claim drops what it holds,
//! until librdkafka, at its next heartbeat, revokes the partition from the woken member.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use sqlx::{PgConnection, Row};

/// (full topic name, partition)
pub type Partition = (String, i32);

/// The table, created with the inbox and the outbox ([`crate::outbox::ensure_tables`]).
pub(crate) const TABLE: &str = "CREATE TABLE IF NOT EXISTS troupe_partition_owner (
    consumer_group TEXT NOT NULL,
    topic          TEXT NOT NULL,
    partition      INT NOT NULL,
    epoch          BIGINT NOT NULL,
    owner          TEXT NOT NULL,
    claimed_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
)";

/// What this instance knows of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Assigned by the group, not claimed yet: the next batch claims it.
    Assigned,
    /// Claimed at this epoch.
    Held(i64),
    /// Revoked, lost, or claimed by another member: its messages are dropped until the group
    /// assigns it again.
    Gone,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    /// The consumer whose rebalance set it: a replaced consumer closing later must not revoke
    /// what its successor was assigned.
    consumer: u64,
}

/// The partitions this instance may apply batches of, and its epoch on each.
#[derive(Debug)]
pub struct Ownership {
    owner: String,
    group: String,
    entries: Mutex<BTreeMap<Partition, Entry>>,
    consumers: AtomicU64,
    /// Signalled when partitions are assigned, for the loop to claim them.
    assignments: Notify,
}

/// Epochs claimed in a transaction, recorded once it has committed.
#[derive(Debug, Default)]
pub struct Claims(Vec<(Partition, i64)>);

/// The partitions another member has claimed since this one did.
#[derive(Debug, thiserror::Error)]
#[error("fenced: another instance claimed {}", describe(.0))]
pub struct Fenced(pub Vec<Partition>);

fn describe(partitions: &[Partition]) -> String {
    let names: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}/{p}")).collect();
    names.join(", ")
}

/// What a batch's transaction must do: claim these, check these epochs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    claim: Vec<Partition>,
    check: Vec<(Partition, i64)>,
}

impl Ownership {
    /// `owner`: this instance's name, recorded with its claims; `group`: its consumer group.
    pub fn new(owner: &str, group: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            group: group.to_owned(),
            entries: Mutex::default(),
            consumers: AtomicU64::new(0),
            assignments: Notify::new(),
        }
    }

    /// A number for a new consumer, for its rebalances.
    pub fn consumer(&self) -> u64 {
        self.consumers.fetch_add(1, Ordering::Relaxed)
    }

    /// The group assigned `partitions` to consumer `consumer`.
    pub fn assigned(&self, consumer: u64, partitions: impl IntoIterator<Item = Partition>) {
        let mut entries = self.entries.lock().expect("ownership lock");
        for partition in partitions {
            let state = State::Assigned;
            entries.insert(partition, Entry { state, consumer });
        }
        self.assignments.notify_one();
    }

    /// Resolves when partitions have been assigned since the last call.
    pub async fn assigned_since(&self) {
        self.assignments.notified().await;
    }

    /// The partitions assigned and not claimed yet.
    pub fn unclaimed(&self) -> BTreeSet<Partition> {
        let entries = self.entries.lock().expect("ownership lock");
        entries
            .iter()
            .filter(|(_, e)| e.state == State::Assigned)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The group took `partitions` from consumer `consumer` (revoked or lost).
    pub fn revoked(&self, consumer: u64, partitions: impl IntoIterator<Item = Partition>) {
        let mut entries = self.entries.lock().expect("ownership lock");
        for partition in partitions {
            if let Some(entry) = entries.get_mut(&partition) {
                if entry.consumer == consumer {
                    entry.state = State::Gone;
                }
            }
        }
    }

    /// Whether messages of `partition` may be applied: not revoked or fenced. A partition no
    /// rebalance named (none should reach the loop) counts as assigned.
    pub fn applies_to(&self, topic: &str, partition: i32) -> bool {
        let entries = self.entries.lock().expect("ownership lock");
        entries
            .get(&(topic.to_owned(), partition))
            .is_none_or(|e| e.state != State::Gone)
    }

    /// The messages of `batch` (received at `received`) that may be applied; borrowed when
    /// that is all of them.
    pub(crate) fn keep<'a>(
        &self,
        batch: &'a [OwnedMessage],
        received: &'a [i64],
    ) -> (Cow<'a, [OwnedMessage]>, Cow<'a, [i64]>) {
        let kept: Vec<usize> = (0..batch.len())
            .filter(|&i| self.applies_to(batch[i].topic(), batch[i].partition()))
            .collect();
        if kept.len() == batch.len() {
            return (Cow::Borrowed(batch), Cow::Borrowed(received));
        }
        (
            Cow::Owned(kept.iter().map(|&i| batch[i].clone()).collect()),
            Cow::Owned(kept.iter().map(|&i| received[i]).collect()),
        )
    }

    fn plan(&self, partitions: &BTreeSet<Partition>) -> Plan {
        let entries = self.entries.lock().expect("ownership lock");
        let mut plan = Plan::default();
        for partition in partitions {
            match entries.get(partition).map(|e| e.state) {
                Some(State::Held(epoch)) => plan.check.push((partition.clone(), epoch)),
                Some(State::Gone) => {}
                Some(State::Assigned) | None => plan.claim.push(partition.clone()),
            }
        }
        plan
    }

    /// Marks `partitions` gone: another member claimed them.
    fn fence(&self, partitions: &[Partition]) {
        let mut entries = self.entries.lock().expect("ownership lock");
        for partition in partitions {
            if let Some(entry) = entries.get_mut(partition) {
                entry.state = State::Gone;
            }
        }
    }

    /// In a batch's transaction: claims the partitions of `partitions` assigned since the last
    /// batch, and checks that this instance still holds the others, locking their rows until
    /// the transaction ends. Fails with [`Fenced`] (and drops those partitions) when another
    /// member has claimed one since.
    pub async fn hold(
        &self,
        conn: &mut PgConnection,
        partitions: &BTreeSet<Partition>,
    ) -> Result<Claims, HoldError> {
        let plan = self.plan(partitions);
        if !plan.check.is_empty() {
            let (topics, numbers): (Vec<String>, Vec<i32>) =
                plan.check.iter().map(|(p, _)| p.clone()).unzip();
            let rows = sqlx::query(
                "SELECT topic, partition, epoch FROM troupe_partition_owner
                 WHERE consumer_group = $3
                   AND (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int4[]))
                 ORDER BY topic, partition FOR SHARE",
            )
            .bind(&topics)
            .bind(&numbers)
            .bind(&self.group)
            .fetch_all(&mut *conn)
            .await?;
            let now: BTreeMap<Partition, i64> = rows
                .iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect();
            let lost = lost(&plan.check, &now);
            if !lost.is_empty() {
                self.fence(&lost);
                return Err(HoldError::Fenced(Fenced(lost)));
            }
        }
        if plan.claim.is_empty() {
            return Ok(Claims::default());
        }
        let (topics, numbers): (Vec<String>, Vec<i32>) = plan.claim.into_iter().unzip();
        let rows = sqlx::query(
            "INSERT INTO troupe_partition_owner AS o (consumer_group, topic, partition, epoch, owner)
             SELECT $4, topic, partition, 1, $3
             FROM unnest($1::text[], $2::int4[]) AS u(topic, partition)
             ORDER BY topic, partition
             ON CONFLICT (consumer_group, topic, partition) DO UPDATE
                 SET epoch = o.epoch + 1, owner = EXCLUDED.owner, claimed_at = now()
             RETURNING topic, partition, epoch",
        )
        .bind(&topics)
        .bind(&numbers)
        .bind(&self.owner)
        .bind(&self.group)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Claims(
            rows.iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect(),
        ))
    }

    /// Records the epochs claimed by a committed transaction, where the partition is still
    /// assigned (a rebalance may have taken it meanwhile).
    pub fn claimed(&self, claims: Claims) {
        let mut entries = self.entries.lock().expect("ownership lock");
        for (partition, epoch) in claims.0 {
            match entries.get_mut(&partition) {
                Some(entry) if entry.state == State::Assigned => {
                    entry.state = State::Held(epoch);
                }
                Some(_) => {}
                None => {
                    let state = State::Held(epoch);
                    entries.insert(partition, Entry { state, consumer: 0 });
                }
            }
        }
    }
}

/// The partitions of `held` (with this instance's epochs) whose epoch is no longer the one
/// `now` shows, or that have no owner row at all.
fn lost(held: &[(Partition, i64)], now: &BTreeMap<Partition, i64>) -> Vec<Partition> {
    held.iter()
        .filter(|(partition, epoch)| now.get(partition) != Some(epoch))
        .map(|(partition, _)| partition.clone())
        .collect()
}

/// Why [`Ownership::hold`] failed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error(transparent)]
    Fenced(Fenced),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The (topic, partition) pairs of `batch`.
pub(crate) fn partitions_of(batch: &[OwnedMessage]) -> BTreeSet<Partition> {
    batch
        .iter()
        .map(|m| (m.topic().to_owned(), m.partition()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(topic: &str, partition: i32) -> Partition {
        (topic.to_owned(), partition)
    }

    fn set(partitions: &[Partition]) -> BTreeSet<Partition> {
        partitions.iter().cloned().collect()
    }

    #[test]
    fn assigned_partitions_are_claimed_then_checked_at_their_epoch() {
        let ownership = Ownership::new("a", "g");
        let consumer = ownership.consumer();
        ownership.assigned(consumer, [p("t", 0), p("t", 1)]);
        let plan = ownership.plan(&set(&[p("t", 0), p("t", 1)]));
        assert_eq!(plan.claim, [p("t", 0), p("t", 1)]);
        assert!(plan.check.is_empty());
        ownership.claimed(Claims(vec![(p("t", 0), 4), (p("t", 1), 1)]));
        let plan = ownership.plan(&set(&[p("t", 0), p("t", 1)]));
        assert!(plan.claim.is_empty());
        assert_eq!(plan.check, [(p("t", 0), 4), (p("t", 1), 1)]);
    }

    #[test]
    fn revoked_or_fenced_partitions_are_dropped_until_assigned_again() {
        let ownership = Ownership::new("a", "g");
        let consumer = ownership.consumer();
        ownership.assigned(consumer, [p("t", 0), p("t", 1), p("t", 2)]);
        ownership.claimed(Claims(vec![(p("t", 0), 1), (p("t", 1), 1)]));
        ownership.revoked(consumer, [p("t", 0)]);
        ownership.fence(&[p("t", 1)]);
        assert!(!ownership.applies_to("t", 0));
        assert!(!ownership.applies_to("t", 1));
        assert!(ownership.applies_to("t", 2));
        let plan = ownership.plan(&set(&[p("t", 0), p("t", 1), p("t", 2)]));
        assert_eq!(plan.claim, [p("t", 2)], "nothing gone is claimed again");
        assert!(plan.check.is_empty());
        ownership.assigned(consumer, [p("t", 1)]);
        assert!(ownership.applies_to("t", 1));
        assert_eq!(ownership.plan(&set(&[p("t", 1)])).claim, [p("t", 1)]);
    }

    #[test]
    fn a_replaced_consumer_closing_does_not_revoke_its_successors_partitions() {
        let ownership = Ownership::new("a", "g");
        let (old, new) = (ownership.consumer(), ownership.consumer());
        ownership.assigned(old, [p("t", 0)]);
        ownership.assigned(new, [p("t", 0)]);
        ownership.revoked(old, [p("t", 0)]);
        assert!(ownership.applies_to("t", 0));
    }

    #[test]
    fn a_claim_is_recorded_only_where_the_partition_is_still_assigned() {
        let ownership = Ownership::new("a", "g");
        let consumer = ownership.consumer();
        ownership.assigned(consumer, [p("t", 0)]);
        ownership.revoked(consumer, [p("t", 0)]);
        ownership.claimed(Claims(vec![(p("t", 0), 2)]));
        assert!(!ownership.applies_to("t", 0), "revoked during the batch");
    }

    #[test]
    fn an_epoch_moved_on_or_a_missing_row_is_lost() {
        let held = [(p("t", 0), 3), (p("t", 1), 5), (p("t", 2), 1)];
        let now = BTreeMap::from([(p("t", 0), 3), (p("t", 1), 6)]);
        assert_eq!(lost(&held, &now), [p("t", 1), p("t", 2)]);
        assert!(lost(&held[..1], &now).is_empty());
    }

    #[test]
    fn only_a_partial_batch_is_copied() {
        use rdkafka::message::Timestamp;
        let message = |partition| {
            OwnedMessage::new(
                None,
                None,
                "t".into(),
                Timestamp::NotAvailable,
                partition,
                0,
                None,
            )
        };
        let batch = [message(0), message(1)];
        let ownership = Ownership::new("a", "g");
        let (kept, _) = ownership.keep(&batch, &[1, 2]);
        assert!(matches!(kept, Cow::Borrowed(_)));
        let consumer = ownership.consumer();
        ownership.assigned(consumer, [p("t", 0)]);
        ownership.revoked(consumer, [p("t", 0)]);
        let (kept, received) = ownership.keep(&batch, &[1, 2]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].partition(), 1);
        assert_eq!(&*received, [2]);
    }
}
