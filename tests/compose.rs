//! The compose files (`compose/`): loaded as `docker compose config` loads them (compose-check,
//! built from compose-go by `scripts/tools.sh`), carrying the deployment contract (each troupe
//! service gets exactly the variables the chart gives the same process), and `local.yaml` run for
//! real by podman-compose: the image's processes against the local stack, orders through them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_yaml::Value;
use troupe_e2e::{tool, TempDir, LOCAL_PORTS};
use troupe_testkit::repo_root;

fn compose_check(files: &[&std::path::Path]) -> Output {
    Command::new(tool("compose-check"))
        .args(files)
        .current_dir(repo_root())
        .env_remove("TROUPE_IMAGE")
        .output()
        .expect("run compose-check")
}

#[test]
fn the_compose_files_load_as_docker_compose_loads_them() {
    let root = repo_root();
    let files = [
        root.join("compose/compose.yaml"),
        root.join("compose/local.yaml"),
    ];
    let output = compose_check(&files.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("compose.yaml: ok (16 services)"), "{said}");
    assert!(said.contains("local.yaml: ok (7 services)"), "{said}");

    // And it can fail: a dependency on a service that is not there, a misspelt key. (The copy
    // sits next to the original, so its relative paths still resolve.)
    let text = std::fs::read_to_string(&files[0]).unwrap();
    for (from, to, expected) in [
        ("      setup:\n", "      setpu:\n", "setpu"),
        ("    restart:", "    restat:", "restat"),
    ] {
        assert!(text.contains(from), "compose.yaml no longer has {from:?}");
        let dir = TempDir::new("compose");
        let broken = root.join(format!(
            "compose/.broken-{}.yaml",
            dir.path().file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let output = compose_check(&[broken.as_path()]);
        let _ = std::fs::remove_file(&broken);
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{to:?} passed: {said}");
        assert!(said.contains(expected), "{to:?}: {said}");
    }
}

/// The variable names of each container of `objects` (rendered Deployments), by process.
fn chart_variables() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(tool("helm"))
        .args(["template", "t", "helm/troupe"])
        .current_dir(repo_root())
        .output()
        .expect("run helm");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .filter(|o| o["kind"] == "Deployment")
        .map(|d| {
            let process = d["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap()
                .to_owned();
            let names = d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect();
            (process, names)
        })
        .collect()
}

#[test]
fn each_compose_service_gets_the_variables_the_chart_gives_its_process() {
    let chart = chart_variables();
    let compose: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("compose/compose.yaml")).unwrap(),
    )
    .unwrap();
    // Resolve the YAML merge keys (`<<: [*servers, *settings]`) as compose does.
    let mut compose = compose;
    compose.apply_merge().unwrap();
    for (process, expected) in &chart {
        let service = if process == "lag-exporter" || process == "lagexporter" {
            "lag-exporter"
        } else {
            process.as_str()
        };
        let mut environment = compose["services"][service]["environment"].clone();
        environment.apply_merge().unwrap();
        let names: BTreeSet<String> = environment
            .as_mapping()
            .unwrap_or_else(|| panic!("compose.yaml has no environment map for {service}"))
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            &names, expected,
            "{service}: compose.yaml against the chart"
        );
    }
    assert!(chart.len() >= 8, "{:?}", chart.keys());
}

/// `podman-compose` on `compose/local.yaml`, with the project's podman.
fn podman_compose(args: &[&str]) -> Output {
    Command::new(tool("podman-compose"))
        .arg("--podman-path")
        .arg(repo_root().join("scripts/podman.sh"))
        .args(["--in-pod", "false", "-f", "compose/local.yaml"])
        .args(args)
        .current_dir(repo_root())
        .env_remove("TROUPE_IMAGE")
        .output()
        .expect("run podman-compose")
}

/// Takes the compose project down when the test ends, passed or not.
struct Up;

impl Drop for Up {
    fn drop(&mut self) {
        let _ = podman_compose(&["down"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_local_runs_the_processes_in_containers_against_the_local_stack() {
    let image = Command::new("bash")
        .arg(repo_root().join("scripts/podman.sh"))
        .args(["image", "exists", "localhost/troupe:dev"])
        .status()
        .expect("podman");
    assert!(
        image.success(),
        "no image localhost/troupe:dev: `make image` builds it"
    );
    let _ = podman_compose(&["down"]);
    let up = podman_compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "podman-compose up: {}",
        troupe_e2e::text(&up)
    );
    let _up = Up;
    for (service, port) in LOCAL_PORTS {
        troupe_testkit::wait_until(
            &format!("{service} (compose) to answer /ready"),
            std::time::Duration::from_secs(120),
            || async move {
                let response = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
                    .await
                    .ok()?;
                response.status().is_success().then_some(())
            },
        )
        .await;
        // The compose file's own healthcheck, run as the engine would (podman schedules them with
        // systemd timers, which this machine has not).
        let check = Command::new("bash")
            .arg(repo_root().join("scripts/podman.sh"))
            .args(["healthcheck", "run", &format!("troupe-local_{service}_1")])
            .output()
            .expect("podman healthcheck");
        assert!(
            check.status.success(),
            "{service}'s healthcheck: {}",
            troupe_e2e::text(&check)
        );
    }
    // Orders through the containers: `--wait` exits non-zero unless each reaches its outcome.
    let seed = std::process::id().to_string();
    let produce = Command::new(troupe_testkit::binary("troupe"))
        .args([
            "produce",
            "--orders",
            "10",
            "--scenario",
            "happy",
            "--seed",
            &seed,
        ])
        .args(["--wait", "120"])
        .current_dir(repo_root())
        .envs(troupe_testkit::stack().vars())
        .env_remove("TROUPE_HOME")
        .output()
        .expect("troupe produce");
    let said = troupe_e2e::text(&produce);
    assert!(produce.status.success(), "{said}");
    assert!(said.contains("10/10"), "{said}");
}
