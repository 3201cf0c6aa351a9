//! Poison pills. A batch that fails transiently (a lost connection, a deadlock, the registry
//! away) is retried for as long as it takes. One that fails the same deterministic way — a
//! constraint or data error from the database, or a handler panic — [`ATTEMPTS`] times in a row
//! is split: each message is applied alone, and a message that still fails that way alone is
//! parked on the dead-letter topic (`handler_failed`, with the error), so the partition moves
//! on and the orders behind it are not held up. The process never restarts for it.

use rdkafka::message::OwnedMessage;
use tokio_util::sync::CancellationToken;

use crate::handler::Handler;
use crate::internal_events::{BatchFailed, InternalEvent};
use crate::outbox::Backoff;
use crate::processor::{BatchError, Ctx};

/// Deterministic failures in a row before a batch is split, and before a message is parked.
pub(crate) const ATTEMPTS: u32 = 3;

impl BatchError {
    /// Whether trying again cannot help: the database refused the data itself (SQLSTATE
    /// classes 22, data exception, and 23, integrity constraint violation), or the handler
    /// panicked. Everything else (connections, deadlocks, serialization failures, the
    /// registry) may pass and is retried without limit.
    pub(crate) fn is_deterministic(&self) -> bool {
        match self {
            BatchError::Database(sqlx::Error::Database(error)) => error
                .code()
                .is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
            BatchError::Panicked(_) => true,
            _ => false,
        }
    }
}

/// How applying a batch ended.
pub(crate) enum Outcome {
    /// Applied, or its poison parked: its offsets may be stored.
    Done,
    /// Stopped while retrying: not stored, the batch is delivered again after a restart.
    Stopped,
}

/// Applies `batch` (received at `received`), retrying, splitting and parking as above.
pub(crate) async fn apply<H: Handler>(
    ctx: &Ctx<H>,
    batch: &[OwnedMessage],
    received: &[i64],
    stop: &CancellationToken,
) -> Outcome {
    let mut backoff = Backoff::new();
    let mut in_a_row = 0;
    loop {
        ctx.metrics.health().beat();
        let error = match ctx.apply(batch, received).await {
            Ok(()) => return Outcome::Done,
            Err(error) => error,
        };
        BatchFailed {
            processor: H::NAME,
            error: &error,
            messages: batch.len(),
        }
        .emit(&ctx.metrics);
        if stop.is_cancelled() {
            return Outcome::Stopped;
        }
        in_a_row = if error.is_deterministic() {
            in_a_row + 1
        } else {
            0
        };
        if in_a_row >= ATTEMPTS {
            if batch.len() > 1 {
                for (message, at) in batch.iter().zip(received) {
                    let alone = Box::pin(apply(
                        ctx,
                        std::slice::from_ref(message),
                        std::slice::from_ref(at),
                        stop,
                    ));
                    if let Outcome::Stopped = alone.await {
                        return Outcome::Stopped;
                    }
                }
                return Outcome::Done;
            }
            return park(ctx, &batch[0], &error, stop).await;
        }
        backoff.wait().await;
    }
}

/// Parks `message` with the error it keeps failing with; retried until that is written.
async fn park<H: Handler>(
    ctx: &Ctx<H>,
    message: &OwnedMessage,
    error: &BatchError,
    stop: &CancellationToken,
) -> Outcome {
    let detail = format!("failed {ATTEMPTS} times alone: {error}");
    let mut backoff = Backoff::new();
    loop {
        ctx.metrics.health().beat();
        match ctx.park(message, &detail).await {
            Ok(()) => return Outcome::Done,
            Err(error) => {
                BatchFailed {
                    processor: H::NAME,
                    error: &error,
                    messages: 1,
                }
                .emit(&ctx.metrics);
                if stop.is_cancelled() {
                    return Outcome::Stopped;
                }
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refused_data_and_panics_are_deterministic() {
        assert!(BatchError::Panicked("boom".into()).is_deterministic());
        assert!(!BatchError::Store("a refused write".into()).is_deterministic());
        assert!(!BatchError::Database(sqlx::Error::PoolTimedOut).is_deterministic());
        assert!(!BatchError::Database(sqlx::Error::WorkerCrashed).is_deterministic());
    }
}
