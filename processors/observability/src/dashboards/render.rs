//! A [`Dashboard`] as Grafana's dashboard JSON (schema version 39): templated data source,
//! `job` and `instance` variables, and the panels laid out left to right, top to bottom.

use serde_json::{json, Map, Value};

use super::{Colouring, Dashboard, Panel, PanelKind, Target, Unit};

const SCHEMA_VERSION: u32 = 39;
const GRID_COLUMNS: u32 = 24;
const REF_IDS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The panels' and targets' data source: whichever Prometheus the `datasource` variable picks.
fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// The dashboard as Grafana's JSON model.
pub fn render(dashboard: &Dashboard) -> Value {
    let mut panels = Vec::new();
    let mut id = 0;
    let mut y = 0;
    for section in &dashboard.sections {
        id += 1;
        panels.push(json!({
            "collapsed": false,
            "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y},
            "id": id,
            "panels": [],
            "title": section.title,
            "type": "row",
        }));
        y += 1;
        for line in lines(&section.panels) {
            let height = line.iter().map(|panel| panel.height).max().unwrap_or(0);
            let mut x = 0;
            for panel in line {
                id += 1;
                let grid = json!({"h": height, "w": panel.width, "x": x, "y": y});
                panels.push(render_panel(panel, id, grid));
                x += panel.width;
            }
            y += height;
        }
    }
    json!({
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": true,
            "hide": true,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": dashboard.description,
        "editable": true,
        "graphTooltip": 1,
        "links": [{
            "asDropdown": false,
            "icon": "external link",
            "includeVars": true,
            "keepTime": true,
            "tags": ["troupe"],
            "title": "troupe",
            "type": "dashboards",
        }],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["troupe"],
        "templating": {"list": [datasource_variable(), label_variable("job", "up"), label_variable("instance", r#"up{job=~"$job"}"#)]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
    })
}

/// The panels in lines of at most the grid's width, in order. Panels on a line get the height
/// of the tallest, so no gap opens under a short one (Grafana would float the next line up).
fn lines(panels: &[Panel]) -> Vec<Vec<&Panel>> {
    let mut lines: Vec<Vec<&Panel>> = Vec::new();
    let mut width = 0;
    for panel in panels {
        match lines.last_mut() {
            Some(line) if width + panel.width <= GRID_COLUMNS => line.push(panel),
            _ => {
                lines.push(vec![panel]);
                width = 0;
            }
        }
        width += panel.width;
    }
    lines
}

fn datasource_variable() -> Value {
    json!({
        "current": {},
        "hide": 0,
        "includeAll": false,
        "label": "Data source",
        "multi": false,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    })
}

/// A multi-value variable over the values of `label` on `series`, "All" by default.
fn label_variable(label: &str, series: &str) -> Value {
    let query = format!("label_values({series}, {label})");
    let mut title = label.to_owned();
    title[..1].make_ascii_uppercase();
    json!({
        "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "datasource": datasource(),
        "definition": query,
        "hide": 0,
        "includeAll": true,
        "label": title,
        "multi": true,
        "name": label,
        "options": [],
        "query": {"query": query, "refId": format!("{label}-variable")},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    })
}

fn ref_id(index: usize) -> String {
    let letter = REF_IDS.chars().nth(index % REF_IDS.len()).unwrap_or('A');
    letter.to_string()
}

fn render_panel(panel: &Panel, id: u32, grid: Value) -> Value {
    let table = panel.kind == PanelKind::Table;
    let targets: Vec<Value> = panel
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| render_target(target, index, table))
        .collect();
    let mut defaults = json!({
        "color": {"mode": if panel.kind == PanelKind::TimeSeries { "palette-classic" } else { "thresholds" }},
        "mappings": [],
        "thresholds": thresholds(panel.colouring),
        "unit": panel.unit.grafana_id(),
    });
    if panel.colouring == Colouring::UpDown {
        defaults["mappings"] = json!([{"type": "value", "options": {
            "0": {"color": "red", "index": 0, "text": "down"},
            "1": {"color": "green", "index": 1, "text": "up"},
        }}]);
    }
    if panel.kind == PanelKind::TimeSeries {
        defaults["custom"] = json!({
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": false,
        });
    }
    let overrides: Vec<Value> = panel
        .field_units
        .iter()
        .map(|&(index, unit)| field_unit(panel, index, unit))
        .collect();
    let mut rendered = json!({
        "datasource": datasource(),
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "gridPos": grid,
        "id": id,
        "options": options(panel.kind),
        "targets": targets,
        "title": panel.title,
        "type": match panel.kind {
            PanelKind::TimeSeries => "timeseries",
            PanelKind::Stat => "stat",
            PanelKind::Table => "table",
        },
    });
    if table {
        let renames: Map<String, Value> = panel
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| (format!("Value #{}", ref_id(index)), json!(target.legend)))
            .collect();
        rendered["transformations"] = json!([
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": true}, "renameByName": renames}},
        ]);
    }
    rendered
}

fn render_target(target: &Target, index: usize, table: bool) -> Value {
    json!({
        "datasource": datasource(),
        "editorMode": "code",
        "expr": target.expr,
        "format": if table { "table" } else { "time_series" },
        "instant": table,
        "legendFormat": if table { "__auto" } else { target.legend.as_str() },
        "range": !table,
        "refId": ref_id(index),
    })
}

/// The unit of one query's values: a table's column (named by the query's legend), or a time
/// series panel's series of that query.
fn field_unit(panel: &Panel, index: usize, unit: Unit) -> Value {
    let matcher = if panel.kind == PanelKind::Table {
        json!({"id": "byName", "options": panel.targets.get(index).map_or("", |t| t.legend.as_str())})
    } else {
        json!({"id": "byFrameRefID", "options": ref_id(index)})
    };
    json!({"matcher": matcher, "properties": [{"id": "unit", "value": unit.grafana_id()}]})
}

fn thresholds(colouring: Colouring) -> Value {
    let steps = match colouring {
        Colouring::Plain => json!([{"color": "green", "value": null}]),
        Colouring::BadAbove(limit) => {
            json!([{"color": "green", "value": null}, {"color": "red", "value": limit}])
        }
        Colouring::BadWhenZero | Colouring::UpDown => {
            json!([{"color": "red", "value": null}, {"color": "green", "value": 1}])
        }
    };
    json!({"mode": "absolute", "steps": steps})
}

fn options(kind: PanelKind) -> Value {
    match kind {
        PanelKind::TimeSeries => json!({
            "legend": {"calcs": ["mean", "max", "lastNotNull"], "displayMode": "table", "placement": "bottom", "showLegend": true},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }),
        PanelKind::Stat => json!({
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
            "textMode": "auto",
        }),
        PanelKind::Table => json!({
            "cellHeight": "sm",
            "footer": {"show": false, "reducer": ["sum"], "countRows": false},
            "showHeader": true,
        }),
    }
}

/// The JSON as committed: two-space indentation, keys sorted at every level (whatever
/// serde_json's map type), and a final newline, so a render is byte-for-byte reproducible.
pub fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value)).expect("a JSON value serialises");
    text.push('\n');
    text
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboards::{all, Section};

    fn grid(panel: &Value) -> [u64; 4] {
        ["x", "y", "w", "h"].map(|k| panel["gridPos"][k].as_u64().unwrap())
    }

    #[test]
    fn panels_fill_the_grid_without_overlapping() {
        for dashboard in all() {
            let rendered = render(&dashboard);
            let panels = rendered["panels"].as_array().unwrap();
            for (i, a) in panels.iter().enumerate() {
                let [x, y, w, h] = grid(a);
                assert!(x + w <= u64::from(GRID_COLUMNS), "{}", a["title"]);
                for b in &panels[i + 1..] {
                    let [bx, by, bw, bh] = grid(b);
                    let apart = x + w <= bx || bx + bw <= x || y + h <= by || by + bh <= y;
                    assert!(apart, "{} overlaps {}", a["title"], b["title"]);
                }
            }
        }
    }

    #[test]
    fn a_full_line_wraps_and_takes_its_tallest_panel_height() {
        let panels = vec![
            Panel::stat("a", Unit::Count).width(12),
            Panel::timeseries("b", Unit::Count),
            Panel::stat("c", Unit::Count),
        ];
        let dashboard = Dashboard {
            uid: "t",
            title: "t",
            description: "t",
            sections: vec![Section::new("row", panels)],
        };
        let rendered = render(&dashboard);
        let positions: Vec<[u64; 4]> = rendered["panels"]
            .as_array()
            .unwrap()
            .iter()
            .map(grid)
            .collect();
        assert_eq!(
            positions,
            [[0, 0, 24, 1], [0, 1, 12, 8], [12, 1, 12, 8], [0, 9, 6, 5]]
        );
    }

    #[test]
    fn json_keys_are_sorted_whatever_the_map_type() {
        assert_eq!(
            to_json(&json!({"b": 1, "a": {"d": 2, "c": 3}})),
            "{\n  \"a\": {\n    \"c\": 3,\n    \"d\": 2\n  },\n  \"b\": 1\n}\n"
        );
    }
}
