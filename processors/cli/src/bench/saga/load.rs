//! The open-loop sender.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use troupe_runtime::handler::now_ms;
use troupe_runtime::publish::Publisher;

use super::observe::Book;
use crate::scenario::{self, Mix, Rng};

/// The open-loop sender.
pub(super) struct Load<'a> {
    pub(super) publisher: &'a Publisher,
    pub(super) book: &'a Arc<Mutex<Book>>,
    pub(super) mix: &'a Mix,
    pub(super) rng: Rng,
    /// Orders built so far (numbers customers and addresses).
    pub(super) counter: u64,
}

impl Load<'_> {
    /// Offers orders at `rate` per second for `seconds` on a fixed clock. Returns how many.
    pub(super) async fn offer(
        &mut self,
        phase: usize,
        rate: f64,
        seconds: f64,
    ) -> anyhow::Result<u64> {
        let total = (rate * seconds).round() as u64;
        let start = Instant::now();
        let mut sends = JoinSet::new();
        for i in 0..total {
            // Open loop: order i is due at start + i / rate, whatever happened before.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let scenario = self.mix.pick(&mut self.rng);
            let order = scenario::build(scenario, self.counter, &mut self.rng, now_ms());
            self.counter += 1;
            {
                let mut book = self.book.lock().expect("book lock");
                book.orders.insert(order.order_id, (phase, due, false));
                book.phases[phase].offered += 1;
            }
            let publisher = self.publisher.clone();
            sends.spawn(async move {
                for request in &order.requests {
                    publisher.publish(request).await?;
                }
                Ok::<(), anyhow::Error>(())
            });
            while let Some(done) = sends.try_join_next() {
                done??;
            }
        }
        while let Some(done) = sends.join_next().await {
            done??;
        }
        Ok(total)
    }
}
