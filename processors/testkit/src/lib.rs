//! Helpers for tests that run against the real local stack.
//!
//! - [`stack`]: the addresses from `.troupe/stack.env`, bringing the stack up first when it is
//!   not running, so `cargo test` works on its own as well as under `make test`.
//! - [`unique`]: names for per-test topics, groups, databases and keyspaces.
//! - [`wait_until`]: poll a condition with a deadline instead of sleeping.
//! - [`given`]: given/when/then for every service's pure decisions.

pub mod given;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root: the nearest folder holding `topics.yaml` above the running test's
/// package (cargo and nextest set `CARGO_MANIFEST_DIR` when they run a test).
///
/// Found at run time, not compile time: cargo reuses artifacts across checkouts that share a
/// target dir (`~/.cache/troupe/target`), so a path compiled into this crate may name another
/// checkout, or one that is gone.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("topics.yaml").is_file() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no repository root (topics.yaml) above {}", start.display()))
}

/// The local stack's addresses.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kafka_bootstrap: String,
    pub schema_registry_url: String,
    pub postgres_url: String,
    pub scylla_nodes: String,
    pub prometheus_url: String,
    vars: BTreeMap<String, String>,
}

impl Stack {
    /// The stack described by the variables of a `stack.env` file. A stack of only some
    /// components (`TROUPE_STACK_COMPONENTS`) leaves the others' addresses empty.
    pub fn from_vars(vars: BTreeMap<String, String>) -> Self {
        let get = |name: &str| vars.get(name).cloned().unwrap_or_default();
        Stack {
            kafka_bootstrap: get("TROUPE_KAFKA_BOOTSTRAP"),
            schema_registry_url: get("TROUPE_SCHEMA_REGISTRY_URL"),
            postgres_url: get("TROUPE_POSTGRES_URL"),
            scylla_nodes: get("TROUPE_SCYLLA_NODES"),
            prometheus_url: get("TROUPE_PROMETHEUS_URL"),
            vars,
        }
    }

    /// Every variable the stack exported, for passing to a child process.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }
}

/// Parses `export NAME=value` lines (values may be single-quoted).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            if name.starts_with('#') || name.is_empty() {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The running local stack; brings it up (`scripts/stack.sh up`) when `.troupe/stack.env` is
/// missing. Variables already in the environment win, so CI or a developer can point the tests
/// at other servers.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let root = repo_root();
        let home = std::env::var("TROUPE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".troupe"));
        let env_file = home.join("stack.env");
        let needed = [
            "TROUPE_KAFKA_BOOTSTRAP",
            "TROUPE_SCHEMA_REGISTRY_URL",
            "TROUPE_POSTGRES_URL",
            "TROUPE_SCYLLA_NODES",
            "TROUPE_PROMETHEUS_URL",
        ];
        let all_set = needed.iter().all(|n| std::env::var(n).is_ok());
        let mut vars = BTreeMap::new();
        if !all_set {
            if !stack_is_up(&root) {
                let status = Command::new("bash")
                    .arg(root.join("scripts/stack.sh"))
                    .arg("up")
                    .current_dir(&root)
                    .status()
                    .expect("run scripts/stack.sh up");
                assert!(status.success(), "the local stack did not come up");
            }
            let text = std::fs::read_to_string(&env_file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", env_file.display()));
            vars = parse_env_file(&text);
        }
        for name in needed {
            if let Ok(value) = std::env::var(name) {
                vars.insert(name.to_owned(), value);
            }
        }
        for name in needed {
            assert!(vars.contains_key(name), "{name} is not set by the stack");
        }
        Stack::from_vars(vars)
    })
}

fn stack_is_up(root: &Path) -> bool {
    Command::new("bash")
        .arg(root.join("scripts/stack.sh"))
        .arg("status")
        .arg("--quiet")
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success())
}

/// A name unique to this call: `prefix-<12 hex digits>`, legal as a topic, group, database or
/// keyspace name.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

/// Polls `condition` every 20 ms until it returns `Some`, or panics with `what` at the deadline.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The path of a workspace binary built next to the running test (`cargo build` builds them
/// all before the tests run under `make test`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse() {
        let vars = parse_env_file(
            "# comment\nexport A=1\nexport B='x y'\nC=3\n\nexport D=postgres://u@h:1\n",
        );
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "x y");
        assert_eq!(vars["C"], "3");
        assert_eq!(vars["D"], "postgres://u@h:1");
        assert_eq!(vars.len(), 4);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique("t"), unique("t"));
        assert!(unique("topic").starts_with("topic_"));
    }
}
