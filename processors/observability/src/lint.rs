//! Lint rules for the rendered dashboards, in the spirit of grafana's dashboard-linter: each
//! checks one property of Grafana's JSON, so the committed files are checked as they ship.
//!
//! | rule | what it wants |
//! |---|---|
//! | `template-datasource` | a `datasource` variable of type datasource, for Prometheus |
//! | `template-job`, `template-instance` | `job` and `instance` query variables from `label_values` |
//! | `panel-datasource` | every panel and target on `${datasource}`, never a fixed uid |
//! | `panel-title-description` | every panel has a title and a description |
//! | `panel-units` | every panel has a unit |
//! | `panel-ids` | panel ids are present and unique |
//! | `panel-targets` | every panel has at least one query |
//! | `target-job`, `target-instance` | every selector filtered by `job=~"$job"`, `instance=~"$instance"` |
//! | `target-rate-interval` | every `rate`, `irate` and `increase` over `$__rate_interval` |
//! | `target-promql` | the query parses, reads catalogued metrics only, and uses only labels they have |

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::promql::{self, Expr, Window};

/// One thing wrong with a dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub dashboard: String,
    /// The panel's title, when the problem is a panel's.
    pub panel: Option<String>,
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dashboard)?;
        if let Some(panel) = &self.panel {
            write!(f, ", panel {panel:?}")?;
        }
        write!(f, ": {} [{}]", self.message, self.rule)
    }
}

/// Every problem of one dashboard (Grafana's JSON model); empty when it passes.
pub fn lint(dashboard: &Value) -> Vec<Problem> {
    let title = dashboard["title"]
        .as_str()
        .unwrap_or("(untitled dashboard)");
    let mut lint = Lint {
        dashboard: title.to_owned(),
        problems: Vec::new(),
    };
    lint.templating(dashboard);
    let mut ids = BTreeSet::new();
    for panel in panels(dashboard) {
        lint.panel(panel, &mut ids);
    }
    lint.problems
}

/// Every panel, including those inside collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        found.push(panel);
        found.extend(panel["panels"].as_array().into_iter().flatten());
    }
    found
}

fn is_templated_datasource(datasource: &Value) -> bool {
    let uid = datasource.get("uid").unwrap_or(datasource);
    matches!(uid.as_str(), Some("${datasource}" | "$datasource"))
}

struct Lint {
    dashboard: String,
    problems: Vec<Problem>,
}

impl Lint {
    fn report(&mut self, panel: Option<&str>, rule: &'static str, message: String) {
        self.problems.push(Problem {
            dashboard: self.dashboard.clone(),
            panel: panel.map(str::to_owned),
            rule,
            message,
        });
    }

    fn templating(&mut self, dashboard: &Value) {
        let variables = dashboard["templating"]["list"].as_array();
        let variable = |name: &str| {
            variables
                .into_iter()
                .flatten()
                .find(|v| v["name"].as_str() == Some(name))
        };
        match variable("datasource") {
            None => self.report(None, "template-datasource", "no \"datasource\" variable".into()),
            Some(v) if v["type"] != "datasource" || v["query"] != "prometheus" => self.report(
                None,
                "template-datasource",
                format!(
                    "the \"datasource\" variable is of type {} for {}, not a datasource variable for prometheus",
                    v["type"], v["query"]
                ),
            ),
            Some(_) => {}
        }
        for (name, rule) in [("job", "template-job"), ("instance", "template-instance")] {
            let Some(v) = variable(name) else {
                self.report(None, rule, format!("no {name:?} variable"));
                continue;
            };
            let query = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or("");
            let wanted = format!(", {name})");
            if v["type"] != "query"
                || !query.starts_with("label_values(")
                || !query.ends_with(&wanted)
            {
                self.report(None, rule, format!("the {name:?} variable is not a query variable over label_values(..., {name})"));
            }
            if !is_templated_datasource(&v["datasource"]) {
                self.report(
                    None,
                    rule,
                    format!("the {name:?} variable does not query ${{datasource}}"),
                );
            }
            if v["includeAll"] != true || v["multi"] != true {
                self.report(
                    None,
                    rule,
                    format!("the {name:?} variable does not allow All and several values"),
                );
            }
        }
    }

    fn panel(&mut self, panel: &Value, ids: &mut BTreeSet<i64>) {
        let title = panel["title"].as_str().unwrap_or("").to_owned();
        let name = Some(if title.is_empty() {
            "(untitled)"
        } else {
            title.as_str()
        });
        match panel["id"].as_i64() {
            None => self.report(name, "panel-ids", "no id".into()),
            Some(id) if !ids.insert(id) => {
                self.report(name, "panel-ids", format!("id {id} is used twice"))
            }
            Some(_) => {}
        }
        if panel["type"] == "row" {
            return;
        }
        if title.trim().is_empty() {
            self.report(name, "panel-title-description", "no title".into());
        }
        if panel["description"]
            .as_str()
            .unwrap_or("")
            .trim()
            .is_empty()
        {
            self.report(name, "panel-title-description", "no description".into());
        }
        if panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("")
            .is_empty()
        {
            self.report(name, "panel-units", "no unit".into());
        }
        if !is_templated_datasource(&panel["datasource"]) {
            let found = &panel["datasource"];
            self.report(
                name,
                "panel-datasource",
                format!("data source {found} is not ${{datasource}}"),
            );
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            self.report(name, "panel-targets", "no queries".into());
        }
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or("?");
            let datasource = &target["datasource"];
            if !datasource.is_null() && !is_templated_datasource(datasource) {
                self.report(
                    name,
                    "panel-datasource",
                    format!("query {ref_id}: data source {datasource} is not ${{datasource}}"),
                );
            }
            match target["expr"].as_str() {
                Some(expr) => self.expr(name, ref_id, expr),
                None => self.report(name, "target-promql", format!("query {ref_id} has no expr")),
            }
        }
    }

    fn expr(&mut self, panel: Option<&str>, ref_id: &str, expr: &str) {
        for problem in promql::check(expr) {
            self.report(panel, "target-promql", format!("query {ref_id}: {problem}"));
        }
        let Ok(parsed) = promql::parse(expr) else {
            return;
        };
        for selector in parsed.selectors() {
            let metric = selector.metric().unwrap_or("a selector");
            for (label, rule) in [("job", "target-job"), ("instance", "target-instance")] {
                let filtered = selector.matcher(label).is_some_and(|m| {
                    m.op == "=~"
                        && (m.value == format!("${label}") || m.value == format!("${{{label}}}"))
                });
                if !filtered {
                    self.report(
                        panel,
                        rule,
                        format!(
                            "query {ref_id}: {metric} is not filtered by {label}=~\"${label}\""
                        ),
                    );
                }
            }
        }
        parsed.walk(&mut |node| {
            let Expr::Call { func, args } = node else {
                return;
            };
            if !["rate", "irate", "increase"].contains(&func.as_str()) {
                return;
            }
            let window = args.iter().find_map(|arg| match arg {
                Expr::Range { range, .. } => Some(range),
                _ => None,
            });
            let over = match window {
                Some(Window::Variable(name)) if name == "__rate_interval" => return,
                Some(Window::Variable(name)) => format!("${name}"),
                Some(Window::Duration(duration)) => duration.clone(),
                None => "no range".to_owned(),
            };
            let message = format!("query {ref_id}: {func} over {over}, not $__rate_interval");
            self.report(panel, "target-rate-interval", message);
        });
    }
}

#[cfg(test)]
mod tests;
