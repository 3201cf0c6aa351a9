//! Shared helpers for the end-to-end tests: temporary directories, and [`Saga`] — the five
//! processor binaries running on topics and databases of their own, with the invariants the
//! whole system must keep.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sqlx::{PgPool, Row};
use troupe_events::topology::Topology;
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::codec::{Codec, DecodeError, Decoded};
use troupe_runtime::config::{with_database, KafkaConfig};
use troupe_runtime::lag::LagProbe;
use troupe_runtime::topics::Topics;
use troupe_testkit::{binary, repo_root, stack, unique, wait_until, Stack};
use uuid::Uuid;

pub mod private_stack;
pub use private_stack::{text, PrivateStack};

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
pub const SERVICES: [&str; 5] = ["order", "inventory", "payment", "shipping", "notification"];

struct Instance {
    service: &'static str,
    number: usize,
    metrics_port: u16,
    child: Child,
}

/// A whole saga deployment for one test.
pub struct Saga {
    pub id: String,
    /// The servers this saga runs against: the shared local stack, or a private one.
    pub stack: Stack,
    pub prefix: String,
    logs: TempDir,
    env: Vec<(String, String)>,
    instances: Mutex<Vec<Instance>>,
    pools: BTreeMap<&'static str, PgPool>,
}

impl std::fmt::Debug for Saga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("prefix", &self.prefix)
            .finish()
    }
}

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Saga {
    /// Creates the topics, starts one instance of every processor and waits until each is
    /// healthy. `settings` are extra environment variables for the processors.
    pub async fn start(settings: &[(&str, &str)]) -> Saga {
        Self::start_with(settings, &[]).await
    }

    /// As [`Saga::start`], with extra variables for the first instance of some services
    /// (`(service, variables)`), e.g. schema version pins.
    pub async fn start_with(
        settings: &[(&str, &str)],
        per_service: &[(&str, &[(&str, &str)])],
    ) -> Saga {
        Self::start_on(stack(), settings, per_service).await
    }

    /// As [`Saga::start_with`], against `stack` (a [`PrivateStack`]'s, say).
    pub async fn start_on(
        stack: &Stack,
        settings: &[(&str, &str)],
        per_service: &[(&str, &[(&str, &str)])],
    ) -> Saga {
        let mut saga = Self::topics_only_on(stack, settings).await;
        for service in SERVICES {
            let extra = per_service
                .iter()
                .find(|(s, _)| *s == service)
                .map_or(&[][..], |(_, vars)| *vars);
            saga.spawn_with(service, 0, extra);
        }
        for service in SERVICES {
            saga.wait_healthy(service, 0).await;
            let url = with_database(&saga.stack.postgres_url, &saga.database(service));
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .expect("service database");
            saga.pools.insert(service, pool);
        }
        saga
    }

    /// The saga's topics (under a prefix of their own) and environment, and no processor running:
    /// for a projector fed by hand, say.
    pub async fn topics_only(settings: &[(&str, &str)]) -> Saga {
        Self::topics_only_on(stack(), settings).await
    }

    async fn topics_only_on(stack: &Stack, settings: &[(&str, &str)]) -> Saga {
        let id = unique("t");
        let prefix = format!("{id}.");
        let topology = Topology::parse(
            &std::fs::read_to_string(repo_root().join("topics.yaml")).expect("topics.yaml"),
        )
        .expect("valid topics.yaml")
        .prefixed(&prefix);
        let kafka = KafkaConfig {
            bootstrap: stack.kafka_bootstrap.clone(),
            ..KafkaConfig::from_env()
        };
        TopicAdmin::connect(&kafka)
            .await
            .expect("broker")
            .apply(&topology.topics)
            .await
            .expect("create topics");

        let mut env: Vec<(String, String)> = stack
            .vars()
            .iter()
            .filter(|(k, _)| k.as_str() != "TROUPE_HOME")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("TROUPE_TOPIC_PREFIX".into(), prefix.clone()));
        env.push(("RUST_LOG".into(), "warn".into()));
        // A killed instance's partitions move to the survivors after 6 s, not 10.
        env.push(("TROUPE_KAFKA_SESSION_TIMEOUT_MS".into(), "6000".into()));
        for (k, v) in settings {
            env.push(((*k).into(), (*v).into()));
        }
        Saga {
            id,
            stack: stack.clone(),
            prefix,
            logs: TempDir::new("saga-logs"),
            env,
            instances: Mutex::new(Vec::new()),
            pools: BTreeMap::new(),
        }
    }

    pub fn database(&self, service: &str) -> String {
        format!("troupe_{service}_{}", self.id.trim_start_matches("t_"))
    }

    /// Starts instance `number` of `service` (again, after a kill).
    pub fn spawn(&self, service: &'static str, number: usize) {
        self.spawn_with(service, number, &[]);
    }

    /// Starts instance `number` of `service` with extra environment variables.
    pub fn spawn_with(&self, service: &'static str, number: usize, extra: &[(&str, &str)]) {
        let metrics_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join(format!("{service}-{number}.log")))
            .expect("log file");
        let child = Command::new(binary(&format!("troupe-{service}")))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TROUPE_HOME")
            .env("TROUPE_DATABASE", self.database(service))
            .env("TROUPE_GROUP_ID", format!("{}-{service}", self.id))
            .env("TROUPE_INSTANCE", format!("{service}-{number}"))
            .env("TROUPE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn processor");
        let mut instances = self.instances.lock().unwrap();
        instances.retain(|i| !(i.service == service && i.number == number));
        instances.push(Instance {
            service,
            number,
            metrics_port,
            child,
        });
    }

    /// Starts a projector feeding read-model copy `copy` (database and keyspace
    /// `troupe_readmodels_<copy>`), as instance `number`, in consumer group `group` (default
    /// `troupe-projector-<copy>`). Returns once it is healthy.
    pub async fn spawn_projector(&self, copy: &str, number: usize, group: Option<&str>) {
        let metrics_port = free_port();
        let log = self.log_file("projector", number);
        let mut command = Command::new(binary("troupe-projector"));
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TROUPE_HOME")
            .env("TROUPE_READMODEL_COPY", copy)
            .env("TROUPE_INSTANCE", format!("projector-{number}"))
            .env("TROUPE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"));
        if let Some(group) = group {
            command.env("TROUPE_GROUP_ID", group);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn projector");
        self.instances.lock().unwrap().push(Instance {
            service: "projector",
            number,
            metrics_port,
            child,
        });
        self.wait_healthy("projector", number).await;
    }

    /// Starts query API instance `number` over copy `copy`, or over the live copy when `None`;
    /// returns its base URL once it answers.
    pub async fn spawn_query(&self, number: usize, copy: Option<&str>, wait_ms: u64) -> String {
        let port = free_port();
        let log = self.log_file("query", number);
        let mut command = Command::new(binary("troupe-query"));
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TROUPE_HOME")
            .env("TROUPE_QUERY_LISTEN", format!("127.0.0.1:{port}"))
            .env("TROUPE_QUERY_WAIT_MS", wait_ms.to_string());
        if let Some(copy) = copy {
            command.env("TROUPE_READMODEL_COPY", copy);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn troupe-query");
        self.instances.lock().unwrap().push(Instance {
            service: "query",
            number,
            metrics_port: port,
            child,
        });
        self.wait_healthy("query", number).await;
        format!("http://127.0.0.1:{port}")
    }

    fn log_file(&self, service: &str, number: usize) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join(format!("{service}-{number}.log")))
            .expect("log file")
    }

    /// The environment the processors get, for tools the tests run themselves.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Stops instance `number` of `service` as Kubernetes does: SIGTERM, then waits for it to
    /// exit (not within 30 s fails the test, and the saga's drop kills it).
    pub async fn stop(&self, service: &str, number: usize) {
        let pid = {
            let instances = self.instances.lock().unwrap();
            instances
                .iter()
                .find(|i| i.service == service && i.number == number)
                .map(|i| i.child.id())
                .expect("instance")
        };
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {pid}");
        wait_until(
            &format!("{service}-{number} to stop after SIGTERM"),
            Duration::from_secs(30),
            || async {
                let mut instances = self.instances.lock().unwrap();
                let instance = instances
                    .iter_mut()
                    .find(|i| i.service == service && i.number == number)
                    .expect("instance");
                matches!(instance.child.try_wait(), Ok(Some(_))).then_some(())
            },
        )
        .await;
    }

    /// Kills instance `number` of `service` with SIGKILL: no shutdown, no flush.
    pub fn kill9(&self, service: &str, number: usize) {
        let mut instances = self.instances.lock().unwrap();
        if let Some(instance) = instances
            .iter_mut()
            .find(|i| i.service == service && i.number == number)
        {
            let _ = instance.child.kill();
            let _ = instance.child.wait();
        }
    }

    fn metrics_port(&self, service: &str, number: usize) -> u16 {
        self.instances
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.service == service && i.number == number)
            .map(|i| i.metrics_port)
            .expect("instance")
    }

    /// The text of an instance's `/metrics`.
    pub async fn metrics(&self, service: &str, number: usize) -> String {
        let url = format!(
            "http://127.0.0.1:{}/metrics",
            self.metrics_port(service, number)
        );
        reqwest::get(url)
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Waits until instance `number` of `service` answers `/health`.
    pub async fn wait_healthy(&self, service: &str, number: usize) {
        let url = format!(
            "http://127.0.0.1:{}/health",
            self.metrics_port(service, number)
        );
        let what = format!(
            "{service}-{number} to be healthy (log: {})",
            self.log_path(service, number).display()
        );
        wait_until(&what, Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                let response = reqwest::get(url).await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    pub fn log_path(&self, service: &str, number: usize) -> PathBuf {
        self.logs.path().join(format!("{service}-{number}.log"))
    }

    /// Runs the `troupe` CLI against this saga's topics.
    pub fn troupe(&self, args: &[&str]) -> Output {
        let output = Command::new(binary("troupe"))
            .args(args)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TROUPE_HOME")
            .output()
            .expect("run troupe");
        assert!(
            output.status.success(),
            "troupe {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Adds the stock `orders` orders of `seed` need and waits until inventory applied it.
    pub async fn seed_stock(&self, orders: u64, seed: u64) {
        self.seed_stock_for(orders, seed, &[]).await;
    }

    /// As [`Saga::seed_stock`], for orders generated with extra `troupe produce` arguments
    /// (`--mix …`).
    pub async fn seed_stock_for(&self, orders: u64, seed: u64, extra: &[&str]) {
        let orders = orders.to_string();
        let seed = seed.to_string();
        let mut args = vec![
            "produce",
            "--orders",
            &orders,
            "--seed",
            &seed,
            "--stock-only",
        ];
        args.extend_from_slice(extra);
        let out = self.troupe(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        let units: i64 = text
            .split_whitespace()
            .skip_while(|w| *w != "skus")
            .nth(1)
            .and_then(|w| w.trim_start_matches('(').parse().ok())
            .unwrap_or_else(|| panic!("no units in the stock line: {text}"));
        let pool = self.pools["inventory"].clone();
        wait_until(
            "inventory to apply the stock",
            Duration::from_secs(60),
            || {
                let pool = pool.clone();
                async move {
                    let applied: Option<i64> =
                        sqlx::query_scalar("SELECT sum(adjusted)::bigint FROM stock")
                            .fetch_one(&pool)
                            .await
                            .ok()?;
                    (applied.unwrap_or(0) >= units).then_some(())
                }
            },
        )
        .await;
    }

    /// Starts placing `orders` orders of `seed` at `rate` per second with the CLI, in the
    /// background, with extra environment variables (a schema pin, say).
    pub fn place_in_background(
        &self,
        orders: u64,
        seed: u64,
        rate: u32,
        extra: &[(&str, &str)],
    ) -> Child {
        Command::new(binary("troupe"))
            .args(["produce", "--no-stock", "--orders", &orders.to_string()])
            .args(["--seed", &seed.to_string(), "--rate", &rate.to_string()])
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("TROUPE_HOME")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run troupe produce")
    }

    /// Places `orders` orders of `seed` (stock already seeded), at `rate` per second (0: as
    /// fast as possible).
    pub fn place(&self, orders: u64, seed: u64, rate: u32) -> Output {
        self.troupe(&[
            "produce",
            "--orders",
            &orders.to_string(),
            "--seed",
            &seed.to_string(),
            "--rate",
            &rate.to_string(),
            "--no-stock",
        ])
    }

    /// Whether consumer group `group` has committed every message of the saga's topics
    /// `bases`.
    pub fn caught_up(&self, group: &str, bases: &[&str]) -> bool {
        let topics: Vec<String> = bases
            .iter()
            .map(|t| format!("{}{t}", self.prefix))
            .collect();
        let partitions = topics.iter().map(|t| (t.clone(), 6)).collect();
        let probe = LagProbe::new(
            &self.stack.kafka_bootstrap,
            vec![(group.to_owned(), topics)],
            partitions,
        )
        .expect("lag probe");
        probe.lag().expect("lag")[group] == 0
    }

    /// Waits until consumer group `group` has committed every message of `bases`.
    pub async fn wait_caught_up(&self, group: &str, bases: &[&str]) {
        wait_until(
            &format!("{group} to catch up"),
            Duration::from_secs(90),
            || async { self.caught_up(group, bases).then_some(()) },
        )
        .await;
    }

    /// A consumer outside any group of the saga's, for reading its topics by assignment.
    pub fn reader(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.stack.kafka_bootstrap)
            .set("group.id", format!("{}-reader", self.id))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer")
    }

    /// Every message now on the saga's topics `bases` (6 partitions each), decoded with
    /// current versions known.
    pub async fn read_all(&self, bases: &[&str]) -> Vec<Result<Decoded, DecodeError>> {
        let consumer = self.reader();
        let mut assignment = TopicPartitionList::new();
        let mut remaining = HashMap::new();
        for base in bases {
            let topic = format!("{}{base}", self.prefix);
            for partition in 0..6 {
                let (_, high) = consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                    .unwrap();
                if high > 0 {
                    assignment
                        .add_partition_offset(&topic, partition, Offset::Beginning)
                        .unwrap();
                    remaining.insert((topic.clone(), partition), high);
                }
            }
        }
        consumer.assign(&assignment).unwrap();
        let codec = Codec::new(
            &self.stack.schema_registry_url,
            &Topics::with_prefix(self.prefix.clone()),
        );
        let mut decoded = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !remaining.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "topics not read in 60 s"
            );
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message.unwrap();
            let key = (message.topic().to_owned(), message.partition());
            if let Some(high) = remaining.get(&key) {
                if message.offset() + 1 >= *high {
                    remaining.remove(&key);
                }
            }
            decoded.push(codec.decode_message(message.payload()).await);
        }
        decoded
    }

    /// How many messages the saga's dead-letter topic holds.
    pub fn dead_letters(&self) -> i64 {
        let topic = format!("{}{}", self.prefix, troupe_events::topics::DEADLETTER);
        let (low, high) = self
            .reader()
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("dead-letter watermarks");
        high - low
    }

    /// Reads every service's tables.
    pub async fn snapshot(&self) -> Snapshot {
        Snapshot::load(&self.pools).await.expect("snapshot")
    }

    /// The instances still running, as (service, number).
    fn running(&self) -> Vec<(&'static str, usize)> {
        let mut instances = self.instances.lock().unwrap();
        instances
            .iter_mut()
            .filter_map(|i| matches!(i.child.try_wait(), Ok(None)).then_some((i.service, i.number)))
            .collect()
    }

    /// Fails if any running instance emitted an event `choreography.yaml` does not allow for
    /// the reaction that emitted it.
    pub async fn assert_choreography_kept(&self) {
        let running = self.running();
        for (service, number) in running {
            let text = self.metrics(service, number).await;
            let broken: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("troupe_choreography_violations_total{"))
                .collect();
            assert!(
                broken.is_empty(),
                "{service}-{number} emitted what choreography.yaml does not allow:\n{}",
                broken.join("\n")
            );
        }
    }

    /// The sum of `troupe_reactions_total` per arrow (service, on, emitted) over every running
    /// instance.
    pub async fn reactions(&self) -> BTreeMap<(String, String, String), u64> {
        let running = self.running();
        let mut reactions = BTreeMap::new();
        for (service, number) in running {
            let text = self.metrics(service, number).await;
            for line in text
                .lines()
                .filter(|l| l.starts_with("troupe_reactions_total{"))
            {
                let label = |name: &str| {
                    let start = line
                        .find(&format!("{name}=\""))
                        .map(|i| i + name.len() + 2)?;
                    let end = start + line[start..].find('"')?;
                    Some(line[start..end].to_owned())
                };
                let (Some(processor), Some(on), Some(emitted)) =
                    (label("processor"), label("on"), label("emitted"))
                else {
                    continue;
                };
                let count: f64 = line
                    .rsplit(' ')
                    .next()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0.0);
                *reactions.entry((processor, on, emitted)).or_default() += count as u64;
            }
        }
        reactions
    }

    /// Waits until `expected` orders are terminal, every invariant holds and every outbox is
    /// empty; panics with the violations at the deadline.
    pub async fn settle(&self, expected: usize, timeout: Duration) -> Snapshot {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snapshot = self.snapshot().await;
            let violations = snapshot.violations(expected);
            if violations.is_empty() && snapshot.outbox_pending == 0 {
                // Settled: the condition above is the synchronisation. What follows is an
                // observation window, not a wait for anything: a late effect (a duplicate still
                // in flight) must not break what held a moment ago.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let again = self.snapshot().await;
                let late = again.violations(expected);
                assert!(
                    late.is_empty(),
                    "invariants broke after settling:\n{}",
                    late.join("\n")
                );
                self.assert_choreography_kept().await;
                return again;
            }
            if tokio::time::Instant::now() >= deadline {
                let shown: Vec<&String> = violations.iter().take(25).collect();
                panic!(
                    "not settled after {timeout:?}: {} violation(s), {} outbox rows pending; logs in {}\n{}",
                    violations.len(),
                    snapshot.outbox_pending,
                    self.logs.path().display(),
                    shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Saga {
    fn drop(&mut self) {
        for instance in self.instances.lock().unwrap().iter_mut() {
            let _ = instance.child.kill();
            let _ = instance.child.wait();
        }
        if std::thread::panicking() {
            // Keep the logs of a failed run for the person reading the failure.
            let kept = std::env::temp_dir().join(format!("troupe-failed-{}", self.id));
            let _ = std::fs::rename(self.logs.path(), &kept);
            eprintln!("processor logs kept in {}", kept.display());
        }
    }
}

/// One order as the order service knows it.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub customer_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub total: i64,
}

/// Every service's state at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub orders: HashMap<Uuid, OrderRow>,
    /// order → (status, [(sku, qty)])
    pub reservations: HashMap<Uuid, (String, Vec<(String, i32)>)>,
    /// sku → (available, reserved, shipped, adjusted)
    pub stock: BTreeMap<String, (i32, i32, i32, i64)>,
    /// order → (customer, status, amount, authorized, refunded)
    pub payments: HashMap<Uuid, (String, String, i64, i64, i64)>,
    /// customer → (limit, used)
    pub accounts: HashMap<String, (i64, i64)>,
    /// order → status
    pub shipments: HashMap<Uuid, Option<String>>,
    /// order → kind
    pub notifications: HashMap<Uuid, String>,
    pub notification_rows: i64,
    pub outbox_pending: i64,
}

impl Snapshot {
    async fn load(pools: &BTreeMap<&'static str, PgPool>) -> Result<Self, sqlx::Error> {
        let mut s = Snapshot::default();
        for row in sqlx::query("SELECT order_id, customer_id, status, reason, total FROM orders")
            .fetch_all(&pools["order"])
            .await?
        {
            s.orders.insert(
                row.get(0),
                OrderRow {
                    customer_id: row.get(1),
                    status: row.get(2),
                    reason: row.get(3),
                    total: row.get(4),
                },
            );
        }
        for row in sqlx::query("SELECT order_id, status, lines FROM reservations")
            .fetch_all(&pools["inventory"])
            .await?
        {
            let sqlx::types::Json(lines): sqlx::types::Json<Vec<(String, i32)>> = row.get(2);
            s.reservations.insert(row.get(0), (row.get(1), lines));
        }
        for row in sqlx::query("SELECT sku, available, reserved, shipped, adjusted FROM stock")
            .fetch_all(&pools["inventory"])
            .await?
        {
            s.stock
                .insert(row.get(0), (row.get(1), row.get(2), row.get(3), row.get(4)));
        }
        for row in sqlx::query(
            "SELECT order_id, customer_id, status, amount, authorized, refunded FROM payments",
        )
        .fetch_all(&pools["payment"])
        .await?
        {
            s.payments.insert(
                row.get(0),
                (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5)),
            );
        }
        for row in sqlx::query("SELECT customer_id, credit_limit, used FROM accounts")
            .fetch_all(&pools["payment"])
            .await?
        {
            s.accounts.insert(row.get(0), (row.get(1), row.get(2)));
        }
        for row in sqlx::query("SELECT order_id, status FROM shipments")
            .fetch_all(&pools["shipping"])
            .await?
        {
            s.shipments.insert(row.get(0), row.get(1));
        }
        for row in sqlx::query("SELECT order_id, kind FROM notifications")
            .fetch_all(&pools["notification"])
            .await?
        {
            s.notifications.insert(row.get(0), row.get(1));
        }
        s.notification_rows = sqlx::query_scalar("SELECT count(*) FROM notifications")
            .fetch_one(&pools["notification"])
            .await?;
        for pool in pools.values() {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM troupe_outbox")
                .fetch_one(pool)
                .await?;
            s.outbox_pending += pending;
        }
        Ok(s)
    }

    /// Orders per outcome: `CONFIRMED`, `REJECTED`, or the cancellation reason.
    pub fn outcomes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for order in self.orders.values() {
            let key = match order.status.as_str() {
                "CANCELLED" => order.reason.clone().unwrap_or_default(),
                other => other.to_owned(),
            };
            *out.entry(key).or_default() += 1;
        }
        out
    }

    /// Every broken invariant, described; empty when the system is consistent and settled.
    pub fn violations(&self, expected_orders: usize) -> Vec<String> {
        let mut v = Vec::new();
        if self.orders.len() != expected_orders {
            v.push(format!(
                "{} orders known, {expected_orders} placed",
                self.orders.len()
            ));
        }
        let mut net_per_customer: HashMap<&str, i64> = HashMap::new();
        for (customer, _, _, authorized, refunded) in self.payments.values() {
            *net_per_customer.entry(customer).or_default() += authorized - refunded;
        }
        for (id, order) in &self.orders {
            let reservation = self.reservations.get(id).map(|(s, _)| s.as_str());
            let payment = self.payments.get(id);
            let net = payment.map_or(0, |p| p.3 - p.4);
            let shipment = self.shipments.get(id).and_then(|s| s.as_deref());
            let notice = self.notifications.get(id).map(String::as_str);
            match order.status.as_str() {
                "CONFIRMED" => {
                    if reservation != Some("COMMITTED") {
                        v.push(format!("{id} confirmed, stock {reservation:?}"));
                    }
                    match payment {
                        Some((_, status, amount, authorized, refunded))
                            if status == "AUTHORIZED"
                                && *authorized == order.total
                                && *amount == order.total
                                && *refunded == 0 => {}
                        other => v.push(format!(
                            "{id} confirmed, payment {other:?}, total {}",
                            order.total
                        )),
                    }
                    if shipment != Some("SCHEDULED") {
                        v.push(format!("{id} confirmed, shipment {shipment:?}"));
                    }
                    if notice != Some("CONFIRMATION") {
                        v.push(format!("{id} confirmed, notice {notice:?}"));
                    }
                }
                "CANCELLED" => {
                    if !matches!(reservation, None | Some("RELEASED") | Some("REJECTED")) {
                        v.push(format!("{id} cancelled, stock {reservation:?}"));
                    }
                    if net != 0 {
                        v.push(format!("{id} cancelled, net money {net}"));
                    }
                    if shipment == Some("SCHEDULED") {
                        v.push(format!("{id} cancelled, shipment still scheduled"));
                    }
                    if notice != Some("CANCELLATION") {
                        v.push(format!("{id} cancelled, notice {notice:?}"));
                    }
                }
                "REJECTED" => {
                    if reservation.is_some() || payment.is_some() || shipment.is_some() {
                        v.push(format!("{id} rejected but has effects"));
                    }
                    if notice != Some("REJECTION") {
                        v.push(format!("{id} rejected, notice {notice:?}"));
                    }
                }
                other => v.push(format!("{id} is not terminal: {other}")),
            }
            let _ = &order.customer_id;
        }
        if self.notification_rows as usize != self.orders.len() {
            v.push(format!(
                "{} notifications for {} orders",
                self.notification_rows,
                self.orders.len()
            ));
        }
        let mut shipped: BTreeMap<&str, i64> = BTreeMap::new();
        let mut held: BTreeMap<&str, i64> = BTreeMap::new();
        for (status, lines) in self.reservations.values() {
            for (sku, quantity) in lines {
                match status.as_str() {
                    "COMMITTED" => *shipped.entry(sku).or_default() += i64::from(*quantity),
                    "ACTIVE" | "PAID" | "EXPIRING" => {
                        *held.entry(sku).or_default() += i64::from(*quantity)
                    }
                    _ => {}
                }
            }
        }
        for (sku, (available, reserved, ship, adjusted)) in &self.stock {
            if i64::from(*available) + i64::from(*reserved) + i64::from(*ship) != *adjusted {
                v.push(format!(
                    "{sku}: stock not conserved: {available} + {reserved} + {ship} != {adjusted}"
                ));
            }
            if *available < 0 || *reserved < 0 || *ship < 0 {
                v.push(format!("{sku}: negative stock"));
            }
            if i64::from(*ship) != shipped.get(sku.as_str()).copied().unwrap_or(0) {
                v.push(format!(
                    "{sku}: shipped {ship}, committed reservations say {:?}",
                    shipped.get(sku.as_str())
                ));
            }
            if i64::from(*reserved) != held.get(sku.as_str()).copied().unwrap_or(0) {
                v.push(format!(
                    "{sku}: reserved {reserved}, open reservations say {:?}",
                    held.get(sku.as_str())
                ));
            }
        }
        for (customer, (_, used)) in &self.accounts {
            let net = net_per_customer
                .get(customer.as_str())
                .copied()
                .unwrap_or(0);
            if *used != net {
                v.push(format!(
                    "{customer}: credit used {used}, payments net {net}"
                ));
            }
        }
        v
    }
}
