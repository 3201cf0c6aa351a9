//! Small builders for the dashboards' PromQL, so every query filters by the `job` and
//! `instance` variables and every rate uses `$__rate_interval`, without writing either by hand.

/// `name{job=~"$job", instance=~"$instance"}`, plus `matchers` (`state="stalled"`) if any.
pub(super) fn sel(name: &str, matchers: &str) -> String {
    let extra = if matchers.is_empty() {
        String::new()
    } else {
        format!(", {matchers}")
    };
    format!(r#"{name}{{job=~"$job", instance=~"$instance"{extra}}}"#)
}

/// `rate(series[$__rate_interval])` over the filtered series.
pub(super) fn rate(name: &str, matchers: &str) -> String {
    format!("rate({}[$__rate_interval])", sel(name, matchers))
}

/// `increase(series[$__rate_interval])` over the filtered series.
pub(super) fn increase(name: &str, matchers: &str) -> String {
    format!("increase({}[$__rate_interval])", sel(name, matchers))
}

/// `sum by (labels) (rate(...))`.
pub(super) fn sum_rate(by: &str, name: &str, matchers: &str) -> String {
    format!("sum by ({by}) ({})", rate(name, matchers))
}

/// The `q` quantile of a histogram, kept apart by `by` (besides `le`): `histogram` is the
/// metric's name, without `_bucket`.
pub(super) fn quantile(q: f64, histogram: &str, by: &str) -> String {
    let by = if by.is_empty() {
        "le".to_owned()
    } else {
        format!("le, {by}")
    };
    format!(
        "histogram_quantile({q}, sum by ({by}) ({}))",
        rate(&format!("{histogram}_bucket"), "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_filtered_queries() {
        assert_eq!(
            sel("troupe_sagas", r#"state="stalled""#),
            r#"troupe_sagas{job=~"$job", instance=~"$instance", state="stalled"}"#
        );
        assert_eq!(
            quantile(0.99, "troupe_batch_duration_seconds", "processor"),
            r#"histogram_quantile(0.99, sum by (le, processor) (rate(troupe_batch_duration_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))"#
        );
    }
}
