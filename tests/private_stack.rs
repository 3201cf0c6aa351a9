//! A second local stack, private to one test: its own `TROUPE_HOME` and free ports, so a test
//! can stop and start its servers (or break them) without touching the stack the other tests
//! share. Removed (`scripts/stack.sh down`) when dropped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use troupe_testkit::{binary, parse_env_file, repo_root, Stack};

use crate::TempDir;

/// Every component of the stack, in the order `scripts/stack.sh` starts them.
pub const COMPONENTS: [&str; 6] = [
    "postgres",
    "kafka",
    "registry",
    "cassandra",
    "prometheus",
    "exporter",
];
/// Ports the servers listen on besides their client port (named as `TROUPE_<NAME>_PORT`).
const OTHER_PORTS: [&str; 2] = ["kafka_controller", "cassandra_storage"];

/// A stack of its own for one test.
#[derive(Debug)]
pub struct PrivateStack {
    home: TempDir,
    pub ports: BTreeMap<&'static str, u16>,
    /// `TROUPE_JAVA`: a stand-in JVM, to see start-up failures.
    pub java: Option<PathBuf>,
    /// `TROUPE_STACK_COMPONENTS`: all when `None`.
    pub components: Option<&'static str>,
    /// `TROUPE_KAFKA_SASL_SSL_PORT`: a SASL_SSL listener besides the plaintext one.
    sasl_ssl_port: Option<u16>,
}

impl PrivateStack {
    /// A stack of `components` (space-separated; all when `None`), not started yet.
    pub fn new(components: Option<&'static str>) -> Self {
        let names: Vec<&'static str> = COMPONENTS.iter().chain(&OTHER_PORTS).copied().collect();
        // Hold every listener until all ports are chosen, so no two are the same.
        let listeners: Vec<TcpListener> = names
            .iter()
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let ports = names
            .iter()
            .zip(&listeners)
            .map(|(name, l)| (*name, l.local_addr().expect("address").port()))
            .collect();
        Self {
            home: TempDir::new("stack"),
            ports,
            java: None,
            components,
            sasl_ssl_port: None,
        }
    }

    /// The same stack with a SASL_SSL listener on its broker (`stack.env` says where, and the
    /// user and password; the CA is `kafka/tls/ca.crt` under its home).
    pub fn with_sasl_ssl(mut self) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        assert!(!self.ports.values().any(|p| *p == port));
        self.sasl_ssl_port = Some(port);
        self
    }

    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// Runs `scripts/stack.sh` with `verb` (words separated by spaces).
    pub fn run(&self, verb: &str) -> Output {
        let bin_dir = binary("troupe").parent().expect("bin dir").to_owned();
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("scripts/stack.sh"))
            .args(verb.split_whitespace())
            .env("TROUPE_HOME", self.home.path())
            .env("TROUPE_BIN_DIR", bin_dir);
        for (name, port) in &self.ports {
            command.env(
                format!("TROUPE_{}_PORT", name.to_uppercase()),
                port.to_string(),
            );
        }
        if let Some(components) = self.components {
            command.env("TROUPE_STACK_COMPONENTS", components);
        }
        if let Some(port) = self.sasl_ssl_port {
            command.env("TROUPE_KAFKA_SASL_SSL_PORT", port.to_string());
        }
        if let Some(java) = &self.java {
            command.env("TROUPE_JAVA", java);
        }
        command.output().expect("run scripts/stack.sh")
    }

    /// Runs `verb` and fails the test unless it succeeds.
    pub fn must(&self, verb: &str) -> Output {
        let output = self.run(verb);
        assert!(
            output.status.success(),
            "scripts/stack.sh {verb} failed:\n{}",
            text(&output)
        );
        output
    }

    /// Brings the stack up and returns its addresses.
    pub fn up(&self) -> Stack {
        self.must("up");
        Stack::from_vars(self.env())
    }

    /// The pid `scripts/stack.sh` recorded for `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let file = self.home.path().join("run").join(format!("{name}.pid"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// The variables of its `stack.env`.
    pub fn env(&self) -> BTreeMap<String, String> {
        parse_env_file(
            &std::fs::read_to_string(self.home.path().join("stack.env")).expect("stack.env"),
        )
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the servers' logs of a failed run for the person reading the failure.
            let kept =
                std::env::temp_dir().join(format!("troupe-failed-stack-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&kept);
            if let Ok(logs) = std::fs::read_dir(self.home.path().join("logs")) {
                for log in logs.flatten() {
                    let _ = std::fs::copy(log.path(), kept.join(log.file_name()));
                }
            }
            eprintln!("server logs kept in {}", kept.display());
        }
        let _ = self.run("down");
    }
}

/// What a command printed, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
