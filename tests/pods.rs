//! The chart run for real: `helm template` with `helm/troupe/ci/local-values.yaml`, played as
//! containers of the image `make image` builds, by `podman kube play --network host` (what this
//! machine has instead of a cluster; docs/deploy.md says what that does not exercise).
//!
//! The pods use a PostgreSQL of their own (a private stack, so the test can take it away) and the
//! shared broker, registry and CQL server, on topics of their own. The test drives orders through
//! them with the CLI, replaces one Deployment's pod mid-run, and checks every invariant from the
//! services' databases; then it takes the database away and watches readiness fail and come back,
//! and last runs the chart's `helm test` Pod (its query URL pointed at the query API's address:
//! podman has no Services).
//!
//! Two adaptations to podman 4.3 (Debian bookworm), nowhere else:
//! - it stores a kube `Secret` but cannot read it back for `secretKeyRef` (it fails with
//!   "secret … is not valid JSON"), so the test puts each referenced value in place, as the
//!   kubelet would;
//! - it turns every `containerPort` into a port mapping, which the host network refuses
//!   ("PortMappings can only be used with Bridge or slirp4netns networking"), so the test drops
//!   the containers' port list, after writing the probes' named ports as numbers. On the host
//!   network the list only names ports; the processes bind them themselves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_yaml::Value;
use troupe_e2e::{
    finish, metric_sum, tool, PrivateStack, Saga, TempDir, ALL_OUTCOMES, LOCAL_PORTS,
};
use troupe_testkit::{repo_root, stack, wait_until, Stack};

/// The image `make image` (scripts/image.sh) builds.
const IMAGE: &str = "localhost/troupe:dev";

fn podman(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/podman.sh"))
        .args(args)
        .output()
        .expect("run scripts/podman.sh")
}

/// Plays a Kubernetes YAML file as pods on the host network.
fn play(file: &Path, what: &str) {
    must(
        podman(&[
            "kube",
            "play",
            "--network",
            "host",
            &file.display().to_string(),
        ]),
        what,
    );
}

fn must(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The chart rendered for this test's deployment: every object.
fn render(saga: &Saga, servers: &Stack) -> Vec<Value> {
    let sets = [
        format!("deploymentName={}", saga.id),
        format!("topicPrefix={}", saga.prefix),
        format!("kafka.bootstrap={}", servers.kafka_bootstrap),
        format!("schemaRegistry.url={}", servers.schema_registry_url),
        format!("postgres.url={}", servers.postgres_url),
        format!("scylla.nodes={}", servers.scylla_nodes),
        "image.repository=localhost/troupe".to_owned(),
        "image.tag=dev".to_owned(),
        // As the other end-to-end tests: a replaced pod's partitions move after 6 s, not 10.
        "defaults.env.TROUPE_KAFKA_SESSION_TIMEOUT_MS=6000".to_owned(),
        "defaults.env.RUST_LOG=warn".to_owned(),
    ];
    let mut command = Command::new(tool("helm"));
    command.args([
        "template",
        "pods",
        "helm/troupe",
        "-f",
        "helm/troupe/ci/local-values.yaml",
    ]);
    for set in &sets {
        command.args(["--set-string", set]);
    }
    // podman knows no hooks; the test plays the `helm test` Pod itself, at the end.
    command.args(["--set", "tests.enabled=true"]);
    let text = must(
        command.current_dir(repo_root()).output().expect("run helm"),
        "helm template",
    );
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The chart's Secrets, by (name, key).
type Secrets = BTreeMap<(String, String), Value>;

fn secrets(objects: &[Value]) -> Secrets {
    let mut secrets = Secrets::new();
    for secret in objects.iter().filter(|o| o["kind"] == "Secret") {
        let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        for (key, value) in secret["stringData"].as_mapping().into_iter().flatten() {
            secrets.insert(
                (name.clone(), key.as_str().unwrap().to_owned()),
                value.clone(),
            );
        }
    }
    secrets
}

/// A pod spec adapted to podman as the module's note says; `env` is set in every container
/// (over what the chart set).
fn adapt(pod: &mut Value, secrets: &Secrets, env: &[(&str, &str)]) {
    for list in ["initContainers", "containers"] {
        for container in pod[list].as_sequence_mut().into_iter().flatten() {
            let mut vars: Vec<Value> = container["env"].as_sequence().cloned().unwrap_or_default();
            for var in &mut vars {
                let Some(reference) = var["valueFrom"].get("secretKeyRef").cloned() else {
                    continue;
                };
                let key = (
                    reference["name"].as_str().unwrap().to_owned(),
                    reference["key"].as_str().unwrap().to_owned(),
                );
                let value = secrets
                    .get(&key)
                    .unwrap_or_else(|| panic!("no rendered Secret holds {key:?}"));
                let map = var.as_mapping_mut().unwrap();
                map.remove("valueFrom");
                map.insert("value".into(), value.clone());
            }
            for (name, value) in env {
                vars.retain(|v| v["name"] != *name);
                let mut var = serde_yaml::Mapping::new();
                var.insert("name".into(), (*name).into());
                var.insert("value".into(), (*value).into());
                vars.push(Value::Mapping(var));
            }
            container["env"] = Value::Sequence(vars);
            let named: BTreeMap<String, Value> = container["ports"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_owned(),
                        p["containerPort"].clone(),
                    )
                })
                .collect();
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                // (`get_mut`, not indexing: indexing a missing key would add it.)
                let port = container
                    .get_mut(probe)
                    .and_then(|p| p.get_mut("httpGet"))
                    .and_then(|h| h.get_mut("port"));
                if let Some(port) = port {
                    if let Some(number) = port.as_str().and_then(|name| named.get(name)) {
                        *port = number.clone();
                    }
                }
            }
            if let Some(map) = container.as_mapping_mut() {
                map.remove("ports");
            }
        }
    }
}

