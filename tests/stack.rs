//! The local stack's own behaviour: start, reuse, clear errors, clean shutdown.
//!
//! Each test runs a second stack in its own `TROUPE_HOME` on free ports, so it never touches the
//! stack the other tests use.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use troupe_e2e::TempDir;
use troupe_testkit::{binary, parse_env_file, repo_root};

const COMPONENTS: [&str; 5] = ["postgres", "kafka", "registry", "cql", "prometheus"];

struct TestStack {
    home: TempDir,
    ports: BTreeMap<&'static str, u16>,
    tools: Option<PathBuf>,
}

impl TestStack {
    fn new() -> Self {
        // Hold every listener until all ports are chosen, so no two are the same.
        let listeners: Vec<TcpListener> = COMPONENTS
            .iter()
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports = COMPONENTS
            .iter()
            .zip(&listeners)
            .map(|(name, l)| (*name, l.local_addr().unwrap().port()))
            .collect();
        Self {
            home: TempDir::new("stack"),
            ports,
            tools: None,
        }
    }

    fn run(&self, verb: &str) -> Output {
        let bin_dir = binary("troupe").parent().unwrap().to_owned();
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("scripts/stack.sh"))
            .arg(verb)
            .env("TROUPE_HOME", self.home.path())
            .env("TROUPE_BIN_DIR", bin_dir)
            .env("TROUPE_START_TIMEOUT", "30");
        for (name, port) in &self.ports {
            command.env(
                format!("TROUPE_{}_PORT", name.to_uppercase()),
                port.to_string(),
            );
        }
        if let Some(tools) = &self.tools {
            command.env("TROUPE_TOOLS_DIR", tools);
        }
        command.output().expect("run scripts/stack.sh")
    }

    fn pid(&self, name: &str) -> Option<u32> {
        let file = self.home.path().join("run").join(format!("{name}.pid"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    fn env(&self) -> BTreeMap<String, String> {
        parse_env_file(&std::fs::read_to_string(self.home.path().join("stack.env")).unwrap())
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        let _ = self.run("down");
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn up_starts_everything_up_again_reuses_and_down_cleans_up() {
    let stack = TestStack::new();
    let up = stack.run("up");
    assert!(up.status.success(), "up failed:\n{}", text(&up));

    let status = stack.run("status");
    assert!(status.status.success(), "status:\n{}", text(&status));
    let pids: BTreeMap<&str, u32> = COMPONENTS
        .iter()
        .map(|&name| {
            (
                name,
                stack
                    .pid(name)
                    .unwrap_or_else(|| panic!("no pid for {name}")),
            )
        })
        .collect();
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} is not running");
        assert!(listening(stack.ports[name]), "{name} does not listen");
    }

    let env = stack.env();
    assert_eq!(
        env["TROUPE_KAFKA_BOOTSTRAP"],
        format!("127.0.0.1:{}", stack.ports["kafka"])
    );
    assert_eq!(
        env["TROUPE_SCHEMA_REGISTRY_URL"],
        format!("http://127.0.0.1:{}", stack.ports["registry"])
    );
    assert_eq!(
        env["TROUPE_POSTGRES_URL"],
        format!("postgres://troupe@127.0.0.1:{}", stack.ports["postgres"])
    );
    assert_eq!(
        env["TROUPE_SCYLLA_NODES"],
        format!("127.0.0.1:{}", stack.ports["cql"])
    );
    assert_eq!(
        env["TROUPE_PROMETHEUS_URL"],
        format!("http://127.0.0.1:{}", stack.ports["prometheus"])
    );

    // topics.yaml was applied to this stack's broker.
    let check = Command::new(binary("troupe"))
        .args(["topics", "check"])
        .current_dir(repo_root())
        .env("TROUPE_KAFKA_BOOTSTRAP", &env["TROUPE_KAFKA_BOOTSTRAP"])
        .output()
        .unwrap();
    assert!(check.status.success(), "topics check:\n{}", text(&check));

    // Up again: nothing restarts.
    let again = stack.run("up");
    assert!(
        again.status.success(),
        "second up failed:\n{}",
        text(&again)
    );
    let out = text(&again);
    for name in COMPONENTS {
        let reused = out
            .lines()
            .any(|l| l.starts_with(name) && l.contains("reusing"));
        assert!(reused, "{name} not reused:\n{out}");
        assert_eq!(stack.pid(name), Some(pids[name]), "{name} restarted");
    }

    let down = stack.run("down");
    assert!(down.status.success(), "down failed:\n{}", text(&down));
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} still runs after down");
        assert!(
            !listening(stack.ports[name]),
            "{name} still listens after down"
        );
    }
    assert!(!stack.home.path().join("stack.env").exists());
    assert!(!stack.home.path().join("run").exists());
    assert!(!stack.home.path().join("postgres").exists());
    let status = stack.run("status");
    assert!(!status.status.success(), "status after down should fail");
}

#[test]
fn a_taken_port_is_one_line_naming_the_component() {
    let stack = TestStack::new();
    let squatter = TcpListener::bind(("127.0.0.1", stack.ports["kafka"])).unwrap();
    let up = stack.run("up");
    assert!(!up.status.success(), "up should fail:\n{}", text(&up));
    let stderr = String::from_utf8_lossy(&up.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    assert!(lines[0].starts_with("stack: kafka: port "), "{}", lines[0]);
    assert!(
        lines[0].contains(&stack.ports["kafka"].to_string()),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("already in use"), "{}", lines[0]);
    drop(squatter);
}

#[test]
fn a_server_that_dies_at_start_is_reported_with_its_last_words() {
    let mut stack = TestStack::new();
    // A stand-in broker that passes the version check and then dies.
    let tools = TempDir::new("tools");
    std::fs::create_dir_all(tools.path().join("bin")).unwrap();
    let fake = tools.path().join("bin/tansu");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'tansu 0.6.0'; exit 0; fi\necho 'error: storage engine exploded' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    stack.tools = Some(tools.path().to_owned());

    let up = stack.run("up");
    assert!(!up.status.success(), "up should fail:\n{}", text(&up));
    let stderr = String::from_utf8_lossy(&up.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    assert_eq!(
        lines[0],
        "stack: kafka: exited during start-up: error: storage engine exploded"
    );
}
