//! The local stack's own behaviour: start, reuse, clear errors, a broker that keeps its data
//! across a restart, clean shutdown.
//!
//! Each test runs a second stack in its own `TROUPE_HOME` on free ports ([`PrivateStack`]), so
//! it never touches the stack the other tests use.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use troupe_e2e::private_stack::COMPONENTS;
use troupe_e2e::{text, PrivateStack, TempDir};
use troupe_testkit::{binary, repo_root};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn up_starts_everything_up_again_reuses_and_down_cleans_up() {
    let stack = PrivateStack::new(None);
    stack.must("up");
    stack.must("status");
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
    let port = |name: &str| stack.ports[name];
    assert_eq!(
        env["TROUPE_KAFKA_BOOTSTRAP"],
        format!("127.0.0.1:{}", port("kafka"))
    );
    assert_eq!(
        env["TROUPE_SCHEMA_REGISTRY_URL"],
        format!("http://127.0.0.1:{}", port("registry"))
    );
    assert_eq!(
        env["TROUPE_POSTGRES_URL"],
        format!("postgres://troupe@127.0.0.1:{}", port("postgres"))
    );
    assert_eq!(
        env["TROUPE_SCYLLA_NODES"],
        format!("127.0.0.1:{}", port("cassandra"))
    );
    assert_eq!(
        env["TROUPE_PROMETHEUS_URL"],
        format!("http://127.0.0.1:{}", port("prometheus"))
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
    let again = stack.must("up");
    let out = text(&again);
    for name in COMPONENTS {
        let reused = out
            .lines()
            .any(|l| l.starts_with(name) && l.contains("reusing"));
        assert!(reused, "{name} not reused:\n{out}");
        assert_eq!(stack.pid(name), Some(pids[name]), "{name} restarted");
    }

    stack.must("down");
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} still runs after down");
        assert!(
            !listening(stack.ports[name]),
            "{name} still listens after down"
        );
    }
    for gone in ["stack.env", "run", "postgres", "kafka", "cassandra"] {
        assert!(
            !stack.home().join(gone).exists(),
            "{gone} is left after down"
        );
    }
    let status = stack.run("status");
    assert!(!status.status.success(), "status after down should fail");
}

#[test]
fn a_taken_port_is_one_line_naming_the_component() {
    let stack = PrivateStack::new(Some("kafka"));
    for (port, variable) in [
        (stack.ports["kafka"], "TROUPE_KAFKA_PORT"),
        (
            stack.ports["kafka_controller"],
            "TROUPE_KAFKA_CONTROLLER_PORT",
        ),
    ] {
        let squatter = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let up = stack.run("up");
        assert!(!up.status.success(), "up should fail:\n{}", text(&up));
        let stderr = String::from_utf8_lossy(&up.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
        assert!(lines[0].starts_with("stack: kafka: port "), "{}", lines[0]);
        assert!(lines[0].contains(&port.to_string()), "{}", lines[0]);
        assert!(lines[0].contains("already in use"), "{}", lines[0]);
        assert!(lines[0].ends_with(variable), "{}", lines[0]);
        drop(squatter);
    }
}

#[test]
fn a_server_that_dies_at_start_is_reported_with_its_last_words() {
    let mut stack = PrivateStack::new(Some("kafka"));
    // A stand-in JVM that formats the broker's storage and then dies when the broker starts.
    let tools = TempDir::new("java");
    let fake = tools.path().join("java");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$*\" in *StorageTool*) exit 0 ;; esac\necho 'error: storage engine exploded' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    stack.java = Some(fake);

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

#[test]
fn the_broker_keeps_its_data_across_a_stop_and_start() {
    let stack = PrivateStack::new(Some("kafka"));
    let bootstrap = stack.up().kafka_bootstrap;
    let config = |extra: &[(&str, &str)]| {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &bootstrap);
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config
    };
    // The stack's broker creates no topic by itself.
    let admin: AdminClient<DefaultClientContext> = config(&[]).create().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let created = runtime
        .block_on(admin.create_topics(
            [&NewTopic::new("kept", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: ThreadedProducer<DefaultProducerContext> =
        config(&[("acks", "all")]).create().unwrap();
    for i in 0..100 {
        let payload = format!("message {i}");
        producer
            .send(BaseRecord::<(), _>::to("kept").payload(&payload))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    drop(producer);
    let pid = stack.pid("kafka").unwrap();

    stack.must("stop kafka");
    assert!(!alive(pid), "the broker still runs after stop");
    assert!(stack.home().join("kafka/data/meta.properties").exists());
    stack.must("start kafka");
    assert_ne!(stack.pid("kafka"), Some(pid), "a new broker process");

    let consumer: BaseConsumer = config(&[("group.id", "kept-reader")]).create().unwrap();
    let (low, high) = consumer
        .fetch_watermarks("kept", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!((low, high), (0, 100), "the log after a restart");
}
