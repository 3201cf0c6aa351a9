//! The alert rules read only catalogued metrics and labels, carry a severity and annotations,
//! pass `promtool check rules`, and their promtool unit tests pass, with a case where each
//! alert fires and one where it does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use troupe_observability::alerts::{self, alert_rules};

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../observability")
}

fn rules() -> Vec<alerts::AlertRule> {
    alert_rules(observability_dir().join("alerts.yml")).unwrap()
}

#[test]
fn every_alert_uses_catalogued_metrics_and_labels() {
    let rules = rules();
    assert!(rules.len() >= 8, "{}", rules.len());
    let problems: Vec<String> = rules.iter().flat_map(alerts::check).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for rule in &rules {
        assert_eq!(rule.group, "troupe");
        assert!(rule.for_.is_some(), "{} fires on one evaluation", rule.name);
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_promtool_case() {
    let text = std::fs::read_to_string(observability_dir().join("alerts.test.yml")).unwrap();
    let tests: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    // alert name -> (a case where it fires, a case where it does not)
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in tests["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            let fires = case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty());
            let entry = cases.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    for rule in rules() {
        assert_eq!(
            cases.get(&rule.name),
            Some(&(true, true)),
            "{}: (fires, quiet) cases",
            rule.name
        );
    }
}

/// promtool, from `PROMTOOL` or the Debian package's path. Missing is a failure: the stack
/// script installs it (`apt-get install prometheus`).
fn promtool() -> Command {
    let path = std::env::var_os("PROMTOOL")
        .map_or_else(|| PathBuf::from("/usr/bin/promtool"), PathBuf::from);
    assert!(
        path.is_file(),
        "promtool not found at {} (install Debian's prometheus package, as scripts/stack.sh does, or set PROMTOOL)",
        path.display()
    );
    let mut command = Command::new(path);
    command.current_dir(observability_dir());
    command
}

fn assert_succeeds(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_rules() {
    assert_succeeds(promtool().args(["check", "rules", "alerts.yml"]));
}

#[test]
fn promtool_unit_tests_pass() {
    assert_succeeds(promtool().args(["test", "rules", "alerts.test.yml"]));
}
