//! One way to run troupe's processors.
//!
//! - [`Process`] and [`Deployment::environment`]: the deployment contract — which processes
//!   there are, and what each instance is told through its environment (names, databases,
//!   groups, ports). The demo, the bench and the end-to-end tests start processes through this
//!   crate; the Helm chart and the compose file pass the same variables.
//! - [`Deployment`]: starts instances as local processes, waits until they are healthy, stops
//!   them as Kubernetes does (SIGTERM) or kills them (SIGKILL), and reads their metrics.

mod launch;

use std::path::PathBuf;

use troupe_events::choreography::Choreography;

pub use launch::{DeployError, Instance};

/// A kind of troupe process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// One of the saga's services (`order`, `inventory`, … as `choreography.yaml` names them).
    Service(String),
    /// The read-model projector feeding copy `copy`; `group` overrides the copy's group.
    Projector { copy: String, group: Option<String> },
    /// The query API over copy `copy` (or whichever copy is live), waiting at most `wait_ms`
    /// for a read-your-writes position.
    Query { copy: Option<String>, wait_ms: u64 },
}

impl Process {
    /// The saga's services, in the order the choreography lists them.
    pub fn services() -> Vec<Process> {
        Choreography::current()
            .services
            .iter()
            .map(|s| Process::Service(s.name.clone()))
            .collect()
    }

    /// The name of its binary's process kind: `order`, `projector`, `query`.
    pub fn name(&self) -> &str {
        match self {
            Process::Service(name) => name,
            Process::Projector { .. } => "projector",
            Process::Query { .. } => "query",
        }
    }

    /// Its binary: `troupe-order`, `troupe-projector`, `troupe-query`.
    pub fn binary(&self) -> String {
        format!("troupe-{}", self.name())
    }
}

/// What a deployment is: its names and where its processes find the servers.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Distinguishes this deployment's databases and groups from others' on the same servers
    /// (`None`: the plain names, `troupe_order` and `troupe-order`).
    pub name: Option<String>,
    /// Every topic behind this prefix (empty: the names of `topics.yaml`).
    pub topic_prefix: String,
    /// The servers' variables (`TROUPE_KAFKA_BOOTSTRAP`, … as `.troupe/stack.env` exports
    /// them), passed to every process.
    pub servers: Vec<(String, String)>,
    /// Further variables for every process (timers, batch sizes, log levels).
    pub settings: Vec<(String, String)>,
    /// Where the binaries are.
    pub bin_dir: PathBuf,
    /// Where each instance's log goes (`<process>-<number>.log`).
    pub logs: PathBuf,
    /// Processes outlive this launcher: each is recorded as `<process>[-<number>].pid` and
    /// `.port` here (the local stack's run directory, which `make down` stops), and is reused
    /// when it runs already.
    pub detached: Option<PathBuf>,
}

/// The launcher of one deployment's processes.
#[derive(Debug)]
pub struct Deployment {
    spec: Spec,
    instances: std::sync::Mutex<Vec<Instance>>,
}

