//! An expression checked against the catalogue: every series it reads is a troupe metric (or
//! one Prometheus writes itself), and every label it matches, groups or joins on exists where
//! it is used.

use std::collections::BTreeSet;

use super::{parse, Expr, Grouping, Selector};
use crate::catalogue::{self, Kind};

/// Labels Prometheus adds to every troupe series from the scrape target: `job` and `instance`
/// always, `processor` and `instance_name` from a processor's discovery file, `component` from
/// the other targets' files.
pub const TARGET_LABELS: &[&str] = &["job", "instance", "processor", "instance_name", "component"];

/// Series Prometheus writes itself for every target it scrapes, with the target labels only.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// The labels an expression's result can carry; `Unknown` when the expression reads something
/// that is not catalogued (already reported) or computes labels (`label_replace`).
#[derive(Debug, Clone)]
enum Labels {
    Scalar,
    Vector(BTreeSet<String>),
    Unknown,
}

/// What is wrong with `expr`, one sentence each; empty when nothing is.
pub fn check(expr: &str) -> Vec<String> {
    match parse(expr) {
        Ok(parsed) => {
            let mut problems = Vec::new();
            labels_of(&parsed, &mut problems);
            problems
        }
        Err(error) => vec![format!("does not parse: {error}")],
    }
}

fn set<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> BTreeSet<String> {
    names.into_iter().map(|n| n.as_ref().to_owned()).collect()
}

fn listed(labels: &BTreeSet<String>) -> String {
    labels
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The labels a selector's series have, or a problem when its metric is not catalogued.
fn selector_labels(selector: &Selector) -> Result<BTreeSet<String>, String> {
    let name = selector
        .metric()
        .ok_or_else(|| "a selector without a metric name".to_owned())?;
    let mut labels = set(TARGET_LABELS);
    if PROMETHEUS_SERIES.contains(&name) {
        return Ok(labels);
    }
    let metric = catalogue::metric_of_series(name)
        .ok_or_else(|| format!("{name} is not a metric in the catalogue"))?;
    labels.extend(metric.labels.iter().map(|l| (*l).to_owned()));
    if matches!(metric.kind, Kind::Histogram { .. }) && name.ends_with("_bucket") {
        labels.insert("le".to_owned());
    }
    Ok(labels)
}

fn labels_of(expr: &Expr, problems: &mut Vec<String>) -> Labels {
    match expr {
        Expr::Number(_) | Expr::String(_) | Expr::Variable(_) => Labels::Scalar,
        Expr::Selector(selector) => match selector_labels(selector) {
            Ok(labels) => {
                let name = selector.metric().unwrap_or_default();
                for matcher in &selector.matchers {
                    if matcher.label != "__name__" && !labels.contains(&matcher.label) {
                        problems.push(format!(
                            "{name} has no label {:?} (it has {})",
                            matcher.label,
                            listed(&labels)
                        ));
                    }
                }
                Labels::Vector(labels)
            }
            Err(problem) => {
                problems.push(problem);
                Labels::Unknown
            }
        },
        Expr::Range { expr, .. } | Expr::Unary(expr) | Expr::Paren(expr) => {
            labels_of(expr, problems)
        }
        Expr::Call { func, args } => call_labels(func, args, problems),
        Expr::Aggregate { op, grouping, args } => {
            let all: Vec<Labels> = args.iter().map(|arg| labels_of(arg, problems)).collect();
            // The vector is the last argument (`topk(5, v)`, `quantile(0.9, v)`).
            let Some(Labels::Vector(available)) = all.last().cloned() else {
                return Labels::Unknown;
            };
            let (clause, names) = match grouping {
                Some(Grouping::By(names)) => (format!("{op} by"), names.as_slice()),
                Some(Grouping::Without(names)) => (format!("{op} without"), names.as_slice()),
                None => (String::new(), &[][..]),
            };
            missing(&clause, names, &available, problems);
            // These select series rather than combine them: the series keep their labels.
            if ["topk", "bottomk", "limitk", "limit_ratio"].contains(&op.as_str()) {
                return Labels::Vector(available);
            }
            match grouping {
                Some(Grouping::By(names)) => Labels::Vector(set(names)),
                Some(Grouping::Without(names)) => Labels::Vector(
                    available
                        .into_iter()
                        .filter(|l| !names.contains(l))
                        .collect(),
                ),
                None => Labels::Vector(BTreeSet::new()),
            }
        }
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
        } => {
            let left = labels_of(lhs, problems);
            let right = labels_of(rhs, problems);
            let (Labels::Vector(left), Labels::Vector(right)) = (&left, &right) else {
                return match (left, right) {
                    (Labels::Scalar, Labels::Scalar) => Labels::Scalar,
                    (Labels::Vector(side), Labels::Scalar)
                    | (Labels::Scalar, Labels::Vector(side)) => Labels::Vector(side),
                    _ => Labels::Unknown,
                };
            };
            let Some(matching) = matching else {
                return Labels::Vector(if op == "or" {
                    left | right
                } else {
                    left.clone()
                });
            };
            if matching.on {
                missing(
                    &format!("{op} on"),
                    &matching.labels,
                    &(left & right),
                    problems,
                );
            } else {
                missing(
                    &format!("{op} ignoring"),
                    &matching.labels,
                    &(left | right),
                    problems,
                );
            }
            match &matching.group {
                Some(group) => {
                    let (many, one) = if group.left {
                        (left, right)
                    } else {
                        (right, left)
                    };
                    let side = if group.left {
                        "group_left"
                    } else {
                        "group_right"
                    };
                    missing(side, &group.labels, one, problems);
                    Labels::Vector(many | &set(&group.labels))
                }
                None if matching.on && !["and", "or", "unless"].contains(&op.as_str()) => {
                    Labels::Vector(set(&matching.labels))
                }
                None => Labels::Vector(left.clone()),
            }
        }
    }
}

