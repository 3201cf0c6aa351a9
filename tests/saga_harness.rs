//! [`Saga`]: the five processor binaries running on topics and databases of their own, started
//! through the one deployment type (`troupe-deploy`), with what the tests do to them and read
//! from them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use troupe_deploy::{Deployment, Process, Spec};
use troupe_events::topology::Topology;
use troupe_runtime::admin::TopicAdmin;
use troupe_runtime::codec::{Codec, DecodeError, Decoded};
use troupe_runtime::config::{with_database, KafkaConfig};
use troupe_runtime::topics::Topics;
use troupe_testkit::{binary, repo_root, stack, unique, wait_until, Stack};

use crate::{Snapshot, TempDir, SERVICES};

mod offsets;

/// How long an instance may take to become healthy, or to stop after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(60);

/// A whole saga deployment for one test.
pub struct Saga {
    pub id: String,
    /// The servers this saga runs against: the shared local stack, or a private one.
    pub stack: Stack,
    pub prefix: String,
    logs: TempDir,
    /// What the CLI is run with: the servers and the topic prefix.
    env: Vec<(String, String)>,
    deployment: Deployment,
    pools: BTreeMap<&'static str, PgPool>,
    /// The topics created for this saga, deleted when a test passes.
    topics: Vec<String>,
}