/// Each Deployment as a file of its own (so one can be replaced alone), adapted to podman.
fn deployment_files(objects: &[Value], dir: &Path) -> BTreeMap<String, PathBuf> {
    let secrets = secrets(objects);
    let mut files = BTreeMap::new();
    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        let mut deployment = deployment.clone();
        let process = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .expect("component label")
            .to_owned();
        adapt(&mut deployment["spec"]["template"]["spec"], &secrets, &[]);
        let path = dir.join(format!("{process}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&deployment).unwrap()).unwrap();
        files.insert(process, path);
    }
    files
}

/// The `helm test` Pod, adapted to podman, with the query API at its loopback address (there is
/// no Service under podman; in a cluster the Pod reaches the query API through it).
fn test_pod_file(objects: &[Value], dir: &Path) -> (String, PathBuf) {
    let mut pod = objects
        .iter()
        .find(|o| o["kind"] == "Pod" && o["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .expect("the helm test Pod (tests.enabled)")
        .clone();
    adapt(
        &mut pod["spec"],
        &secrets(objects),
        &[("TROUPE_QUERY_URL", "http://127.0.0.1:28090")],
    );
    let path = dir.join("helm-test.yaml");
    std::fs::write(&path, serde_yaml::to_string(&pod).unwrap()).unwrap();
    (pod["metadata"]["name"].as_str().unwrap().to_owned(), path)
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

async fn wait_ready(process: &str, port: u16) {
    wait_until(
        &format!("{process} to answer /ready with 200"),
        Duration::from_secs(120),
        || async move { (get(port, "/ready").await?.0 == 200).then_some(()) },
    )
    .await;
}

/// The pods of a file played, stopped with the Deployment's grace (SIGTERM, then the drain) and
/// removed; `podman kube down` alone would stop them after 10 s.
fn take_down(file: &Path) {
    let yaml: Value = serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let grace = yaml["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30)
        .to_string();
    let name = yaml["metadata"]["name"].as_str().unwrap();
    let pods = must(
        podman(&[
            "pod",
            "ps",
            "--format",
            "{{.Name}}",
            "--filter",
            &format!("name={name}-pod"),
        ]),
        "podman pod ps",
    );
    for pod in pods.lines() {
        must(
            podman(&["pod", "stop", "--time", &grace, pod]),
            "podman pod stop",
        );
    }
    must(
        podman(&["kube", "down", &file.display().to_string()]),
        "podman kube down",
    );
}

/// Takes every pod down when the test ends, passed or not.
struct Played(Vec<PathBuf>);

impl Drop for Played {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the containers said: the test's only view of them.
            let names = podman(&[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                "name=pods-troupe",
            ]);
            for name in String::from_utf8_lossy(&names.stdout).lines() {
                let logs = podman(&["logs", "--tail", "40", name]);
                eprintln!(
                    "--- {name}\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
        }
        for file in &self.0 {
            let _ = podman(&["kube", "down", &file.display().to_string()]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chart_played_as_pods_takes_orders_to_their_outcomes() {
    assert!(
        podman(&["image", "exists", IMAGE]).status.success(),
        "no image {IMAGE}: `make image` (scripts/image.sh) builds it; `make test` does first"
    );
    // Servers: the shared stack's, but a PostgreSQL of the test's own.
    let private = PrivateStack::new(Some("postgres"));
    let database = private.up();
    let mut vars = stack().vars().clone();
    vars.insert("TROUPE_POSTGRES_URL".into(), database.postgres_url.clone());
    let servers = Stack::from_vars(vars);
    let mut saga = Saga::topics_only_on(&servers, &[]).await;

    let dir = TempDir::new("pods");
    let objects = render(&saga, &servers);
    let files = deployment_files(&objects, dir.path());
    let expected: Vec<&str> = LOCAL_PORTS.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut sorted = expected.clone();
            sorted.sort_unstable();
            sorted
        },
        "one Deployment per process"
    );
    let played = Played(files.values().cloned().collect());
    for file in &played.0 {
        play(file, "podman kube play");
    }
    for (process, port) in LOCAL_PORTS {
        wait_ready(process, port).await;
    }
    saga.connect().await;

    // Orders, with the shipping pod replaced while they flow.
    const ORDERS: u64 = 240;
    saga.seed_stock(ORDERS, 7).await;
    let placing = saga.place_in_background(ORDERS, 7, 30, &[]);
    let shipping = &files["shipping"];
    wait_until(
        "shipping to have shipped some orders before its pod is replaced",
        Duration::from_secs(60),
        || async {
            let metrics = get(29104, "/metrics").await?.1;
            (metric_sum(&metrics, "troupe_events_handled_total") >= 20).then_some(())
        },
    )
    .await;
    take_down(shipping);
    play(shipping, "podman kube play (the replacement)");
    wait_ready("shipping (replaced)", 29104).await;
    finish(placing).await;
    let snapshot = saga.settle(ORDERS as usize, Duration::from_secs(180)).await;
    troupe_e2e::assert_every_outcome(&snapshot);
    for (process, port) in LOCAL_PORTS.iter().take(6) {
        let metrics = get(*port, "/metrics").await.expect("metrics").1;
        assert_eq!(
            metric_sum(&metrics, "troupe_choreography_violations_total"),
            0,
            "{process} emitted what choreography.yaml does not allow"
        );
    }

    // The read model, through the query API's pod: every order there, at its outcome.
    let order = snapshot.orders.keys().next().expect("an order").to_string();
    wait_until(
        "the query API to serve an order at its outcome",
        Duration::from_secs(60),
        || {
            let order = order.clone();
            async move {
                let (status, body) = get(28090, &format!("/orders/{order}")).await?;
                let terminal = ALL_OUTCOMES
                    .iter()
                    .chain(&["CANCELLED"])
                    .any(|outcome| body.contains(&format!("\"{outcome}\"")));
                (status == 200 && terminal).then_some(())
            }
        },
    )
    .await;

    // Readiness follows the database; liveness does not.
    private.must("stop postgres");
    wait_until(
        "order's /ready to fail while its database is away",
        Duration::from_secs(30),
        || async {
            let (status, body) = get(29101, "/ready").await?;
            (status == 503 && body.contains("database")).then_some(())
        },
    )
    .await;
    assert_eq!(get(29101, "/live").await.map(|r| r.0), Some(200));
    private.must("start postgres");
    wait_ready("order (database back)", 29101).await;

    // `helm test`: the chart's test Pod, as a cluster would run it after an install.
    let (pod, file) = test_pod_file(&objects, dir.path());
    let _test_pod = Played(vec![file.clone()]);
    play(&file, "podman kube play (the helm test Pod)");
    let main = format!("{pod}-read-back");
    let waited = tokio::task::spawn_blocking(move || podman(&["wait", &main]))
        .await
        .unwrap();
    let code = must(waited, "podman wait");
    let logs = podman(&["pod", "logs", &pod]);
    assert_eq!(
        code.trim(),
        "0",
        "the helm test Pod failed:\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );

    for file in &played.0 {
        take_down(file);
    }
    drop(played);
}
