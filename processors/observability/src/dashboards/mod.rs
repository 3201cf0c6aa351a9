//! The Grafana dashboards, written once as Rust data: each dashboard is a list of sections,
//! each section a list of panels, each panel the queries it plots. [`render`] turns them into
//! the JSON files under `observability/dashboards/`, laying the panels out on Grafana's
//! 24-column grid, and [`crate::lint`] checks what comes out.

mod lag;
mod processors;
mod query;
mod query_api;
mod render;
mod saga;

use std::path::Path;

pub use render::{render, to_json};

/// Every dashboard troupe ships.
pub fn all() -> Vec<Dashboard> {
    vec![
        lag::dashboard(),
        saga::dashboard(),
        processors::dashboard(),
        query_api::dashboard(),
    ]
}

/// One dashboard.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Grafana's uid, and the JSON file's name without `.json`.
    pub uid: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub sections: Vec<Section>,
}

/// A titled row of panels.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: &'static str,
    pub panels: Vec<Panel>,
}

/// One panel: what it shows, in which unit, and the queries behind it.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: &'static str,
    pub description: &'static str,
    pub kind: PanelKind,
    pub unit: Unit,
    /// Columns of Grafana's 24-column grid.
    pub width: u32,
    pub height: u32,
    pub targets: Vec<Target>,
    pub colouring: Colouring,
    /// A unit for the values of one query (by index into `targets`) instead of the panel's.
    pub field_units: Vec<(usize, Unit)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    TimeSeries,
    /// The latest value of each series, in a tile of its own.
    Stat,
    /// The latest value of each series, a row each; the queries' results merged by label.
    Table,
}

/// Grafana's unit ids, named for what troupe measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    /// A plain number (messages, orders, members).
    Count,
    /// 0..1, shown as a percentage.
    Ratio,
    RequestsPerSecond,
    /// Things per second, named: `PerSecond("msg")` shows `12 msg/s`.
    PerSecond(&'static str),
}

impl Unit {
    pub fn grafana_id(self) -> String {
        match self {
            Unit::Seconds => "s".to_owned(),
            Unit::Count => "short".to_owned(),
            Unit::Ratio => "percentunit".to_owned(),
            Unit::RequestsPerSecond => "reqps".to_owned(),
            Unit::PerSecond(noun) => format!("suffix: {noun}/s"),
        }
    }
}

/// How values are coloured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Colouring {
    Plain,
    /// Red at or above the value.
    BadAbove(f64),
    /// Red at 0, green from 1 (members, targets up).
    BadWhenZero,
    /// Like `BadWhenZero`, and 0/1 shown as down/up.
    UpDown,
}

/// One query of a panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub expr: String,
    /// Grafana's legend template (`{{group}}`).
    pub legend: String,
}

impl Panel {
    fn new(kind: PanelKind, title: &'static str, unit: Unit) -> Self {
        Panel {
            title,
            description: "",
            kind,
            unit,
            width: if kind == PanelKind::Stat { 6 } else { 12 },
            height: if kind == PanelKind::Stat { 5 } else { 8 },
            targets: Vec::new(),
            colouring: Colouring::Plain,
            field_units: Vec::new(),
        }
    }

    pub fn timeseries(title: &'static str, unit: Unit) -> Self {
        Panel::new(PanelKind::TimeSeries, title, unit)
    }

    pub fn stat(title: &'static str, unit: Unit) -> Self {
        Panel::new(PanelKind::Stat, title, unit)
    }

    pub fn table(title: &'static str, unit: Unit) -> Self {
        Panel::new(PanelKind::Table, title, unit)
    }

    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    pub fn query(mut self, expr: impl Into<String>, legend: &str) -> Self {
        self.targets.push(Target {
            expr: expr.into(),
            legend: legend.to_owned(),
        });
        self
    }

    pub fn width(mut self, width: u32) -> Self {
        self.width = width;
        self
    }

    pub fn colour(mut self, colouring: Colouring) -> Self {
        self.colouring = colouring;
        self
    }

    pub fn field_unit(mut self, target: usize, unit: Unit) -> Self {
        self.field_units.push((target, unit));
        self
    }
}

impl Section {
    pub fn new(title: &'static str, panels: Vec<Panel>) -> Self {
        Section { title, panels }
    }
}

/// A query of a dashboard panel with its template variables replaced by values that select
/// everything, ready to send to Prometheus as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
}

/// Every query of every dashboard, runnable against Prometheus: `$job` and `$instance` become
/// `.*` (they only appear in regex matchers), `$__rate_interval` becomes `1m`.
pub fn panel_queries() -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    for dashboard in all() {
        for section in &dashboard.sections {
            for panel in &section.panels {
                for target in &panel.targets {
                    queries.push(PanelQuery {
                        dashboard: dashboard.title.to_owned(),
                        panel: panel.title.to_owned(),
                        expr: select_everything(&target.expr),
                    });
                }
            }
        }
    }
    queries
}

fn select_everything(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// The file a dashboard is written to, under the dashboards directory.
pub fn file_name(dashboard: &Dashboard) -> String {
    format!("{}.json", dashboard.uid)
}

/// Writes every dashboard into `dir`, creating it if needed. Returns the files written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for dashboard in all() {
        let path = dir.join(file_name(&dashboard));
        std::fs::write(&path, to_json(&render(&dashboard)))?;
        written.push(path);
    }
    Ok(written)
}

/// What is wrong with the dashboards in `dir`, one line each: files missing, different from
/// what the source renders, or left over from a dashboard that no longer exists; and every
/// lint problem of the rendered dashboards.
pub fn check_dir(dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    for dashboard in all() {
        let name = file_name(&dashboard);
        let path = dir.join(&name);
        let rendered = render(&dashboard);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == to_json(&rendered) => {}
            Ok(_) => problems.push(format!(
                "{}: differs from the dashboard source (run troupe-dashboards render)",
                path.display()
            )),
            Err(error) => problems.push(format!(
                "{}: cannot read it ({error}; run troupe-dashboards render)",
                path.display()
            )),
        }
        problems.extend(crate::lint::lint(&rendered).iter().map(ToString::to_string));
        expected.push(name);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut stale: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".json") && !expected.contains(name))
            .collect();
        stale.sort();
        for name in stale {
            problems.push(format!(
                "{}: no dashboard renders it (delete it)",
                dir.join(name).display()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_queries_select_everything() {
        let queries = panel_queries();
        assert!(queries.len() > 30, "{}", queries.len());
        for query in &queries {
            assert!(!query.expr.contains('$'), "{}: {}", query.panel, query.expr);
            assert!(
                crate::promql::check(&query.expr).is_empty(),
                "{}: {}",
                query.panel,
                query.expr
            );
        }
    }

    #[test]
    fn uids_and_panel_titles_are_unique() {
        let dashboards = all();
        let mut uids: Vec<_> = dashboards.iter().map(|d| d.uid).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), dashboards.len());
        for dashboard in &dashboards {
            let mut titles: Vec<_> = dashboard
                .sections
                .iter()
                .flat_map(|s| s.panels.iter().map(|p| p.title))
                .collect();
            let count = titles.len();
            titles.sort_unstable();
            titles.dedup();
            assert_eq!(titles.len(), count, "{}", dashboard.uid);
        }
    }
}
