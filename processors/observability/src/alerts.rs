//! The alert rules of `observability/alerts.yml`, read back so tests can check them against
//! the catalogue and evaluate their expressions against a real Prometheus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One alerting rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    /// The rule's group.
    pub group: String,
    pub name: String,
    pub expr: String,
    /// How long the expression must hold before the alert fires (`5m`); `None` fires at once.
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Why the rule file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The file is missing or unreadable: check the path (relative to the working directory).
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Prometheus rule file: `promtool check rules` says where.
    #[error("{path} is not a prometheus rule file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
    // Read so that `deny_unknown_fields` accepts them; not used.
    #[serde(default, rename = "interval")]
    _interval: Option<String>,
    #[serde(default, rename = "limit")]
    _limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "keep_firing_for")]
    _keep_firing_for: Option<String>,
}

/// The alerting rules of a Prometheus rule file, in file order (recording rules are left out).
pub fn alert_rules(path: impl AsRef<Path>) -> Result<Vec<AlertRule>, AlertsError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| AlertsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file: RuleFile = serde_yaml::from_str(&text).map_err(|source| AlertsError::Parse {
        path: path.to_owned(),
        source,
    })?;
    let mut rules = Vec::new();
    for group in file.groups {
        for rule in group.rules {
            let (Some(name), None) = (rule.alert, rule.record) else {
                continue;
            };
            rules.push(AlertRule {
                group: group.name.clone(),
                name,
                expr: rule.expr.trim().to_owned(),
                for_: rule.for_,
                labels: rule.labels,
                annotations: rule.annotations,
            });
        }
    }
    Ok(rules)
}

/// What is wrong with an alert rule, one line each: its expression against the catalogue, a
/// severity label, and summary and description annotations.
pub fn check(rule: &AlertRule) -> Vec<String> {
    let mut problems: Vec<String> = crate::promql::check(&rule.expr)
        .into_iter()
        .map(|problem| format!("{}: {problem}", rule.name))
        .collect();
    if !matches!(
        rule.labels.get("severity").map(String::as_str),
        Some("critical" | "warning" | "info")
    ) {
        problems.push(format!(
            "{}: no severity label (critical, warning or info)",
            rule.name
        ));
    }
    for annotation in ["summary", "description"] {
        if rule
            .annotations
            .get(annotation)
            .is_none_or(|text| text.trim().is_empty())
        {
            problems.push(format!("{}: no {annotation} annotation", rule.name));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(expr: &str) -> AlertRule {
        AlertRule {
            group: "troupe".into(),
            name: "TestAlert".into(),
            expr: expr.into(),
            for_: Some("5m".into()),
            labels: [("severity".to_owned(), "warning".to_owned())].into(),
            annotations: [
                ("summary".to_owned(), "s".to_owned()),
                ("description".to_owned(), "d".to_owned()),
            ]
            .into(),
        }
    }

    #[test]
    fn reads_alerting_rules_and_skips_recording_ones() {
        let dir = std::env::temp_dir().join(format!("troupe-alerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rules.yml");
        std::fs::write(&path, "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n      - alert: A\n        expr: |\n          up == 0\n        for: 1m\n        labels: {severity: critical}\n").unwrap();
        let rules = alert_rules(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            (rules[0].name.as_str(), rules[0].expr.as_str()),
            ("A", "up == 0")
        );
        assert_eq!(rules[0].for_.as_deref(), Some("1m"));
        assert!(matches!(
            alert_rules(dir.join("missing.yml")),
            Err(AlertsError::Read { .. })
        ));
    }

    #[test]
    fn check_fails_on_unknown_metrics_labels_and_missing_metadata() {
        assert_eq!(
            check(&rule("max by (group) (troupe_group_lag_seconds) > 60")),
            Vec::<String>::new()
        );
        assert_eq!(check(&rule("troupe_group_lag_secs > 60")).len(), 1);
        assert_eq!(
            check(&rule("max by (grp) (troupe_group_lag_seconds) > 60")).len(),
            1
        );
        let mut bare = rule("up == 0");
        bare.labels.clear();
        bare.annotations.remove("description");
        assert_eq!(check(&bare).len(), 2, "{:?}", check(&bare));
    }
}
