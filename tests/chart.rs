//! The Helm chart (`helm/troupe`), rendered by the real helm CLI (`scripts/tools.sh` installs
//! it): it lints with every `ci/*-values.yaml`, refuses a typo in values, runs every process
//! under the security context the cluster expects, passes each process the variables of the
//! deployment contract (`troupe-deploy`), and ships the alert rules of
//! `observability/alerts.yml` unchanged.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_yaml::Value;
use troupe_deploy::{Deployment, Process, Spec};
use troupe_e2e::tool;
use troupe_testkit::repo_root;

fn run(args: &[&str]) -> Output {
    Command::new(tool("helm"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run helm")
}

fn values_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("helm/troupe/ci"))
        .expect("helm/troupe/ci")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-values.yaml"))
        .map(|name| format!("helm/troupe/ci/{name}"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
}

/// Every object of `helm template` with `extra` arguments.
fn render(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "t", "helm/troupe"];
    args.extend_from_slice(extra);
    let output = run(&args);
    assert!(
        output.status.success(),
        "helm template {extra:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn the_chart_lints_and_renders_with_every_ci_values_file() {
    for file in values_files() {
        let lint = run(&["lint", "--strict", "helm/troupe", "-f", &file]);
        assert!(
            lint.status.success(),
            "helm lint {file}:\n{}{}",
            String::from_utf8_lossy(&lint.stdout),
            String::from_utf8_lossy(&lint.stderr)
        );
        assert!(!render(&["-f", &file]).is_empty(), "{file} renders nothing");
    }
}

#[test]
fn a_typo_in_values_is_refused_with_its_path() {
    for (set, expected) in [
        ("defaults.replica=2", "replica"),
        ("proceses.order.replicas=1", "proceses"),
        ("processes.order.replicas=7", "partitions"),
    ] {
        let output = run(&["template", "t", "helm/troupe", "--set", set]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {set} was accepted");
        assert!(stderr.contains(expected), "--set {set}: {stderr}");
    }
}

#[test]
fn every_process_runs_non_root_read_only_with_probes_and_the_contracts_variables() {
    let objects = render(&[]);
    let deployments = kind(&objects, "Deployment");
    let contract = Deployment::new(Spec {
        name: None,
        topic_prefix: String::new(),
        servers: [
            "TROUPE_KAFKA_BOOTSTRAP",
            "TROUPE_SCHEMA_REGISTRY_URL",
            "TROUPE_POSTGRES_URL",
            "TROUPE_SCYLLA_NODES",
        ]
        .iter()
        .map(|k| ((*k).to_owned(), String::new()))
        .collect(),
        settings: Vec::new(),
        bin_dir: PathBuf::new(),
        logs: PathBuf::new(),
        detached: None,
    });
    let mut processes = Process::services();
    processes.push(Process::Projector {
        copy: "a".into(),
        group: None,
    });
    processes.push(Process::Query {
        copy: Some("a".into()),
        wait_ms: 5000,
    });
    for process in &processes {
        let name = format!("t-troupe-{}", process.name());
        let deployment = deployments
            .iter()
            .find(|d| d["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["capabilities"]["drop"][0], "ALL", "{name}");
        let non_root =
            pod["securityContext"]["runAsNonRoot"] == true || security["runAsNonRoot"] == true;
        assert!(non_root, "{name} may run as root");
        // The runtime's meanings (processors/runtime/src/health.rs): alive = the loop turns,
        // ready = database answering and partitions assigned.
        for (probe, path) in [
            ("startupProbe", "/live"),
            ("livenessProbe", "/live"),
            ("readinessProbe", "/ready"),
        ] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{name} {probe}");
        }
        assert!(
            pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(0) >= 30,
            "{name}"
        );
        let env: BTreeSet<String> = container["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        for (variable, _) in contract.environment(process, 0, 9090) {
            // The read-model copy is the live one unless pinned; the local launcher pins it.
            if variable == "TROUPE_READMODEL_COPY" && process.name() == "query" {
                continue;
            }
            assert!(env.contains(&variable), "{name} lacks {variable}: {env:?}");
        }
    }
}

#[test]
fn the_prometheus_rule_is_the_alert_file() {
    let objects = render(&["-f", "helm/troupe/ci/full-values.yaml"]);
    let rules = kind(&objects, "PrometheusRule");
    assert_eq!(rules.len(), 1);
    let file: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("observability/alerts.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(rules[0]["spec"]["groups"], file["groups"]);
    let dashboards = kind(&objects, "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .count();
    assert_eq!(dashboards, 4, "one ConfigMap per dashboard");
}

#[test]
fn the_values_schema_is_the_one_its_generator_writes() {
    let generated = Command::new("python3")
        .arg("helm/values-schema.py")
        .current_dir(repo_root())
        .output()
        .expect("python3");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let committed = std::fs::read(repo_root().join("helm/troupe/values.schema.json")).unwrap();
    assert!(
        generated.stdout == committed,
        "helm/troupe/values.schema.json differs from its generator: \
         python3 helm/values-schema.py > helm/troupe/values.schema.json"
    );
}

/// `kubernetes-validate --strict` of `objects` against Kubernetes `version`'s API schemas
/// (offline; custom resources — KEDA, Prometheus operator — are reported as unknown and skipped).
fn validate(objects: &[Value], version: &str) -> Output {
    let file = std::env::temp_dir().join(troupe_testkit::unique("chart-objects") + ".yaml");
    let text: Vec<String> = objects
        .iter()
        .map(|o| serde_yaml::to_string(o).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let output = Command::new(tool("kubernetes-validate"))
        .args(["--strict", "--quiet", "-k", version])
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let _ = std::fs::remove_file(&file);
    output
}

#[test]
fn every_rendered_object_is_valid_for_kubernetes_1_30_and_1_37() {
    for file in values_files() {
        let objects = render(&["-f", &file]);
        // 1.30: the oldest the chart supports (the preStop `sleep` handler).
        for version in ["1.30", "1.37"] {
            let output = validate(&objects, version);
            assert!(
                output.status.success(),
                "{file} against Kubernetes {version}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    // And the check can fail: a misspelt field, a string where a number goes.
    // (kubernetes-validate reports the first error of each object, so two objects break.)
    let mut objects = render(&[]);
    let mut deployments = objects.iter_mut().filter(|o| o["kind"] == "Deployment");
    deployments.next().expect("a Deployment")["spec"]["replicas"] = Value::from("two");
    deployments.next().expect("a second Deployment")["spec"]["template"]["spec"]["containers"][0]
        .as_mapping_mut()
        .unwrap()
        .insert("imagePullPolcy".into(), "Never".into());
    let output = validate(&objects, "1.30");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a broken Deployment passed: {said}"
    );
    assert!(
        said.contains("imagePullPolcy") && said.contains("replicas"),
        "{said}"
    );
}