fn call_labels(func: &str, args: &[Expr], problems: &mut Vec<String>) -> Labels {
    let all: Vec<Labels> = args.iter().map(|arg| labels_of(arg, problems)).collect();
    let vector = all.iter().find(|l| !matches!(l, Labels::Scalar)).cloned();
    match func {
        "time" | "scalar" | "pi" => Labels::Scalar,
        "vector" => Labels::Vector(BTreeSet::new()),
        "label_replace" | "label_join" | "absent" | "absent_over_time" => Labels::Unknown,
        "histogram_quantile" => {
            match vector {
                Some(Labels::Vector(mut labels)) => {
                    if !labels.remove("le") {
                        problems.push("histogram_quantile over series without an \"le\" label (aggregate by le)".to_owned());
                    }
                    Labels::Vector(labels)
                }
                _ => Labels::Unknown,
            }
        }
        _ => vector.unwrap_or(Labels::Unknown),
    }
}

/// Reports each of `names` that `available` lacks.
fn missing(
    clause: &str,
    names: &[String],
    available: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    for name in names {
        if !available.contains(name) {
            problems.push(format!(
                "{clause} ({name}): no such label on its operands (they have {})",
                listed(available)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_catalogued_metrics_and_their_labels() {
        for expr in [
            r#"max by (group) (troupe_group_lag_seconds{job=~"$job", instance=~"$instance"}) > 60"#,
            r#"histogram_quantile(0.99, sum by (le, processor, event_type) (rate(troupe_event_hop_seconds_bucket[$__rate_interval])))"#,
            r#"troupe_group_lag_messages > 0 and on (group, topic, partition) changes(troupe_group_committed_offset[10m]) == 0"#,
            r#"sum by (processor) (rate(troupe_batch_messages_sum[5m])) / sum by (processor) (rate(troupe_batch_messages_count[5m]))"#,
            r#"up{job="troupe", instance_name!=""} == 0"#,
            r#"sum by (processor, on, emitted) (increase(troupe_choreography_violations_total[1h]))"#,
            r#"troupe_group_lag_messages * on (group, topic) group_left () troupe_group_lag_velocity"#,
            r#"troupe_group_lag_messages and on (group, topic, partition) topk(10, troupe_group_lag_seconds)"#,
        ] {
            assert_eq!(check(expr), Vec::<String>::new(), "{expr}");
        }
    }

    #[test]
    fn catches_an_unknown_metric() {
        let problems = check(r#"max by (group) (troupe_group_lag_secs{job=~"$job"})"#);
        assert_eq!(
            problems,
            ["troupe_group_lag_secs is not a metric in the catalogue"]
        );
        // A histogram's own name is not a series Prometheus stores.
        assert_eq!(check("rate(troupe_batch_messages[5m])").len(), 1);
    }

    #[test]
    fn catches_an_unknown_label_in_a_matcher() {
        let problems = check(r#"troupe_sagas{stat="stalled"}"#);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("troupe_sagas has no label \"stat\""),
            "{problems:?}"
        );
        // `le` belongs to the buckets only.
        assert_eq!(check(r#"troupe_batch_messages_count{le="1"}"#).len(), 1);
    }

    #[test]
    fn catches_an_unknown_label_in_grouping_and_matching() {
        let by = check("sum by (gruop) (troupe_group_lag_messages)");
        assert!(by[0].starts_with("sum by (gruop): no such label"), "{by:?}");
        let without = check("max without (route) (troupe_group_members)");
        assert_eq!(without.len(), 1, "{without:?}");
        // `on` needs the label on both sides: troupe_group_members has no topic.
        let on = check("troupe_group_lag_messages and on (group, topic) troupe_group_members == 0");
        assert_eq!(on.len(), 1, "{on:?}");
        assert!(on[0].starts_with("and on (topic)"), "{on:?}");
        // A label grouped away below cannot be grouped on above.
        let lost = check("sum by (topic) (max by (group) (troupe_group_lag_messages))");
        assert_eq!(lost.len(), 1, "{lost:?}");
        let quantile = check("histogram_quantile(0.9, sum by (processor) (rate(troupe_event_hop_seconds_bucket[5m])))");
        assert_eq!(quantile.len(), 1, "{quantile:?}");
    }

    #[test]
    fn reports_what_does_not_parse() {
        assert!(check("sum(troupe_sagas")[0].starts_with("does not parse"));
    }
}
