//! Shared helpers for the end-to-end tests:
//! - [`Saga`] (`saga_harness.rs`): the five processor binaries on topics and databases of their
//!   own;
//! - [`Snapshot`] (`snapshot.rs`): every service's state, read through each service's own
//!   typed reads, and the invariants the whole system must keep;
//! - [`PrivateStack`] (`private_stack.rs`): a second local stack a test may stop and start;
//! - temporary directories, metric and header helpers.

use std::path::{Path, PathBuf};

use rdkafka::Message;
use troupe_testkit::unique;

pub mod private_stack;
mod saga_harness;
mod snapshot;

pub use private_stack::{text, PrivateStack};
pub use saga_harness::Saga;
pub use snapshot::Snapshot;

/// A pinned tool `scripts/tools.sh` installs (helm, compose-check, kubernetes-validate), in
/// `$TROUPE_TOOLS_DIR/bin` (default `~/.cache/troupe/tools/bin`); panics with how to get it.
pub fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("TROUPE_TOOLS_DIR").map_or_else(
        || PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/troupe/tools"),
        PathBuf::from,
    );
    let path = tools.join("bin").join(name);
    assert!(
        path.exists(),
        "no {name} at {} (scripts/tools.sh installs it; make test runs it)",
        path.display()
    );
    path
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(&format!("troupe-{prefix}")));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Short timers, so expiry scenarios settle in seconds: a reservation lives 15 s (long enough
/// for a happy order's payment under test load on 2 cores), a payment review takes 20 s.
pub const TIMERS: [(&str, &str); 3] = [
    ("TROUPE_RESERVATION_TTL_MS", "15000"),
    ("TROUPE_PAYMENT_REVIEW_MS", "20000"),
    ("TROUPE_TIMER_INTERVAL_MS", "100"),
];

/// Every way an order can end.
pub const ALL_OUTCOMES: [&str; 7] = [
    "CONFIRMED",
    "REJECTED",
    "OUT_OF_STOCK",
    "PAYMENT_DECLINED",
    "SHIPMENT_FAILED",
    "CUSTOMER_REQUEST",
    "RESERVATION_EXPIRED",
];

/// Fails unless every outcome occurred at least once.
pub fn assert_every_outcome(snapshot: &Snapshot) {
    let outcomes = snapshot.outcomes();
    for outcome in ALL_OUTCOMES {
        assert!(
            outcomes.get(outcome).copied().unwrap_or(0) > 0,
            "no {outcome} in {outcomes:?}"
        );
    }
}

/// The saga's processors.
/// The processes of a local deployment (helm/troupe/ci/local-values.yaml, compose/local.yaml)
/// and the port each listens on: the processors' metrics and health, the query API.
pub const LOCAL_PORTS: [(&str, u16); 7] = [
    ("order", 29101),
    ("inventory", 29102),
    ("payment", 29103),
    ("shipping", 29104),
    ("notification", 29105),
    ("projector", 29106),
    ("query", 28090),
];

pub const SERVICES: [&str; 5] = ["order", "inventory", "payment", "shipping", "notification"];

/// A message's header as text, empty when it has none of that name.
pub fn header(message: &impl Message, name: &str) -> String {
    troupe_runtime::processor::headers_of(message.headers())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The sum of every sample of metric `name` in a `/metrics` text.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// GETs a JSON document: the status and the body.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// Waits for a `troupe produce` started in the background ([`Saga::place_in_background`]);
/// fails unless it succeeded.
pub async fn finish(child: std::process::Child) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "troupe produce failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
