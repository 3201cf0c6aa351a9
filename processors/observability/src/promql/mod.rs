//! Enough of PromQL to know what an expression reads: which series, and which labels it
//! matches, groups or joins on. The dashboards and the alert rules are checked against the
//! catalogue through it ([`check`]).
//!
//! Not a full PromQL implementation: it parses the syntax (selectors, ranges and subqueries,
//! functions, aggregations with `by`/`without`, binary operators with `on`/`ignoring` and
//! `group_left`/`group_right`, `offset`, `@`) and Grafana's template variables, and evaluates
//! nothing.

mod check;
mod lexer;
mod parser;

use std::collections::BTreeSet;
use std::fmt;

pub use check::{check, TARGET_LABELS};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(String),
    String(String),
    /// A Grafana template variable in an expression's place (`topk($n, ...)`).
    Variable(String),
    Selector(Selector),
    /// `expr[range]` (a range vector) or `expr[range:step]` (a subquery).
    Range {
        expr: Box<Expr>,
        range: Window,
    },
    Call {
        func: String,
        args: Vec<Expr>,
    },
    Aggregate {
        op: String,
        grouping: Option<Grouping>,
        args: Vec<Expr>,
    },
    Unary(Box<Expr>),
    Paren(Box<Expr>),
    Binary {
        op: String,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        matching: Option<Matching>,
    },
}

/// The window of a range vector or subquery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    Duration(String),
    /// A template variable, e.g. `__rate_interval`.
    Variable(String),
}

/// `name{label op "value", ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: &'static str,
    pub value: String,
}

/// `by (...)` or `without (...)` of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

/// `on (...)` / `ignoring (...)` and `group_left (...)` / `group_right (...)` of a binary
/// operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matching {
    pub on: bool,
    pub labels: Vec<String>,
    pub group: Option<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub left: bool,
    pub labels: Vec<String>,
}

/// Why an expression does not parse, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.at)
    }
}

impl std::error::Error for ParseError {}

/// Parses one expression.
pub fn parse(expr: &str) -> Result<Expr, ParseError> {
    parser::parse(&lexer::tokenize(expr)?, expr.len())
}

impl Selector {
    /// The metric name, written before the braces or as `__name__="..."`.
    pub fn metric(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| {
            self.matchers
                .iter()
                .find(|m| m.label == "__name__" && m.op == "=")
                .map(|m| m.value.as_str())
        })
    }

    /// The matcher on `label`, if any.
    pub fn matcher(&self, label: &str) -> Option<&Matcher> {
        self.matchers.iter().find(|m| m.label == label)
    }
}

impl Expr {
    /// Calls `visit` on this expression and every expression inside it, outermost first.
    pub fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        match self {
            Expr::Range { expr, .. } | Expr::Unary(expr) | Expr::Paren(expr) => expr.walk(visit),
            Expr::Call { args, .. } | Expr::Aggregate { args, .. } => {
                args.iter().for_each(|arg| arg.walk(visit));
            }
            Expr::Binary { lhs, rhs, .. } => {
                lhs.walk(visit);
                rhs.walk(visit);
            }
            Expr::Number(_) | Expr::String(_) | Expr::Variable(_) | Expr::Selector(_) => {}
        }
    }

    /// Every selector in the expression.
    pub fn selectors(&self) -> Vec<&Selector> {
        let mut found = Vec::new();
        self.walk(&mut |expr| {
            if let Expr::Selector(selector) = expr {
                found.push(selector);
            }
        });
        found
    }
}

/// The series (metric) names an expression reads.
pub fn series_names(expr: &str) -> Result<BTreeSet<String>, ParseError> {
    let parsed = parse(expr)?;
    let names = parsed
        .selectors()
        .into_iter()
        .filter_map(|s| s.metric())
        .map(str::to_owned);
    Ok(names.collect())
}

/// The label names an expression uses: in matchers (except `__name__`), `by`/`without`,
/// `on`/`ignoring` and `group_left`/`group_right`.
pub fn label_names(expr: &str) -> Result<BTreeSet<String>, ParseError> {
    let parsed = parse(expr)?;
    let mut labels = BTreeSet::new();
    parsed.walk(&mut |expr| match expr {
        Expr::Selector(selector) => {
            let names = selector.matchers.iter().map(|m| m.label.clone());
            labels.extend(names.filter(|label| label != "__name__"));
        }
        Expr::Aggregate {
            grouping: Some(Grouping::By(names) | Grouping::Without(names)),
            ..
        } => labels.extend(names.iter().cloned()),
        Expr::Binary {
            matching: Some(matching),
            ..
        } => {
            labels.extend(matching.labels.iter().cloned());
            if let Some(group) = &matching.group {
                labels.extend(group.labels.iter().cloned());
            }
        }
        _ => {}
    });
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn extracts_series_and_labels_of_a_dashboard_query() {
        let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(troupe_query_request_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))"#;
        assert_eq!(
            series_names(expr).unwrap(),
            set(&["troupe_query_request_seconds_bucket"])
        );
        assert_eq!(
            label_names(expr).unwrap(),
            set(&["instance", "job", "le", "route"])
        );
    }

    #[test]
    fn extracts_labels_of_vector_matching_and_trailing_grouping() {
        let expr = r#"(max(a{x="1"}) without (y) > 0) and on (group, topic) group_left (partition) sum(b) by (group, topic, partition)"#;
        assert_eq!(series_names(expr).unwrap(), set(&["a", "b"]));
        assert_eq!(
            label_names(expr).unwrap(),
            set(&["group", "partition", "topic", "x", "y"])
        );
    }

    #[test]
    fn keywords_are_label_names_in_label_lists() {
        let expr = "sum by (processor, on, emitted) (increase(v_total[5m])) / ignoring (on) w";
        assert_eq!(
            label_names(expr).unwrap(),
            set(&["emitted", "on", "processor"])
        );
        assert_eq!(series_names(expr).unwrap(), set(&["v_total", "w"]));
    }

    #[test]
    fn reads_names_given_as_a_matcher() {
        let expr = r#"{__name__="up", job="troupe"} == 0"#;
        assert_eq!(series_names(expr).unwrap(), set(&["up"]));
        assert_eq!(label_names(expr).unwrap(), set(&["job"]));
    }

    #[test]
    fn rejects_what_is_not_promql() {
        for broken in ["sum(x", "x{job=}", "rate(x[])", "x y", "sum by job (x)", ""] {
            assert!(parse(broken).is_err(), "{broken} parsed");
        }
    }
}