impl Deployment {
    pub fn new(spec: Spec) -> Self {
        Self {
            spec,
            instances: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// A service's own database.
    pub fn database(&self, service: &str) -> String {
        match &self.spec.name {
            None => format!("troupe_{service}"),
            Some(name) => format!("troupe_{service}_{name}"),
        }
    }

    /// A service's consumer group.
    pub fn group(&self, service: &str) -> String {
        match &self.spec.name {
            None => format!("troupe-{service}"),
            Some(name) => format!("troupe-{service}-{name}"),
        }
    }

    /// The contract: every variable instance `number` of `process` is started with, its
    /// metrics (or, for the query API, its HTTP) on `port`. The servers' variables and the
    /// deployment's settings come first; what names the instance last.
    pub fn environment(
        &self,
        process: &Process,
        number: usize,
        port: u16,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .spec
            .servers
            .iter()
            .chain(&self.spec.settings)
            .cloned()
            .collect();
        let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
        set("TROUPE_TOPIC_PREFIX", self.spec.topic_prefix.clone());
        let instance = format!("{}-{number}", process.name());
        match process {
            Process::Service(service) => {
                set("TROUPE_DATABASE", self.database(service));
                set("TROUPE_GROUP_ID", self.group(service));
                set("TROUPE_INSTANCE", instance);
                set("TROUPE_METRICS_LISTEN", format!("127.0.0.1:{port}"));
            }
            Process::Projector { copy, group } => {
                set("TROUPE_READMODEL_COPY", copy.clone());
                if let Some(group) = group {
                    set("TROUPE_GROUP_ID", group.clone());
                }
                set("TROUPE_INSTANCE", instance);
                set("TROUPE_METRICS_LISTEN", format!("127.0.0.1:{port}"));
            }
            Process::Query { copy, wait_ms } => {
                if let Some(copy) = copy {
                    set("TROUPE_READMODEL_COPY", copy.clone());
                }
                set("TROUPE_QUERY_LISTEN", format!("127.0.0.1:{port}"));
                set("TROUPE_QUERY_WAIT_MS", wait_ms.to_string());
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: Option<&str>) -> Spec {
        Spec {
            name: name.map(str::to_owned),
            topic_prefix: "t.".into(),
            servers: vec![("TROUPE_KAFKA_BOOTSTRAP".into(), "127.0.0.1:1".into())],
            settings: vec![("RUST_LOG".into(), "warn".into())],
            bin_dir: PathBuf::from("/bin"),
            logs: PathBuf::from("/tmp"),
            detached: None,
        }
    }

    fn value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_named_deployment_has_databases_and_groups_of_its_own() {
        let plain = Deployment::new(spec(None));
        assert_eq!(plain.database("order"), "troupe_order");
        assert_eq!(plain.group("order"), "troupe-order");
        let named = Deployment::new(spec(Some("t_1")));
        assert_eq!(named.database("order"), "troupe_order_t_1");
        assert_eq!(named.group("order"), "troupe-order-t_1");
    }

    #[test]
    fn each_process_is_told_what_names_it() {
        let d = Deployment::new(spec(Some("x")));
        let env = d.environment(&Process::Service("payment".into()), 2, 9000);
        assert_eq!(value(&env, "TROUPE_DATABASE"), Some("troupe_payment_x"));
        assert_eq!(value(&env, "TROUPE_GROUP_ID"), Some("troupe-payment-x"));
        assert_eq!(value(&env, "TROUPE_INSTANCE"), Some("payment-2"));
        assert_eq!(value(&env, "TROUPE_METRICS_LISTEN"), Some("127.0.0.1:9000"));
        assert_eq!(value(&env, "TROUPE_TOPIC_PREFIX"), Some("t."));
        assert_eq!(value(&env, "TROUPE_KAFKA_BOOTSTRAP"), Some("127.0.0.1:1"));
        assert_eq!(value(&env, "RUST_LOG"), Some("warn"));

        let projector = Process::Projector {
            copy: "b".into(),
            group: None,
        };
        let env = d.environment(&projector, 0, 9001);
        assert_eq!(value(&env, "TROUPE_READMODEL_COPY"), Some("b"));
        assert_eq!(
            value(&env, "TROUPE_GROUP_ID"),
            None,
            "the copy names the group"
        );
        let query = Process::Query {
            copy: None,
            wait_ms: 500,
        };
        let env = d.environment(&query, 0, 9002);
        assert_eq!(value(&env, "TROUPE_QUERY_LISTEN"), Some("127.0.0.1:9002"));
        assert_eq!(value(&env, "TROUPE_READMODEL_COPY"), None);
    }

    #[test]
    fn the_services_are_the_choreography_s() {
        let names: Vec<String> = Process::services()
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        assert_eq!(
            names,
            ["order", "inventory", "payment", "shipping", "notification"]
        );
    }
}
