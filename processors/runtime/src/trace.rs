//! Where each hop's time goes: the timestamps a processor records for every effect it emits,
//! carried in the effect's `troupe.trace` header.
//!
//! With the topics' `message.timestamp.type = LogAppendTime`, a hop from a cause appended at
//! `A(cause)` to its effect appended at `A(effect)` splits into five stages that add up to it:
//!
//! | stage | from → to |
//! |---|---|
//! | fetch | `A(cause)` → the processor receives the cause |
//! | linger | received → the batch's transaction starts (the batch filling) |
//! | transaction | start → commit returned (inbox, state, outbox, commit) |
//! | relay wake-up | commit → the relay picks the row up |
//! | produce | picked up → `A(effect)` (enqueue, producer linger, the broker's append) |
//!
//! Times are microseconds since the Unix epoch, from the processor's clock; the append times
//! are the broker's, in milliseconds. An effect of a timer has no cause, so no fetch or linger;
//! a row another instance committed (or committed before a restart) has no commit time.

use std::time::{SystemTime, UNIX_EPOCH};

/// The header that carries a [`Trace`].
pub const TRACE_HEADER: &str = "troupe.trace";

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The timestamps of one effect, each known or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trace {
    /// When the processor received the cause.
    pub received: Option<i64>,
    /// When the batch's transaction started.
    pub applied: Option<i64>,
    /// When the transaction's commit returned.
    pub committed: Option<i64>,
    /// When the relay picked the row up to produce it.
    pub relayed: Option<i64>,
}

/// The stages of one hop, in microseconds (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    pub fetch: i64,
    pub linger: i64,
    pub transaction: i64,
    pub relay_wake: i64,
    pub produce: i64,
}

impl Trace {
    /// The header value: the four times in order, comma-separated, an unknown one empty.
    pub fn to_header(&self) -> String {
        let field = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{}",
            field(self.received),
            field(self.applied),
            field(self.committed),
            field(self.relayed)
        )
    }

    /// Reads a header value; `None` unless it has the four fields, each empty or a number.
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.split(',').map(|f| {
            if f.is_empty() {
                Ok(None)
            } else {
                f.parse::<i64>().map(Some)
            }
        });
        let mut next = || fields.next()?.ok();
        let trace = Trace {
            received: next()?,
            applied: next()?,
            committed: next()?,
            relayed: next()?,
        };
        fields.next().is_none().then_some(trace)
    }

    /// The hop's stages, given the append times (ms) of its cause and its effect; `None` unless
    /// every time is known. A stage never counts below zero: the append times are whole
    /// milliseconds, so the stages next to them may be off by up to one.
    pub fn stages(&self, cause_appended_ms: i64, effect_appended_ms: i64) -> Option<Stages> {
        let (received, applied, committed, relayed) = (
            self.received?,
            self.applied?,
            self.committed?,
            self.relayed?,
        );
        let cause = cause_appended_ms * 1000;
        let effect = effect_appended_ms * 1000;
        Some(Stages {
            fetch: (received - cause).max(0),
            linger: (applied - received).max(0),
            transaction: (committed - applied).max(0),
            relay_wake: (relayed - committed).max(0),
            produce: (effect - relayed).max(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_survives_its_header() {
        let full = Trace {
            received: Some(1_700_000_000_000_100),
            applied: Some(1_700_000_000_002_300),
            committed: Some(1_700_000_000_004_000),
            relayed: Some(1_700_000_000_004_200),
        };
        assert_eq!(Trace::parse(&full.to_header()), Some(full));
        let timer = Trace {
            applied: Some(5),
            committed: Some(7),
            ..Trace::default()
        };
        assert_eq!(timer.to_header(), ",5,7,");
        assert_eq!(Trace::parse(",5,7,"), Some(timer));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in ["", "1,2,3", "1,2,3,4,5", "1,x,3,4", "1,2,3,4.5"] {
            assert_eq!(Trace::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_stages_add_up_to_the_hop() {
        let trace = Trace {
            received: Some(10_000_400),
            applied: Some(10_002_400),
            committed: Some(10_004_000),
            relayed: Some(10_004_100),
        };
        let stages = trace.stages(10_000, 10_006).expect("complete");
        assert_eq!(
            stages,
            Stages {
                fetch: 400,
                linger: 2_000,
                transaction: 1_600,
                relay_wake: 100,
                produce: 1_900,
            }
        );
        let sum =
            stages.fetch + stages.linger + stages.transaction + stages.relay_wake + stages.produce;
        assert_eq!(sum, 6_000);
        assert_eq!(Trace::default().stages(1, 2), None);
    }

    #[test]
    fn a_stage_never_counts_below_zero() {
        // Received 0.3 ms "before" a cause appended in the millisecond after it.
        let trace = Trace {
            received: Some(9_999_700),
            applied: Some(10_000_000),
            committed: Some(10_001_000),
            relayed: Some(10_001_000),
        };
        assert_eq!(trace.stages(10_000, 10_002).unwrap().fetch, 0);
    }
}
