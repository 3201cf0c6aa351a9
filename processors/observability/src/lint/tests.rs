//! Each rule passes a good dashboard and fails the same dashboard broken in one way.

use serde_json::{json, Value};

use super::lint;
use crate::dashboards::{render, Dashboard, Panel, Section, Unit};

const GOOD_LAG: &str =
    r#"max by (group) (troupe_group_lag_seconds{job=~"$job", instance=~"$instance"})"#;
const GOOD_RATE: &str = r#"sum by (outcome) (rate(troupe_saga_outcomes_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))"#;

fn panel(expr: &str) -> Panel {
    Panel::timeseries("Lag", Unit::Seconds)
        .describe("How far behind.")
        .query(expr, "{{group}}")
}

fn dashboard(panels: Vec<Panel>) -> Value {
    render(&Dashboard {
        uid: "test",
        title: "test",
        description: "A dashboard to lint.",
        sections: vec![Section::new("Row", panels)],
    })
}

/// The rules that fail on `dashboard`, each once, sorted.
fn failing(dashboard: &Value) -> Vec<&'static str> {
    let mut rules: Vec<_> = lint(dashboard).into_iter().map(|p| p.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    rules
}

fn good() -> Value {
    dashboard(vec![
        panel(GOOD_LAG),
        Panel::stat("Rate", Unit::PerSecond("orders"))
            .describe("Outcomes.")
            .query(GOOD_RATE, "{{outcome}}"),
    ])
}

#[test]
fn a_good_dashboard_passes() {
    assert_eq!(lint(&good()), vec![]);
}

#[test]
fn the_real_dashboards_pass() {
    for dashboard in crate::dashboards::all() {
        let problems = lint(&render(&dashboard));
        assert!(
            problems.is_empty(),
            "{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn target_promql_fails_on_an_unknown_metric() {
    let broken = dashboard(vec![panel(
        r#"max by (group) (troupe_group_lag_secs{job=~"$job", instance=~"$instance"})"#,
    )]);
    assert_eq!(failing(&broken), ["target-promql"]);
    let problem = &lint(&broken)[0];
    assert_eq!(problem.panel.as_deref(), Some("Lag"));
    assert!(problem
        .message
        .contains("troupe_group_lag_secs is not a metric in the catalogue"));
}

#[test]
fn target_promql_fails_on_a_typoed_label() {
    let by = dashboard(vec![panel(
        r#"max by (gruop) (troupe_group_lag_seconds{job=~"$job", instance=~"$instance"})"#,
    )]);
    assert_eq!(failing(&by), ["target-promql"]);
    let matcher = dashboard(vec![panel(
        r#"max by (group) (troupe_group_lag_seconds{job=~"$job", instance=~"$instance", topc="orders"})"#,
    )]);
    assert_eq!(failing(&matcher), ["target-promql"]);
}

#[test]
fn target_promql_fails_on_a_query_that_does_not_parse() {
    let broken = dashboard(vec![panel(
        r#"max by (group) (troupe_group_lag_seconds{job=~"$job""#,
    )]);
    assert_eq!(failing(&broken), ["target-promql"]);
}

#[test]
fn target_rate_interval_fails_on_a_fixed_range() {
    let fixed = GOOD_RATE.replace("$__rate_interval", "5m");
    assert_eq!(
        failing(&dashboard(vec![panel(&fixed)])),
        ["target-rate-interval"]
    );
    let interval = GOOD_RATE.replace("$__rate_interval", "$__interval");
    assert_eq!(
        failing(&dashboard(vec![panel(&interval)])),
        ["target-rate-interval"]
    );
}

#[test]
fn target_job_and_instance_fail_on_an_unfiltered_selector() {
    let no_job = GOOD_LAG.replace(r#"job=~"$job", "#, "");
    assert_eq!(failing(&dashboard(vec![panel(&no_job)])), ["target-job"]);
    let no_instance = GOOD_LAG.replace(r#", instance=~"$instance""#, "");
    assert_eq!(
        failing(&dashboard(vec![panel(&no_instance)])),
        ["target-instance"]
    );
    let fixed_job = GOOD_LAG.replace(r#"job=~"$job""#, r#"job="troupe""#);
    assert_eq!(failing(&dashboard(vec![panel(&fixed_job)])), ["target-job"]);
}

#[test]
fn panel_datasource_fails_on_a_hardcoded_datasource() {
    let mut broken = good();
    broken["panels"][1]["datasource"] = json!({"type": "prometheus", "uid": "P1809F7CD0C75ACF3"});
    assert_eq!(failing(&broken), ["panel-datasource"]);
    let mut target = good();
    target["panels"][2]["targets"][0]["datasource"] =
        json!({"type": "prometheus", "uid": "prometheus"});
    assert_eq!(failing(&target), ["panel-datasource"]);
}

#[test]
fn panel_title_description_fails_on_a_missing_description_or_title() {
    let undescribed = dashboard(vec![
        Panel::timeseries("Lag", Unit::Seconds).query(GOOD_LAG, "")
    ]);
    assert_eq!(failing(&undescribed), ["panel-title-description"]);
    let untitled = dashboard(vec![
        panel(GOOD_LAG),
        Panel::timeseries("", Unit::Seconds)
            .describe("x")
            .query(GOOD_LAG, ""),
    ]);
    assert_eq!(failing(&untitled), ["panel-title-description"]);
}

#[test]
fn panel_units_fails_on_a_missing_unit() {
    let mut broken = good();
    broken["panels"][1]["fieldConfig"]["defaults"]["unit"] = json!("");
    assert_eq!(failing(&broken), ["panel-units"]);
}

#[test]
fn panel_ids_fails_on_a_duplicate_id() {
    let mut broken = good();
    broken["panels"][2]["id"] = broken["panels"][1]["id"].clone();
    assert_eq!(failing(&broken), ["panel-ids"]);
}

#[test]
fn panel_targets_fails_on_a_panel_without_queries() {
    let broken = dashboard(vec![Panel::timeseries("Lag", Unit::Seconds).describe("x")]);
    assert_eq!(failing(&broken), ["panel-targets"]);
}

#[test]
fn template_rules_fail_on_missing_or_wrong_variables() {
    let mut no_datasource = good();
    no_datasource["templating"]["list"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    assert_eq!(failing(&no_datasource), ["template-datasource"]);

    let mut custom_job = good();
    custom_job["templating"]["list"][1]["type"] = json!("custom");
    assert_eq!(failing(&custom_job), ["template-job"]);

    let mut fixed_source = good();
    fixed_source["templating"]["list"][2]["datasource"] =
        json!({"type": "prometheus", "uid": "abc"});
    assert_eq!(failing(&fixed_source), ["template-instance"]);

    let mut wrong_label = good();
    wrong_label["templating"]["list"][2]["query"]["query"] = json!("label_values(up, pod)");
    assert_eq!(failing(&wrong_label), ["template-instance"]);
}