impl std::fmt::Debug for Saga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("prefix", &self.prefix)
            .finish()
    }
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

    /// As [`Saga::start_with`], against `stack` (a [`crate::PrivateStack`]'s, say).
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
        }
        saga.connect().await;
        saga
    }

    /// Connects to every service's database (created by the services themselves), for
    /// [`Saga::snapshot`] and [`Saga::settle`]: done by [`Saga::start`]; by hand when the
    /// services run elsewhere (containers, say).
    pub async fn connect(&mut self) {
        for service in SERVICES {
            let url = with_database(&self.stack.postgres_url, &self.database(service));
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .expect("service database");
            self.pools.insert(service, pool);
        }
    }

    /// The saga's topics (under a prefix of their own) and environment, and no processor running:
    /// for a projector fed by hand, say.
    pub async fn topics_only(settings: &[(&str, &str)]) -> Saga {
        Self::topics_only_on(stack(), settings).await
    }

    /// As [`Saga::topics_only`], against `stack`.
    pub async fn topics_only_on(stack: &Stack, settings: &[(&str, &str)]) -> Saga {
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
        let topics = topology.topics.iter().map(|t| t.name.clone()).collect();

        // The servers, without the local stack's home: test processes do not register with
        // its Prometheus.
        let servers: Vec<(String, String)> = stack
            .vars()
            .iter()
            .filter(|(k, _)| k.as_str() != "TROUPE_HOME")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut processor_settings = vec![
            (
                "RUST_LOG".to_owned(),
                std::env::var("TEST_PROCESSOR_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
            // A killed instance's partitions move to the survivors after 6 s, not 10.
            (
                "TROUPE_KAFKA_SESSION_TIMEOUT_MS".to_owned(),
                "6000".to_owned(),
            ),
        ];
        processor_settings.extend(
            settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let logs = TempDir::new("saga-logs");
        let deployment = Deployment::new(Spec {
            name: Some(id.clone()),
            topic_prefix: prefix.clone(),
            servers: servers.clone(),
            settings: processor_settings.clone(),
            bin_dir: binary("troupe").parent().expect("bin dir").to_owned(),
            logs: logs.path().to_owned(),
            detached: None,
        });
        let mut env = servers;
        env.push(("TROUPE_TOPIC_PREFIX".into(), prefix.clone()));
        env.extend(processor_settings);
        Saga {
            id,
            stack: stack.clone(),
            prefix,
            logs,
            env,
            deployment,
            pools: BTreeMap::new(),
            topics,
        }
    }

    /// A service's database.
    pub fn database(&self, service: &str) -> String {
        self.deployment.database(service)
    }

    /// A service's consumer group.
    pub fn group(&self, service: &str) -> String {
        self.deployment.group(service)
    }

    /// Starts instance `number` of `service` (again, after a kill).
    pub fn spawn(&self, service: &'static str, number: usize) {
        self.spawn_with(service, number, &[]);
    }

    /// Starts instance `number` of `service` with extra environment variables.
    pub fn spawn_with(&self, service: &'static str, number: usize, extra: &[(&str, &str)]) {
        self.deployment
            .spawn(Process::Service(service.to_owned()), number, extra)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts a projector feeding read-model copy `copy` (database and keyspace
    /// `troupe_readmodels_<copy>`), as instance `number`, in consumer group `group` (default
    /// `troupe-projector-<copy>`). Returns once it is healthy.
    pub async fn spawn_projector(&self, copy: &str, number: usize, group: Option<&str>) {
        let process = Process::Projector {
            copy: copy.to_owned(),
            group: group.map(str::to_owned),
        };
        self.deployment
            .spawn(process, number, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        self.wait_healthy("projector", number).await;
    }

    /// Starts query API instance `number` over copy `copy`, or over the live copy when `None`;
    /// returns its base URL once it answers.
    pub async fn spawn_query(&self, number: usize, copy: Option<&str>, wait_ms: u64) -> String {
        let process = Process::Query {
            copy: copy.map(str::to_owned),
            wait_ms,
        };
        let port = self
            .deployment
            .spawn(process, number, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        self.wait_healthy("query", number).await;
        format!("http://127.0.0.1:{port}")
    }

    /// The environment the CLI is run with, for tools the tests run themselves.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Stops instance `number` of `service` as Kubernetes does: SIGTERM, then waits for it to
    /// exit (not within 60 s fails the test, and the saga's drop kills it).
    pub async fn stop(&self, service: &str, number: usize) {
        self.deployment
            .stop(service, number, PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kills instance `number` of `service` with SIGKILL: no shutdown, no flush.
    pub fn kill9(&self, service: &str, number: usize) {
        self.deployment
            .kill9(service, number)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The pid of instance `number` of `service`.
    pub fn pid(&self, service: &str, number: usize) -> u32 {
        self.deployment
            .pid_of(service, number)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The port of an instance's metrics (the query API's HTTP).
    pub fn port(&self, service: &str, number: usize) -> u16 {
        self.deployment
            .port(service, number)
            .expect("a running instance")
    }

    /// The text of an instance's `/metrics`.
    pub async fn metrics(&self, service: &str, number: usize) -> String {
        self.deployment
            .metrics(service, number)
            .await
            .expect("metrics")
    }

    /// Waits until instance `number` of `service` answers `/health`.
    pub async fn wait_healthy(&self, service: &str, number: usize) {
        self.deployment
            .wait_healthy(service, number, PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn log_path(&self, service: &str, number: usize) -> PathBuf {
        self.deployment.log_path(service, number)
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

    /// Fails if any running instance emitted an event `choreography.yaml` does not allow for
    /// the reaction that emitted it.
    pub async fn assert_choreography_kept(&self) {
        for (name, number) in self.deployment.running() {
            let text = self.metrics(&name, number).await;
            let broken: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("troupe_choreography_violations_total{"))
                .collect();
            assert!(
                broken.is_empty(),
                "{name}-{number} emitted what choreography.yaml does not allow:\n{}",
                broken.join("\n")
            );
        }
    }

    /// The sum of `troupe_reactions_total` per arrow (service, on, emitted) over every running
    /// instance.
    pub async fn reactions(&self) -> BTreeMap<(String, String, String), u64> {
        let mut reactions = BTreeMap::new();
        for (name, number) in self.deployment.running() {
            let text = self.metrics(&name, number).await;
            for line in text
                .lines()
                .filter(|l| l.starts_with("troupe_reactions_total{"))
            {
                let label = |key: &str| {
                    let start = line.find(&format!("{key}=\"")).map(|i| i + key.len() + 2)?;
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
}

impl Drop for Saga {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("TROUPE_KEEP_LOGS").is_some() {
            // Keep the logs of a failed run for the person reading the failure (or of every
            // run, when asked).
            let kept = std::env::temp_dir().join(format!("troupe-failed-{}", self.id));
            let _ = std::fs::rename(self.logs.path(), &kept);
            eprintln!("processor logs kept in {}", kept.display());
            return;
        }
        // A passed test's topics go: left behind, every run would add its partitions to the
        // shared broker, which recovers each of them at its next start after a crash.
        let bootstrap = self.stack.kafka_bootstrap.clone();
        let topics = std::mem::take(&mut self.topics);
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let kafka = KafkaConfig {
                    bootstrap,
                    ..KafkaConfig::from_env()
                };
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                let delete = async { TopicAdmin::connect(&kafka).await?.delete(&names).await };
                tokio::time::timeout(Duration::from_secs(15), delete)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(Ok(())))) {
            eprintln!(
                "the saga's topics (prefix {}) could not be deleted",
                self.prefix
            );
        }
    }
}
